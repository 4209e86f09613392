package health

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/spec"
)

func TestNewConfig(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*spec.HealthCheck)
		field string // in the error; "" when accepted
	}{
		{"defaulted", func(*spec.HealthCheck) {}, ""},
		{"empty expectedStatus means 200-399", func(h *spec.HealthCheck) { h.ExpectedStatus = nil }, ""},
		{"zero backoff never ejects", func(h *spec.HealthCheck) { h.Passive.Backoff = spec.D(0) }, ""},
		{"empty path", func(h *spec.HealthCheck) { h.Path = "" }, "healthCheck.path"},
		{"relative path", func(h *spec.HealthCheck) { h.Path = "healthz" }, "healthCheck.path"},
		{"zero interval", func(h *spec.HealthCheck) { h.Interval = spec.D(0) }, "healthCheck.interval"},
		{"zero timeout", func(h *spec.HealthCheck) { h.Timeout = spec.D(0) }, "healthCheck.timeout"},
		{"zero healthyThreshold", func(h *spec.HealthCheck) { h.HealthyThreshold = 0 }, "healthCheck.healthyThreshold"},
		{"zero unhealthyThreshold", func(h *spec.HealthCheck) { h.UnhealthyThreshold = 0 }, "healthCheck.unhealthyThreshold"},
		{"zero consecutiveFailures", func(h *spec.HealthCheck) { h.Passive.ConsecutiveFailures = 0 }, "healthCheck.passive.consecutiveFailures"},
		{"negative backoff", func(h *spec.HealthCheck) { h.Passive.Backoff = spec.D(-time.Second) }, "healthCheck.passive.backoff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := testCheck()
			tc.edit(&hc)
			_, err := NewConfig(hc)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("NewConfig = %v, want accepted", err)
			case tc.field != "" && (err == nil || !strings.Contains(err.Error(), tc.field)):
				t.Fatalf("NewConfig = %v, want an error naming %s", err, tc.field)
			}
		})
	}
	// A spec nobody defaulted is refused, not silently defaulted here.
	if _, err := NewConfig(spec.HealthCheck{}); err == nil {
		t.Error("NewConfig of an undefaulted HealthCheck = nil error, want refused")
	}
	var s spec.Service
	s.Default()
	if _, err := NewConfig(s.Spec.HealthCheck); err != nil {
		t.Errorf("NewConfig of spec.Default's HealthCheck = %v", err)
	}
}

func TestExpectedStatus(t *testing.T) {
	cases := []struct {
		name   string
		expect []int
		code   int
		want   bool
	}{
		{"default 200", nil, 200, true},
		{"default 399", nil, 399, true},
		{"default 400", nil, 400, false},
		{"default 199", nil, 199, false},
		{"listed", []int{204, 418}, 418, true},
		{"not listed", []int{204}, 200, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hc := testCheck()
			hc.ExpectedStatus = tc.expect
			if got := mustConfig(t, hc).expected(tc.code); got != tc.want {
				t.Errorf("expected(%d) with %v = %v, want %v", tc.code, tc.expect, got, tc.want)
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	cases := []struct {
		in   string
		want Address
		ok   bool
	}{
		{"10.0.0.1:80", Address{Host: "10.0.0.1:80", Scheme: "http"}, true},
		{"http://a:80", Address{Host: "a:80", Scheme: "http"}, true},
		{"https://a:443", Address{Host: "a:443", Scheme: "https"}, true},
		{"https://a:443/", Address{}, false}, // a path is not an address, as validate says
		{"h2c://a:9000", Address{Host: "a:9000", Scheme: "http", H2C: true}, true},
		{"ftp://a:21", Address{}, false},
		{"no-port", Address{}, false},
	}
	for _, tc := range cases {
		got, err := ParseAddress(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %+v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if _, err := ParseAddresses([]string{"a:1", "a:1"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("ParseAddresses of a duplicate = %v, want listed twice", err)
	}
}

// TestActiveChecks: targets are probed before any traffic, reported per
// version, exported as switchyard_target_up, and a removed version stops
// being checked and reported.
func TestActiveChecks(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	reg := prometheus.NewRegistry()
	c := newTestChecker(t, Options{Registerer: reg})
	var ev events
	c.OnChange(ev.record)
	c.Configure("web", mustConfig(t, testCheck()))
	ts := mustSetVersion(t, c, "web", "v2", a.addr(), b.addr())
	if len(ts) != 2 || ts[0].Addr() != a.addr() || ts[1].Addr() != b.addr() {
		t.Fatalf("SetVersion returned %v, want the targets in order", ts)
	}
	eventually(t, 5*time.Second, "v2 reported 2/2 healthy", func() bool { return ev.has(event{"web", "v2", 2, 2}) })
	if v, ok := gauge(t, reg, a.addr()); !ok || v != 1 {
		t.Errorf("switchyard_target_up = %v (exists %v), want 1", v, ok)
	}

	b.status.Store(http.StatusInternalServerError)
	eventually(t, 5*time.Second, "v2 reported 1/2 after 2/2", func() bool { return ev.last() == event{"web", "v2", 1, 2} })
	var hb TargetHealth
	for _, h := range c.Status("web") {
		if h.Address == b.addr() {
			hb = h
		}
	}
	if hb.Healthy || hb.Version != "v2" || !strings.Contains(hb.LastError, "returned 500") {
		t.Errorf("Status of the failing target = %+v, want unhealthy with its 500", hb)
	}
	if ts[1].Routable(time.Now().UnixNano()) {
		t.Error("an actively unhealthy target is routable")
	}
	if v, _ := gauge(t, reg, b.addr()); v != 0 {
		t.Errorf("switchyard_target_up of the failing target = %v, want 0", v)
	}

	b.status.Store(http.StatusOK)
	eventually(t, 5*time.Second, "v2 back at 2/2", func() bool { return ev.last() == event{"web", "v2", 2, 2} })
	for _, h := range c.Status("web") {
		if h.LastError != "" {
			t.Errorf("a recovered target shows a stale error: %+v", h)
		}
	}

	c.RemoveVersion("web", "v2")
	if st := c.Status("web"); len(st) != 0 {
		t.Errorf("Status after RemoveVersion = %+v, want none", st)
	}
	if _, ok := gauge(t, reg, a.addr()); ok {
		t.Error("switchyard_target_up kept for a removed version")
	}
	// Probes stop: one already on its way may still land, none after. A
	// new target's probes measure the intervals that pass.
	before := a.probes.Load()
	n := len(ev.list())
	clock := newBackend(t)
	mustSetVersion(t, c, "web", "other", clock.addr())
	eventually(t, 5*time.Second, "three probe intervals", func() bool { return clock.probes.Load() >= 4 })
	if got := a.probes.Load(); got > before+1 {
		t.Errorf("removed target probed %d times after RemoveVersion", got-before)
	}
	for _, e := range ev.list()[n:] {
		if e.version == "v2" {
			t.Errorf("reported %+v after RemoveVersion", e)
		}
	}
}

// TestThresholds: the first probe decides at once; after that a target
// changes state only after healthyThreshold or unhealthyThreshold results in
// a row.
func TestThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pb := newPipeBackends()
		c := newTestChecker(t, Options{DialContext: pb.dial})
		hc := testCheck()
		hc.Interval, hc.Timeout = spec.D(time.Second), spec.D(500*time.Millisecond)
		hc.HealthyThreshold, hc.UnhealthyThreshold = 2, 3
		c.Configure("web", mustConfig(t, hc))
		tg := mustSetVersion(t, c, "web", "v1", "a:80")[0]
		synctest.Wait()
		if !tg.Healthy(time.Now().UnixNano()) {
			t.Fatal("not healthy after one good probe, want the first probe to decide")
		}
		// Between two probes from here on: each step below sees one probe.
		time.Sleep(hc.Interval.Duration / 2)
		step := func() bool {
			time.Sleep(hc.Interval.Duration)
			synctest.Wait()
			return tg.Healthy(time.Now().UnixNano())
		}
		pb.set("a:80", http.StatusServiceUnavailable)
		for i, want := range []bool{true, true, false} {
			if got := step(); got != want {
				t.Fatalf("failing probe %d: healthy = %v, want %v", i+1, got, want)
			}
		}
		pb.set("a:80", http.StatusOK)
		if step() {
			t.Fatal("healthy after one good probe of 2")
		}
		pb.set("a:80", http.StatusServiceUnavailable)
		step() // a failure resets the streak of successes
		pb.set("a:80", http.StatusOK)
		for i, want := range []bool{false, true} {
			if got := step(); got != want {
				t.Fatalf("good probe %d after a reset: healthy = %v, want %v", i+1, got, want)
			}
		}
	})
}

// TestPassive: consecutive failures eject a target for the backoff, a
// success resets the count, the version's last routable target is never
// ejected, and the target returns when the backoff ends.
func TestPassive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pb := newPipeBackends()
		c := newTestChecker(t, Options{DialContext: pb.dial})
		var ev events
		c.OnChange(ev.record)
		hc := testCheck()
		hc.Interval, hc.Timeout = spec.D(time.Second), spec.D(500*time.Millisecond)
		hc.Passive = spec.PassiveHealth{ConsecutiveFailures: 3, Backoff: spec.D(10 * time.Second)}
		c.Configure("web", mustConfig(t, hc))
		ts := mustSetVersion(t, c, "web", "v1", "a:80", "b:80")
		a, b := ts[0], ts[1]
		synctest.Wait()
		if ev.last() != (event{"web", "v1", 2, 2}) {
			t.Fatalf("events %+v, want 2/2 after the first probes", ev.list())
		}
		now := func() int64 { return time.Now().UnixNano() }

		b.PassiveFailure("target returned 502")
		b.PassiveFailure("target returned 502")
		b.PassiveSuccess()
		b.PassiveFailure("target returned 502")
		b.PassiveFailure("target returned 502")
		if !b.Routable(now()) {
			t.Fatal("ejected after 2 failures in a row (a success between), want 3")
		}
		b.PassiveFailure("target returned 503")
		if b.Routable(now()) || !b.Ejected(now()) || b.Healthy(now()) {
			t.Fatal("not ejected after 3 failures in a row")
		}
		if b.LastError() != "target returned 503" {
			t.Errorf("LastError = %q, want the last failure", b.LastError())
		}
		synctest.Wait()
		if ev.last() != (event{"web", "v1", 1, 2}) {
			t.Fatalf("events %+v, want 1/2 after the ejection", ev.list())
		}

		for range 10 {
			a.PassiveFailure("dial tcp: connection refused")
		}
		if !a.Routable(now()) {
			t.Fatal("the version's last routable target was ejected")
		}

		time.Sleep(hc.Passive.Backoff.Duration + hc.Interval.Duration/2)
		synctest.Wait()
		if !b.Routable(now()) || b.Ejected(now()) {
			t.Fatal("still ejected after the backoff")
		}
		if ev.last() != (event{"web", "v1", 2, 2}) {
			t.Fatalf("events %+v, want 2/2 once the backoff ran out", ev.list())
		}
	})
	t.Run("zero backoff never ejects", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pb := newPipeBackends()
			c := newTestChecker(t, Options{DialContext: pb.dial})
			hc := testCheck()
			hc.Passive.Backoff = spec.D(0)
			c.Configure("web", mustConfig(t, hc))
			ts := mustSetVersion(t, c, "web", "v1", "a:80", "b:80")
			synctest.Wait()
			for range 10 {
				ts[1].PassiveFailure("target returned 502")
			}
			if !ts[1].Routable(time.Now().UnixNano()) {
				t.Error("ejected with a zero backoff")
			}
		})
	})
}

// TestNoReportBeforeFirstProbe: a version whose targets have not been
// probed yet is not reported as "0 healthy" (a restored canary would read
// that as lost targets); the first report is the first probe's result.
func TestNoReportBeforeFirstProbe(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			<-release
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	c := newTestChecker(t, Options{})
	var ev events
	c.OnChange(ev.record)
	c.Configure("web", mustConfig(t, testCheck()))
	mustSetVersion(t, c, "web", "v1", slow.Listener.Addr().String())
	// Registration marks the version for the notifier; give it the chance
	// to report early (it must not) by waiting for an unrelated report.
	other := newBackend(t)
	mustSetVersion(t, c, "web", "v2", other.addr())
	eventually(t, 5*time.Second, "v2 reported", func() bool { return ev.has(event{"web", "v2", 1, 1}) })
	close(release)
	eventually(t, 5*time.Second, "v1 reported", func() bool { return ev.has(event{"web", "v1", 1, 1}) })
	for _, e := range ev.list() {
		if e.version == "v1" {
			if e != (event{"web", "v1", 1, 1}) {
				t.Fatalf("first report of v1 = %+v, want 1/1 (its first probe), events %+v", e, ev.list())
			}
			break
		}
	}
}

// TestProbeProtocols: h2c targets are probed over cleartext HTTP/2, https
// targets over TLS, plain ones over HTTP/1.1.
func TestProbeProtocols(t *testing.T) {
	plain := newBackend(t)
	h2 := &backend{}
	h2.status.Store(http.StatusOK)
	h2.Server = httptest.NewUnstartedServer(http.HandlerFunc(h2.serve))
	h2.Config.Protocols = new(http.Protocols)
	h2.Config.Protocols.SetUnencryptedHTTP2(true)
	h2.Start()
	t.Cleanup(h2.Close)
	tl := &backend{}
	tl.status.Store(http.StatusOK)
	tl.Server = httptest.NewTLSServer(http.HandlerFunc(tl.serve))
	t.Cleanup(tl.Close)

	c := newTestChecker(t, Options{TLSClientConfig: &tls.Config{RootCAs: tl.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}})
	var ev events
	c.OnChange(ev.record)
	c.Configure("web", mustConfig(t, testCheck()))
	mustSetVersion(t, c, "web", "v1", plain.addr(), "h2c://"+h2.addr(), "https://"+tl.addr())
	eventually(t, 5*time.Second, "all three healthy", func() bool { return ev.has(event{"web", "v1", 3, 3}) })
	for _, tc := range []struct {
		name string
		b    *backend
		want int32
	}{{"plain", plain, 1}, {"h2c", h2, 2}, {"https", tl, 1}} {
		if got := tc.b.proto.Load(); got != tc.want {
			t.Errorf("%s probe was HTTP/%d, want HTTP/%d", tc.name, got, tc.want)
		}
	}
}

// TestConfigureKeepsTargets: a target that stays listed keeps its state and
// its probe across SetVersion and Configure; probes use the new settings.
func TestConfigureKeepsTargets(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	c := newTestChecker(t, Options{})
	var ev events
	c.OnChange(ev.record)
	c.Configure("web", mustConfig(t, testCheck()))
	first := mustSetVersion(t, c, "web", "v1", a.addr())
	eventually(t, 5*time.Second, "v1 healthy", func() bool { return ev.has(event{"web", "v1", 1, 1}) })

	again := mustSetVersion(t, c, "web", "v1", a.addr(), b.addr())
	if again[0] != first[0] {
		t.Fatal("SetVersion replaced a target that stayed listed")
	}
	if !again[0].Healthy(time.Now().UnixNano()) {
		t.Error("a kept target lost its state")
	}
	eventually(t, 5*time.Second, "v1 at 2/2", func() bool { return ev.has(event{"web", "v1", 2, 2}) })

	hc := testCheck()
	hc.Path = "/elsewhere" // the backends answer 404 there
	c.Configure("web", mustConfig(t, hc))
	eventually(t, 5*time.Second, "the new path fails both", func() bool { return ev.last() == event{"web", "v1", 0, 2} })
	if got := mustSetVersion(t, c, "web", "v1", a.addr(), b.addr()); got[0] != first[0] {
		t.Error("Configure replaced a target")
	}
}

func TestSetVersionRefused(t *testing.T) {
	c := newTestChecker(t, Options{})
	if _, err := c.SetVersion("web", "v1", []string{"127.0.0.1:1"}); !errors.Is(err, ErrUnknownService) {
		t.Errorf("SetVersion of an unconfigured service = %v, want ErrUnknownService", err)
	}
	c.Configure("web", mustConfig(t, testCheck()))
	for _, tc := range []struct {
		name, ver string
		addrs     []string
	}{
		{"empty version", "", []string{"127.0.0.1:1"}},
		{"bad address", "v1", []string{"no-port"}},
		{"duplicate", "v1", []string{"127.0.0.1:1", "127.0.0.1:1"}},
	} {
		if _, err := c.SetVersion("web", tc.ver, tc.addrs); err == nil {
			t.Errorf("%s: SetVersion = nil error, want refused", tc.name)
		}
	}
	if st := c.Status("web"); len(st) != 0 {
		t.Errorf("Status after refusals = %+v, want nothing registered", st)
	}
	c.RemoveService("web")
	if _, err := c.SetVersion("web", "v1", []string{"127.0.0.1:1"}); !errors.Is(err, ErrUnknownService) {
		t.Errorf("SetVersion after RemoveService = %v, want ErrUnknownService", err)
	}
	c.Close()
	c.Close() // idempotent
	c.Configure("web", mustConfig(t, testCheck()))
	if _, err := c.SetVersion("web", "v1", []string{"127.0.0.1:1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetVersion after Close = %v, want ErrClosed", err)
	}
}

// TestHotPathAllocs: what a data plane calls per request allocates nothing.
func TestHotPathAllocs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pb := newPipeBackends()
		c := newTestChecker(t, Options{DialContext: pb.dial})
		c.Configure("web", mustConfig(t, testCheck()))
		tg := mustSetVersion(t, c, "web", "v1", "a:80")[0]
		synctest.Wait()
		now := time.Now().UnixNano()
		if n := testing.AllocsPerRun(100, func() {
			if !tg.Routable(now) {
				t.Fatal("not routable")
			}
			tg.PassiveSuccess()
		}); n != 0 {
			t.Errorf("Routable+PassiveSuccess: %v allocs, want 0", n)
		}
	})
}

func BenchmarkRoutable(b *testing.B) {
	c := newTestChecker(b, Options{})
	c.Configure("web", mustConfig(b, testCheck()))
	ts := mustSetVersion(b, c, "web", "v1", "127.0.0.1:1")
	tg := ts[0]
	now := time.Now().UnixNano()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tg.Routable(now) {
				tg.PassiveSuccess()
			}
		}
	})
}

// TestFirstProbeDocumented: the configuration reference says what
// TestThresholds shows, that the first probe decides with no threshold
// (the reference once said every healthy target had passed
// healthyThreshold checks in a row).
func TestFirstProbeDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"spec.healthCheck.healthyThreshold", "spec.healthCheck.unhealthyThreshold"} {
		var row string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "| `"+field+"`") {
				row = l
			}
		}
		if !strings.Contains(row, "first probe") || !strings.Contains(row, "decides at once") {
			t.Errorf("docs/configuration.md row of %s does not say that the first probe decides at once:\n%s", field, row)
		}
	}
}
