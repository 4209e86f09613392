package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/metrics/accesslog"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// nginxFront is a real nginx started by a test in front of toy backends,
// with the include file a daemon in nginx mode renders.
type nginxFront struct {
	*testenv.Nginx
	include string
	// reject, while it exists, makes the test command fail with nginxSays.
	reject string
	client *http.Client
}

const nginxSays = `nginx: [emerg] invalid number of arguments in "server" directive in /etc/nginx/switchyard/web.conf:7`

// startNginxFront starts nginx with a server that proxies to
// $switchyard_web and a first include file (the one a user's nginx runs
// with before Switchyard takes it over) that sends everything to first.
func startNginxFront(t *testing.T, first string) *nginxFront {
	t.Helper()
	return startNginxFrontWith(t, first, false)
}

// startNginxFrontWith is startNginxFront, with Debian's lua module loaded
// when lua is set.
func startNginxFrontWith(t *testing.T, first string, lua bool) *nginxFront {
	t.Helper()
	testenv.Integration(t)
	dir := t.TempDir()
	f := &nginxFront{include: filepath.Join(dir, "web.conf"), reject: filepath.Join(dir, "reject"), client: &http.Client{Timeout: 5 * time.Second}}
	initial := fmt.Sprintf("upstream web { server %s; }\nmap $scheme $switchyard_web { default web; }\n", first)
	if err := os.WriteFile(f.include, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Nginx = testenv.StartNginxWith(t, testenv.NginxOptions{Lua: lua}, `
    include `+dir+`/*.conf;
    server {
        listen {{.Addr}};
        location / {
            proxy_pass http://$switchyard_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
`)
	return f
}

// withAccessLog adds the documented log_format and an access_log to
// nginx.conf, reloads, and returns the log's path once nginx writes it.
func (f *nginxFront) withAccessLog(t *testing.T) string {
	t.Helper()
	logPath := filepath.Join(f.Dir, "access.log")
	conf, _ := os.ReadFile(f.Config)
	// (inside the server: the test harness's http block has access_log off)
	withLog := strings.Replace(string(conf), "    server {", "    "+accesslog.LogFormat+"\n    server {\n        access_log "+logPath+" "+accesslog.FormatName+";", 1)
	if err := os.WriteFile(f.Config, []byte(withLog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		f.get()
		b, _ := os.ReadFile(logPath)
		return len(b) > 0
	}, "nginx to write its access log")
	return logPath
}

// router is the trafficRouter block of a service in front of f.
func (f *nginxFront) router() string {
	test := append([]string{"sh", "-c", `if [ -e "$0" ]; then echo "$1" >&2; exit 1; fi; shift; exec "$@"`, f.reject, nginxSays}, f.Command("-t")...)
	tj, _ := json.Marshal(test)
	rj, _ := json.Marshal(f.Command("-s", "reload"))
	return fmt.Sprintf("  trafficRouter:\n    nginx: {includeFile: %s, testCommand: %s, reloadCommand: %s}\n", f.include, tj, rj)
}

// get sends one request through nginx and returns the body ("" on error).
func (f *nginxFront) get(header ...string) string {
	req, _ := http.NewRequest("GET", "http://"+f.Addr+"/", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := f.client.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return ""
	}
	return string(b)
}

// share sends n requests and returns how many version answered.
func (f *nginxFront) share(n int, version string) int {
	got := 0
	for range n {
		if f.get() == version {
			got++
		}
	}
	return got
}

const nginxService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  versions:
    - {name: blue, targets: [BLUE]}
    - {name: green, targets: [GREEN]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  routing:
    rules:
      - header: {name: x-canary, value: "true"}
        to: canary
  strategy:
    canary:
      steps: [{setWeight: 5}, {pause: {}}, {setWeight: 50}, {pause: {}}]
`

// TestNginxModeCanary runs a canary in nginx mode with 3 blue targets and
// 1 green, checking every step by requests through nginx; a step whose
// render nginx rejects leaves nginx serving the previous split and the
// rollout where it was, with nginx's words in the status.
func TestNginxModeCanary(t *testing.T) {
	var blues []string
	for range 3 {
		blues = append(blues, startApp(t, "blue").addr())
	}
	green := startApp(t, "green")
	f := startNginxFront(t, blues[0])
	bj, _ := json.Marshal(blues)
	doc := strings.NewReplacer("[BLUE]", string(bj), "GREEN", `"`+green.addr()+`"`).Replace(nginxService) + f.router()
	_, c, _ := runDaemon(t, parseDoc(t, doc), Options{})
	ctx := context.Background()

	// The daemon takes the include file over: blue, by the rendered file.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(f.include)
		return strings.Contains(string(b), "upstream web__blue") && f.share(20, "blue") == 20
	}, "nginx to serve blue from the rendered include file")

	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "the canary at 5%, paused", func(st admin.ServiceStatus) bool {
		return st.Weights["green"] == 5 && st.Phase == rollout.PhasePaused && st.Message == ""
	})
	const n = 600
	split := func(want int) int {
		var got int
		testenv.Poll(10*time.Second, func() bool {
			got = f.share(n, "green")
			return abs(got-n*want/100) <= n/100
		})
		return got
	}
	if got := split(5); abs(got-30) > 6 {
		t.Fatalf("canary 5%% with 3 blue targets and 1 green: %d of %d requests reached green, want 30±6", got, n)
	}
	if got := f.get("X-Canary", "true"); got != "green" {
		t.Errorf("x-canary: true answered %q, want green", got)
	}

	// nginx rejects the next render: the old file stays, nginx serves 5%,
	// the rollout does not advance, and the status quotes nginx.
	before, _ := os.ReadFile(f.include)
	os.WriteFile(f.reject, nil, 0o644)
	if _, err := c.Promote(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	st = waitFor(t, c, "the router failure in the status", func(st admin.ServiceStatus) bool { return st.Message != "" })
	if !strings.Contains(st.Message, nginxSays) {
		t.Errorf("status message %q does not quote nginx (%q)", st.Message, nginxSays)
	}
	if st.Phase != rollout.PhaseDegraded {
		t.Errorf("phase %q after a rejected render, want %q", st.Phase, rollout.PhaseDegraded)
	}
	// The engine keeps the weights in force apart from those it asked for.
	if st.AppliedWeights["green"] != 5 || st.Weights["green"] != 50 {
		t.Errorf("after a rejected render: weights in force %v, asked %v; want green 5 in force, 50 asked", st.AppliedWeights, st.Weights)
	}
	// The runner asks again every tick, and each attempt puts the new file
	// in place while the test command runs: outside those moments the old
	// file is there.
	var after []byte
	if !testenv.Poll(5*time.Second, func() bool {
		after, _ = os.ReadFile(f.include)
		return string(after) == string(before)
	}) {
		t.Errorf("the include file changed although nginx rejected it:\n%s", after)
	}
	if got := f.share(n, "green"); abs(got-30) > 6 {
		t.Errorf("after the rejected render %d of %d requests reached green, want 30±6 (the previous split)", got, n)
	}
	// The rollout holds (the runner asks nginx again every tick).
	held := st.Step.Index
	f.share(200, "green") // some time passes
	if st, _ := c.Service(ctx, "web"); st.Step.Index != held || st.Message == "" {
		t.Errorf("rollout at step %d (message %q) while nginx refuses; want it held at step %d", st.Step.Index, st.Message, held)
	}

	// nginx accepts again: the runner's retry applies 50%.
	os.Remove(f.reject)
	waitFor(t, c, "the canary at 50% in force", func(st admin.ServiceStatus) bool {
		return st.Weights["green"] == 50 && st.Message == "" && st.Phase == rollout.PhasePaused
	})
	if got := split(50); abs(got-300) > 6 {
		t.Errorf("canary 50%%: %d of %d requests reached green, want 300±6", got, n)
	}
	if _, err := c.Promote(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "green promoted", func(st admin.ServiceStatus) bool { return st.StableVersion == "green" && st.LastRollout != nil })
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.share(30, "green") == 30 }, "nginx to serve only green")
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

const nginxAnalysed = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  versions:
    - {name: blue, targets: [BLUE]}
    - {name: green, targets: [GREEN]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {duration: 10m}}]
  analysis:
    interval: 500ms
    threshold: 2
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
`

// TestNginxModeRollbackFromAccessLog rolls back a canary that starts
// failing 5% of its requests, judged from nginx's access log alone (nginx
// mode has no proxy of Switchyard's to measure), and the log is rotated in
// the middle of the rollout, before the errors start: the verdicts that
// roll back are read from the new file.
func TestNginxModeRollbackFromAccessLog(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	f := startNginxFront(t, blue.addr())
	logPath := f.withAccessLog(t)
	router := strings.Replace(f.router(), "nginx: {", "nginx: {accessLog: "+logPath+", ", 1)
	doc := strings.NewReplacer("BLUE", `"`+blue.addr()+`"`, "GREEN", `"`+green.addr()+`"`).Replace(nginxAnalysed) + router
	d, c, _ := runDaemon(t, parseDoc(t, doc), Options{})
	ctx := context.Background()
	stop := make(chan struct{})
	defer close(stop)
	load(t, f.Addr, stop)

	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	passed := func(st admin.ServiceStatus) bool {
		for _, v := range st.LastVerdicts {
			if v.Metric == spec.MetricRequestSuccessRate && v.Result == rollout.VerdictPassed {
				return true
			}
		}
		return false
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		st, err := c.Service(ctx, "web")
		return err == nil && st.Weights["green"] == 50 && passed(st)
	}, "a passing verdict of the healthy canary at 50%")

	// logrotate's way: rename, then nginx -s reopen.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(f.Command("-s", "reopen")[0], f.Command("-s", "reopen")[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -s reopen: %v\n%s", err, out)
	}
	follower := d.logs.follower("web")
	testenv.WaitFor(t, 10*time.Second, func() bool { return follower.Stats().Reopens >= 1 }, "the follower to open the new access log")
	countedAtRotation := follower.Stats().Counted

	green.failEvery.Store(20) // 5% of green's requests fail from now on
	st := waitFor(t, c, "green rolled back", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	if st.LastRollout.Result != rollout.ResultRolledBack || st.StableVersion != "blue" || st.Weights["blue"] != 100 {
		t.Fatalf("last rollout %+v, stable %q, weights %v; want rolled back to blue 100", st.LastRollout, st.StableVersion, st.Weights)
	}
	if !strings.Contains(st.LastRollout.Reason, spec.MetricRequestSuccessRate) {
		t.Errorf("rollback reason %q does not name the metric", st.LastRollout.Reason)
	}
	stats := follower.Stats()
	t.Logf("access log: %+v; rollback: %s", stats, st.LastRollout.Reason)
	if stats.Counted <= countedAtRotation {
		t.Errorf("no line counted after the rotation (%d before, %d now): the verdicts did not come from the new file", countedAtRotation, stats.Counted)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.share(30, "blue") == 30 }, "nginx to serve only blue after the rollback")
}

const switchService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  versions:
    - {name: blue, targets: [BLUE]}
    - {name: green, targets: [GREEN]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  strategy:
    blueGreen: {scaleDownDelay: 10m}
`

// TestDeployToFirstRequest measures the time from a blue-green deploy to
// the first request the new version answers, through the built-in proxy
// and through nginx in each mode, and logs them side by side (timings are
// reported, never asserted). Each leg deploys back and forth a few times;
// the median is reported.
func TestDeployToFirstRequest(t *testing.T) {
	testenv.Integration(t)
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", `"`+blue.addr()+`"`, "GREEN", `"`+green.addr()+`"`).Replace(switchService)
	const rounds = 5
	measure := func(t *testing.T, c *admin.Client, front string) time.Duration {
		ctx := context.Background()
		client := &http.Client{Timeout: 5 * time.Second}
		get := func() string {
			res, err := client.Get("http://" + front + "/")
			if err != nil {
				return ""
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return string(b)
		}
		testenv.WaitFor(t, 10*time.Second, func() bool { return get() == "blue" }, "blue to answer")
		var took []time.Duration
		to := "green"
		for range rounds {
			start := time.Now()
			if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: to}); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 10*time.Second, func() bool { return get() == to }, to+" to answer")
			took = append(took, time.Since(start))
			waitFor(t, c, to+" promoted", func(st admin.ServiceStatus) bool {
				return st.StableVersion == to && st.LastRollout != nil && st.LastRollout.Version == to && st.Rollout == nil
			})
			to = map[string]string{"green": "blue", "blue": "green"}[to]
		}
		slices.Sort(took)
		return took[len(took)/2]
	}
	results := map[string]time.Duration{}
	t.Run("proxy", func(t *testing.T) {
		_, c, listen := startDaemon(t, strings.Replace(doc, "spec:\n", "spec:\n  listen: LISTEN\n", 1))
		results["proxy"] = measure(t, c, listen)
	})
	for _, mode := range []string{spec.NginxModeReload, spec.NginxModeLua} {
		t.Run("nginx-"+mode, func(t *testing.T) {
			f := startNginxFrontWith(t, blue.addr(), mode == spec.NginxModeLua)
			router := f.router()
			if mode == spec.NginxModeLua {
				router = strings.Replace(router, "nginx: {", "nginx: {mode: lua, controlAddress: "+testenv.FreeAddr(t)+", ", 1)
			}
			_, c, _ := runDaemon(t, parseDoc(t, doc+router), Options{})
			results["nginx "+mode] = measure(t, c, f.Addr)
		})
	}
	p := results["proxy"]
	line := fmt.Sprintf("deploy to first request of the new version (median of %d blue-green deploys): proxy %v", rounds, p.Round(time.Millisecond))
	for _, k := range []string{"nginx reload", "nginx lua"} {
		if d, ok := results[k]; ok && p > 0 {
			line += fmt.Sprintf(", %s %v (%.1f× the proxy's)", k, d.Round(time.Millisecond), float64(d)/float64(p))
		}
	}
	t.Log(line)
}

// TestNginxModeHealthGate: in nginx mode Switchyard's own health checks
// gate the new version as in standalone mode: while green fails them the
// rollout waits at its health gate and nginx sends green nothing, not even
// the requests the x-canary rule would send it (rendered down); once green
// passes, the canary step is in force.
func TestNginxModeHealthGate(t *testing.T) {
	blue := startApp(t, "blue")
	var sick atomic.Bool
	sick.Store(true)
	green := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "green")
	}))
	t.Cleanup(green.Close)
	f := startNginxFront(t, blue.addr())
	doc := strings.NewReplacer("[BLUE]", `["`+blue.addr()+`"]`, "GREEN", `"`+strings.TrimPrefix(green.URL, "http://")+`"`).Replace(nginxService) + f.router()
	_, c, _ := runDaemon(t, parseDoc(t, doc), Options{})
	ctx := context.Background()
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.share(10, "blue") == 10 }, "nginx to serve blue")
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "the rollout at its health gate", func(st admin.ServiceStatus) bool {
		return st.Rollout != nil && st.Step.Kind == string(rollout.StepHealthGate)
	})
	// Green's probes have failed: still gated, nothing reaches green.
	waitFor(t, c, "a failed probe of green", func(st admin.ServiceStatus) bool {
		for _, tg := range st.Targets {
			if tg.Version == "green" && tg.LastError != "" {
				return true
			}
		}
		return false
	})
	for range 5 {
		if got := f.share(20, "green"); got != 0 {
			t.Fatalf("%d requests reached green while it fails its health checks", got)
		}
		if got := f.get("X-Canary", "true"); got == "green" {
			t.Fatalf("x-canary: true reached green while it fails its health checks")
		}
	}
	if st, _ = c.Service(ctx, "web"); st.Step.Kind != string(rollout.StepHealthGate) || st.Weights["green"] != 0 {
		t.Fatalf("rollout at %q with weights %v while green is unhealthy; want held at the health gate", st.Step.Kind, st.Weights)
	}
	sick.Store(false)
	waitFor(t, c, "the canary at 5% once green is healthy", func(st admin.ServiceStatus) bool { return st.Weights["green"] == 5 })
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.get("X-Canary", "true") == "green" }, "x-canary: true to reach green")
}

// TestNginxModeSequentialJudge: the sequential judge reads an nginx-mode
// service's one-second windows from its access log: a canary failing 5%
// of its requests is rolled back by the judge, without Prometheus and
// without Switchyard's proxy.
func TestNginxModeSequentialJudge(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	green.failEvery.Store(20)
	f := startNginxFront(t, blue.addr())
	logPath := f.withAccessLog(t)
	doc := strings.NewReplacer("BLUE", `"`+blue.addr()+`"`, "GREEN", `"`+green.addr()+`"`).Replace(strings.Replace(nginxAnalysed, `    interval: 500ms
    threshold: 2
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
`, "    judge: sequential\n", 1)) + strings.Replace(f.router(), "nginx: {", "nginx: {accessLog: "+logPath+", ", 1)
	_, c, _ := runDaemon(t, parseDoc(t, doc), Options{})
	stop := make(chan struct{})
	defer close(stop)
	load(t, f.Addr, stop)
	if _, err := c.Deploy(context.Background(), "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "green rolled back", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	t.Logf("rollback: %s", st.LastRollout.Reason)
	if st.LastRollout.Result != rollout.ResultRolledBack || !strings.Contains(st.LastRollout.Reason, "sequential judge") {
		t.Fatalf("last rollout %+v; want rolled back by the sequential judge", st.LastRollout)
	}
}
