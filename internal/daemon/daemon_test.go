package daemon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// app is a toy backend whose failure rate can be set while it runs.
type app struct {
	*httptest.Server
	failEvery atomic.Int64 // every Nth request answers 500; 0 never
	n         atomic.Int64
}

func startApp(t *testing.T, version string) *app {
	a := &app{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		if every := a.failEvery.Load(); every > 0 && a.n.Add(1)%every == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, version)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *app) addr() string { return strings.TrimPrefix(a.URL, "http://") }

// startDaemon runs a daemon in-process for the service document and
// returns a client for its admin API and the service's address.
func startDaemon(t *testing.T, doc string) (*Daemon, *admin.Client, string) {
	t.Helper()
	listen := testenv.FreeAddr(t)
	d, c, _ := runDaemon(t, parseDoc(t, strings.ReplaceAll(doc, "LISTEN", listen)), Options{})
	return d, c, listen
}

// loopback lets a test daemon's outbound calls reach the test's own
// receivers (Prometheus, webhooks, notifications) on 127.0.0.0/8.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func parseDoc(t *testing.T, doc string) []*spec.Service {
	t.Helper()
	svcs, err := spec.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return svcs
}

// runDaemon runs a daemon for svcs until the returned stop is called (or
// the test ends), with test defaults for what opts leaves unset: a fresh
// state directory, an admin API on a free loopback port, 50ms ticks. It
// returns once the daemon is ready, with a client acting as user "test".
func runDaemon(t *testing.T, svcs []*spec.Service, opts Options) (*Daemon, *admin.Client, func()) {
	t.Helper()
	opts.Services = svcs
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.Admin == "" {
		opts.Admin = "127.0.0.1:0"
	}
	if opts.Tick == 0 {
		opts.Tick = 50 * time.Millisecond
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	testenv.WaitFor(t, 10*time.Second, func() bool { return d.AdminURL() != "" && d.readyErr() == nil }, "the daemon to be ready")
	return d, admin.NewClient(d.AdminURL(), d.Token(), admin.WithUser("test")), stop
}

// load sends GETs to addr until stop is closed.
func load(t *testing.T, addr string, stop <-chan struct{}) {
	c := &http.Client{Timeout: 5 * time.Second}
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("http://" + addr + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
}

func waitFor(t *testing.T, c *admin.Client, what string, cond func(admin.ServiceStatus) bool) admin.ServiceStatus {
	t.Helper()
	var st admin.ServiceStatus
	testenv.WaitFor(t, 20*time.Second, func() bool {
		var err error
		st, err = c.Service(context.Background(), "web")
		return err == nil && cond(st)
	}, what)
	return st
}

const analysedService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
  stable: blue
  healthCheck: {path: /health, interval: 250ms, timeout: 240ms, healthyThreshold: 1, unhealthyThreshold: 2}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {duration: 1s}}]
  analysis:
    interval: 500ms
    threshold: 2
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
`

// TestAnalysisPromotesGoodRollsBackBad feeds real traffic through the proxy:
// a healthy canary is promoted; one failing 5% of requests is rolled back
// with the reason naming the metric.
func TestAnalysisPromotesGoodRollsBackBad(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	_, c, listen := startDaemon(t, doc)
	stop := make(chan struct{})
	defer close(stop)
	load(t, listen, stop)
	ctx := context.Background()

	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "green promoted", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	if st.LastRollout.Result != rollout.ResultPromoted || st.StableVersion != "green" {
		t.Fatalf("good canary: last rollout %+v, stable %q; want promoted, green", st.LastRollout, st.StableVersion)
	}

	blue.failEvery.Store(20) // 5% of requests fail
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "blue"}); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, "blue rolled back", func(st admin.ServiceStatus) bool { return st.LastRollout.Version == "blue" })
	if st.LastRollout.Result != rollout.ResultRolledBack || st.StableVersion != "green" || st.Weights["green"] != 100 {
		t.Fatalf("bad canary: last rollout %+v, stable %q, weights %v; want rolled back to green 100", st.LastRollout, st.StableVersion, st.Weights)
	}
	if !strings.Contains(st.LastRollout.Reason, "request-success-rate") {
		t.Errorf("rollback reason %q does not name the metric", st.LastRollout.Reason)
	}
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	verdicts := 0
	for _, e := range h {
		if e.Verdict != nil {
			verdicts++
		}
	}
	if verdicts == 0 {
		t.Errorf("history has no verdicts: %+v", h)
	}
}

// TestApplyInvalidChangesNothing applies a broken document: refused as
// invalid, and the service keeps its spec and routing.
func TestApplyInvalidChangesNothing(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	d, c, listen := startDaemon(t, doc)
	ctx := context.Background()
	broken := strings.Replace(strings.ReplaceAll(doc, "LISTEN", listen), "setWeight: 50", "setWeight: 150", 1)
	_, err := c.Apply(ctx, []byte(broken))
	if !errors.Is(err, admin.ErrInvalid) || !strings.Contains(err.Error(), "setWeight") {
		t.Fatalf("Apply(broken) = %v, want an invalid error naming setWeight", err)
	}
	svcs := d.currentServices()
	if w := *svcs[0].Spec.Strategy.Canary.Steps[0].SetWeight; w != 50 {
		t.Fatalf("after a refused apply the spec has setWeight %d, want 50", w)
	}
	// A good apply of the same service takes effect.
	good := strings.Replace(strings.ReplaceAll(doc, "LISTEN", listen), "setWeight: 50", "setWeight: 20", 1)
	if _, err := c.Apply(ctx, []byte(good)); err != nil {
		t.Fatal(err)
	}
	if w := *d.currentServices()[0].Spec.Strategy.Canary.Steps[0].SetWeight; w != 20 {
		t.Fatalf("after a good apply the spec has setWeight %d, want 20", w)
	}
}

// TestCommandErrors maps the machine's refusals to API errors.
func TestCommandErrors(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	_, c, _ := startDaemon(t, doc)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"promote without a rollout", func() error { _, err := c.Promote(ctx, "web", false); return err }, admin.ErrConflict},
		{"unknown service", func() error { _, err := c.Service(ctx, "nope"); return err }, admin.ErrNotFound},
		{"unknown version", func() error {
			_, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "purple"})
			return err
		}, admin.ErrInvalid},
		{"bad target", func() error {
			_, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "purple", Targets: []string{"nowhere"}})
			return err
		}, admin.ErrInvalid},
		{"already stable", func() error { _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "blue"}); return err }, admin.ErrConflict},
		{"nothing to roll back", func() error { _, err := c.Rollback(ctx, "web"); return err }, admin.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestPromoteAtHealthGateIsConflict: a promote the current step refuses is a
// conflict (409), not an internal error.
func TestPromoteAtHealthGateIsConflict(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	_, c, _ := startDaemon(t, doc)
	ctx := context.Background()
	// A version whose only target never answers stays in the health gate.
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "purple", Targets: []string{testenv.FreeAddr(t)}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Promote(ctx, "web", false)
	if !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("promote in the health gate: error %v, want a conflict", err)
	}
}

// TestShutdownWithOpenEventStream: an open SSE stream (status dashboards,
// scripts) does not hold up a graceful shutdown until its timeout.
func TestShutdownWithOpenEventStream(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "LISTEN", testenv.FreeAddr(t)).Replace(analysedService)
	svcs, err := spec.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Services: svcs, StateDir: t.TempDir(), Admin: "127.0.0.1:0", Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	testenv.WaitFor(t, 10*time.Second, func() bool { return d.AdminURL() != "" && d.readyErr() == nil }, "the daemon to be ready")
	c := admin.NewClient(d.AdminURL(), d.Token())
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- c.Events(context.Background(), "", func(admin.StreamEvent) error { return nil })
	}()
	// The stream is open once the hub has a subscriber.
	testenv.WaitFor(t, 5*time.Second, func() bool {
		d.hub.mu.Lock()
		defer d.hub.mu.Unlock()
		return len(d.hub.subs) == 1
	}, "the event stream to subscribe")

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("shutdown with an open event stream took %s, want well under the 5s shutdown timeout", took)
	}
	if err := <-streamErr; !errors.Is(err, io.EOF) {
		t.Errorf("event stream ended with %v, want the end of the stream", err)
	}
}

// TestRunnerDoesNotNeedDaemonLock: swap holds d.mu while it waits for a
// removed service's runner to stop, so nothing a runner does may take d.mu
// (starting an analysis did: a deadlock between a reload that removes a
// service and a deploy of it).
func TestRunnerDoesNotNeedDaemonLock(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	d, _, _ := startDaemon(t, doc)
	r, ok := d.runner("web")
	if !ok {
		t.Fatal("no runner for web")
	}
	d.mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := r.Submit(ctx, rollout.Deploy{Version: "green", By: "test"})
	cancel()
	d.mu.Unlock()
	if err != nil {
		t.Fatalf("deploy of an analysed service while d.mu is held: %v", err)
	}
}

// TestApplyThenApplyKeepsBoth applies two changes back to back: the second
// never undoes the first, and each is in force when its apply returns.
func TestApplyThenApplyKeepsBoth(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	d, c, listen := startDaemon(t, doc)
	ctx := context.Background()
	web := strings.ReplaceAll(doc, "LISTEN", listen)
	api := strings.NewReplacer("name: web", "name: api", listen, testenv.FreeAddr(t)).Replace(web)
	if _, err := c.Apply(ctx, []byte(api)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, []byte(strings.Replace(web, "setWeight: 50", "setWeight: 30", 1))); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range d.currentServices() {
		got[s.Metadata.Name] = *s.Spec.Strategy.Canary.Steps[0].SetWeight
	}
	if len(got) != 2 || got["web"] != 30 || got["api"] != 50 {
		t.Fatalf("after two applies: %v, want web 30 and api 50", got)
	}
	// The runner has the new spec: a deploy now uses setWeight 30.
	st, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rollout == nil {
		t.Fatalf("deploy: no rollout in %+v", st)
	}
	st = waitFor(t, c, "the canary at its first weight", func(st admin.ServiceStatus) bool { return st.Weights["green"] > 0 })
	if st.Weights["green"] != 30 {
		t.Fatalf("first canary weight %d, want 30 from the applied spec", st.Weights["green"])
	}
}

// TestMalformedRequestsChangeNothing floods a canary under analysis with
// requests whose chunked bodies are broken, as fast as a client sends them (the
// attack that rolled a healthy canary back and ejected its targets): no
// verdict fails (each passes, or waits for data while the flood starves the
// good load), no target is ejected, and the canary is promoted.
func TestMalformedRequestsChangeNothing(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(),
		"{pause: {duration: 1s}}", "{pause: {duration: 3s}}").Replace(analysedService)
	d, c, listen := startDaemon(t, doc)
	stop := make(chan struct{})
	load(t, listen, stop)
	flooded := make(chan int)
	go func() {
		n := 0
		defer func() { flooded <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			conn, err := net.Dial("tcp", listen)
			if err != nil {
				continue
			}
			// x-canary is not a rule here: the split sends half to green.
			io.WriteString(conn, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n")
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			conn.Close()
			if err == nil && res.StatusCode != http.StatusBadRequest {
				t.Errorf("malformed request answered %d, want 400", res.StatusCode)
			}
			n++
		}
	}()
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "the rollout's end", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	close(stop)
	n := <-flooded
	if st.LastRollout.Result != rollout.ResultPromoted || st.StableVersion != "green" {
		t.Fatalf("after %d malformed requests: last rollout %+v, stable %q; want green promoted", n, st.LastRollout, st.StableVersion)
	}
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	passed := 0
	for _, e := range h {
		if v := e.Verdict; v != nil {
			switch v.Result {
			case rollout.VerdictFailed:
				t.Errorf("verdict %+v during the flood, want no failed check", *v)
			case rollout.VerdictPassed:
				passed++
			}
		}
	}
	if passed == 0 || n < 20 {
		t.Fatalf("%d passed verdicts over %d malformed requests; the test judged nothing", passed, n)
	}
	for _, th := range d.checker.Status("web") {
		if th.Ejected || !th.Healthy {
			t.Errorf("target %+v after the flood, want healthy and not ejected", th)
		}
	}
	t.Logf("%d malformed requests, %d passed verdicts", n, passed)
}

// TestApplyBoundedInput: a body built to exhaust the YAML parser is refused
// as invalid at once, and the service keeps its configuration.
func TestApplyBoundedInput(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	d, c, _ := startDaemon(t, doc)
	body := "apiVersion: switchyard.dev/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  stable: " +
		strings.Repeat("[", 50000) + strings.Repeat("]", 50000)
	_, err := c.Apply(context.Background(), []byte(body))
	if !errors.Is(err, admin.ErrInvalid) || !strings.Contains(err.Error(), "nest at most") {
		t.Fatalf("Apply(nested brackets) = %v, want invalid, naming the nesting limit", err)
	}
	if svcs := d.currentServices(); len(svcs) != 1 || svcs[0].Spec.Stable != "blue" {
		t.Fatalf("after a refused apply: %d services, want web unchanged", len(svcs))
	}
}

// TestBreakerRollsBackCrashingCanary: a canary failing every request is
// rolled back by the breaker within seconds, although its checks run only
// every minute and need 5 failures.
func TestBreakerRollsBackCrashingCanary(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	green.failEvery.Store(1)
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(),
		"interval: 500ms\n    threshold: 2", "interval: 1m\n    threshold: 5\n    breaker: {maxErrorRate: 50, minRequests: 20, window: 5s}").Replace(analysedService)
	_, c, listen := startDaemon(t, doc)
	stop := make(chan struct{})
	defer close(stop)
	load(t, listen, stop)
	if _, err := c.Deploy(context.Background(), "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "the crashing canary rolled back", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	if st.LastRollout.Result != rollout.ResultRolledBack || !strings.Contains(st.LastRollout.Reason, "breaker") {
		t.Fatalf("last rollout %+v, want rolled back by the breaker", st.LastRollout)
	}
}

// TestRemoveVersion: a version added with deploy --targets can be removed
// once nothing uses it, and stops being probed; the stable one is refused
// as a conflict.
func TestRemoveVersion(t *testing.T) {
	blue, green, purple := startApp(t, "blue"), startApp(t, "green"), startApp(t, "purple")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	_, c, _ := startDaemon(t, doc)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "purple", Targets: []string{purple.addr()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveVersion(ctx, "web", "purple"); !errors.Is(err, admin.ErrConflict) || !strings.Contains(err.Error(), "abort it first") {
		t.Fatalf("remove the canary of a running rollout: %v, want a conflict saying to abort", err)
	}
	if _, err := c.Abort(ctx, "web", ""); err != nil {
		t.Fatal(err)
	}
	st, err := c.RemoveVersion(ctx, "web", "purple")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range st.Targets {
		if tg.Version == "purple" {
			t.Fatalf("after remove-version: status still lists %+v", tg)
		}
	}
	if _, err := c.RemoveVersion(ctx, "web", "blue"); !errors.Is(err, admin.ErrConflict) {
		t.Fatalf("remove the stable version: %v, want a conflict", err)
	}
}

// TestHealthyVersionPromotedEveryTime: a version failing 0.1% of its
// requests, as stable does, is promoted in 20 rollouts of 20: no false
// rollback from a single error in a thin window.
func TestHealthyVersionPromotedEveryTime(t *testing.T) {
	testenv.Integration(t)
	blue, green := startApp(t, "blue"), startApp(t, "green")
	blue.failEvery.Store(1000)
	green.failEvery.Store(1000)
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr()).Replace(analysedService)
	_, c, listen := startDaemon(t, doc)
	stop := make(chan struct{})
	defer close(stop)
	load(t, listen, stop)
	ctx := context.Background()
	next := "green"
	for run := 1; run <= 20; run++ {
		if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: next}); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		st := waitFor(t, c, "the rollout's end", func(st admin.ServiceStatus) bool {
			return st.LastRollout != nil && st.LastRollout.Version == next && st.Rollout == nil
		})
		if st.LastRollout.Result != rollout.ResultPromoted {
			t.Fatalf("run %d: %s at 0.1%% errors was %s: %s", run, next, st.LastRollout.Result, st.LastRollout.Reason)
		}
		next = map[string]string{"green": "blue", "blue": "green"}[next]
	}
}

// TestCanaryBakeSwitchesBack: with bakeDuration, a canary that starts
// failing after it took all traffic is switched back to the previous
// version by the analysis that keeps running (Flagger is blind there).
func TestCanaryBakeSwitchesBack(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(),
		"steps: [{setWeight: 50}, {pause: {duration: 1s}}]", "steps: [{setWeight: 50}, {pause: {duration: 1s}}]\n      bakeDuration: 1m").Replace(analysedService)
	_, c, listen := startDaemon(t, doc)
	stop := make(chan struct{})
	defer close(stop)
	load(t, listen, stop)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "green baking at 100%", func(st admin.ServiceStatus) bool {
		return st.Weights["green"] == 100 && st.Rollout != nil && st.Step.Kind == string(rollout.StepBake)
	})
	green.failEvery.Store(5) // 20% errors after the switch
	st := waitFor(t, c, "the bake's verdict", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	if st.LastRollout.Result != rollout.ResultRolledBack || st.StableVersion != "blue" || st.Weights["blue"] != 100 {
		t.Fatalf("after failures in the bake: last %+v, stable %s, weights %v; want switched back to blue", st.LastRollout, st.StableVersion, st.Weights)
	}
}

// TestLoadGeneratorJudgesQuietCanary: a service with no user traffic at
// all is judged on the built-in load generator's requests, which reach the
// canary through the proxy at its 10% weight; a healthy canary is
// promoted, one failing 10% of requests is rolled back, and the history
// says how many requests were generated.
func TestLoadGeneratorJudgesQuietCanary(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(),
		"steps: [{setWeight: 50}, {pause: {duration: 1s}}]", "steps: [{setWeight: 10}, {pause: {duration: 1s}}]",
		"interval: 500ms", "interval: 1s\n    load: {rate: 200, concurrency: 8, path: /}").Replace(analysedService)
	_, c, _ := startDaemon(t, doc)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "the quiet canary judged", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	if st.LastRollout.Result != rollout.ResultPromoted {
		t.Fatalf("healthy quiet canary: %+v, want promoted on generated traffic", st.LastRollout)
	}
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	generated := false
	for _, e := range h {
		if v := e.Verdict; v != nil && v.Result == rollout.VerdictPassed && strings.Contains(v.Reason, "generated)") {
			generated = true
		}
	}
	if !generated {
		t.Errorf("no passed verdict says how many requests were generated")
	}

	blue.failEvery.Store(10)
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "blue"}); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, "the failing quiet canary judged", func(st admin.ServiceStatus) bool {
		return st.LastRollout != nil && st.LastRollout.Version == "blue"
	})
	if st.LastRollout.Result != rollout.ResultRolledBack || !strings.Contains(st.LastRollout.Reason, "generated") {
		t.Fatalf("failing quiet canary: %+v, want rolled back, the reason counting generated requests", st.LastRollout)
	}
}
