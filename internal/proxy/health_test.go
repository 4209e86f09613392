package proxy

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

type healthEvent struct {
	service, version string
	healthy, total   int
}

type healthLog struct {
	mu     sync.Mutex
	events []healthEvent
}

func (h *healthLog) record(s, v string, healthy, total int) {
	h.mu.Lock()
	h.events = append(h.events, healthEvent{s, v, healthy, total})
	h.mu.Unlock()
}

func (h *healthLog) has(want healthEvent) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.events {
		if e == want {
			return true
		}
	}
	return false
}

func TestActiveHealthBeforeTraffic(t *testing.T) {
	v1, v2a, v2b := newBackend(t, "v1"), newBackend(t, "v2"), newBackend(t, "v2")
	reg := prometheus.NewRegistry()
	p := newTestProxy(t, reg)
	var log healthLog
	p.OnHealthChange(log.record)
	mustApply(t, p, testService("web", "v1", ver("v1", v1)))
	if err := p.SetVersion("web", "v2", []string{v2a.addr(), v2b.addr()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "v2 reported 2/2 healthy with no traffic", func() bool {
		return log.has(healthEvent{"web", "v2", 2, 2})
	})
	if v2a.hits.Load()+v2b.hits.Load() != 0 {
		t.Fatal("v2 took traffic before being routed")
	}
	// The checker New made exports its gauge to the proxy's registry.
	if n, err := testutil.GatherAndCount(reg, "switchyard_target_up"); err != nil || n != 3 {
		t.Errorf("switchyard_target_up series = %d, %v; want 3", n, err)
	}
	v2b.healthOK.Store(false)
	var hb TargetHealth
	eventually(t, 5*time.Second, "the failing target reported unhealthy", func() bool {
		for _, h := range p.Health("web") {
			if h.Address == v2b.addr() {
				hb = h
			}
		}
		return !hb.Healthy
	})
	eventually(t, 5*time.Second, "v2 reported 1/2 healthy after 2/2", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		n := len(log.events)
		return n > 0 && log.events[n-1] == healthEvent{"web", "v2", 1, 2}
	})
	if hb.Healthy || hb.LastError == "" || hb.Version != "v2" {
		t.Errorf("Health of the failing target = %+v, want unhealthy with an error", hb)
	}
	// Unhealthy targets get no traffic.
	mustRoute(t, p, "web", rollout.Routing{Stable: "v2", Weights: rollout.Weights{"v2": 100}})
	c := newClient(2)
	for range 50 {
		if code, _, err := get(c, proxyURL(t, p, "web"), nil); err != nil || code != 200 {
			t.Fatalf("GET: %d %v", code, err)
		}
	}
	if v2b.hits.Load() != 0 {
		t.Errorf("unhealthy target served %d requests", v2b.hits.Load())
	}
	// Removing a version stops its checks and reports nothing more for it.
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 100}})
	if err := p.RemoveVersion("web", "v2"); err != nil {
		t.Fatal(err)
	}
	for _, h := range p.Health("web") {
		if h.Version == "v2" {
			t.Errorf("Health still lists removed target %+v", h)
		}
	}
}

func TestPassiveEjection(t *testing.T) {
	t.Run("ejects a failing target", func(t *testing.T) {
		good, bad := newBackend(t, "v1"), newBackend(t, "v1")
		bad.fail.Store(http.StatusBadGateway)
		p := newTestProxy(t, nil)
		var log healthLog
		p.OnHealthChange(log.record)
		mustApply(t, p, testService("web", "v1", ver("v1", good, bad)))
		eventually(t, 5*time.Second, "both healthy", func() bool { return log.has(healthEvent{"web", "v1", 2, 2}) })
		c := newClient(1)
		eventually(t, 5*time.Second, "the failing target ejected", func() bool {
			_, _, _ = get(c, proxyURL(t, p, "web"), nil)
			for _, h := range p.Health("web") {
				if h.Address == bad.addr() {
					return h.Ejected
				}
			}
			return false
		})
		before := bad.hits.Load()
		for range 50 {
			if code, v, err := get(c, proxyURL(t, p, "web"), nil); err != nil || code != 200 || v != "v1" {
				t.Fatalf("GET after ejection: %d %v", code, err)
			}
		}
		if bad.hits.Load() != before {
			t.Errorf("ejected target got %d requests", bad.hits.Load()-before)
		}
		if !log.has(healthEvent{"web", "v1", 1, 2}) {
			t.Error("ejection not reported to OnHealthChange")
		}
	})
	t.Run("never ejects the last healthy target", func(t *testing.T) {
		only := newBackend(t, "v1")
		only.fail.Store(http.StatusServiceUnavailable)
		p := newTestProxy(t, nil)
		mustApply(t, p, testService("web", "v1", ver("v1", only)))
		c := newClient(1)
		for range 20 {
			if code, _, err := get(c, proxyURL(t, p, "web"), nil); err != nil || code != http.StatusServiceUnavailable {
				t.Fatalf("GET: %d %v, want the target's 503", code, err)
			}
		}
		for _, h := range p.Health("web") {
			if h.Ejected {
				t.Errorf("the only target was ejected: %+v", h)
			}
		}
	})
}

func TestFallbackToOtherVersion(t *testing.T) {
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	p := newTestProxy(t, nil)
	var log healthLog
	p.OnHealthChange(log.record)
	mustApply(t, p, testService("web", "v1", ver("v1", v1), ver("v2", v2)))
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 50, "v2": 50}})
	v2.healthOK.Store(false)
	eventually(t, 5*time.Second, "v2 down", func() bool { return log.has(healthEvent{"web", "v2", 0, 1}) })
	c := newClient(1)
	for range 40 {
		if code, v, err := get(c, proxyURL(t, p, "web"), nil); err != nil || code != 200 || v != "v1" {
			t.Fatalf("GET = %d from %q (%v), want 200 from v1 while v2 is down", code, v, err)
		}
	}
}

func TestApplyReload(t *testing.T) {
	v1, v1b := newBackend(t, "v1"), newBackend(t, "v1")
	p := newTestProxy(t, nil)
	s := testService("web", "v1", ver("v1", v1))
	mustApply(t, p, s)
	addr := p.Addr("web").String()
	// Pin the listen address so a reload names the same listener.
	s.Spec.Listen = addr
	mustApply(t, p, s)
	c := newClient(1)
	if code, _, err := get(c, "http://"+addr, nil); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	// Registered by SetVersion, not in the spec: survives reloads.
	v2 := newBackend(t, "v2")
	if err := p.SetVersion("web", "v2", []string{v2.addr()}); err != nil {
		t.Fatal(err)
	}
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 50, "v2": 50}})

	cases := []struct {
		name string
		edit func(*spec.Service)
		ok   bool
	}{
		{"same spec", func(*spec.Service) {}, true},
		{"new target", func(s *spec.Service) { s.Spec.Versions[0].Targets = append(s.Spec.Versions[0].Targets, v1b.addr()) }, true},
		{"bad target refused", func(s *spec.Service) { s.Spec.Versions[0].Targets = []string{"no-port"} }, false},
		{"bad CIDR refused", func(s *spec.Service) { s.Spec.Routing.TrustedSources = []string{"10.0.0.0/99"} }, false},
		{"bad rule refused", func(s *spec.Service) { s.Spec.Routing.Rules = []spec.Rule{{To: "canary"}} }, false},
		// The proxy reads the spec as spec.Default left it and re-defaults nothing.
		{"zero health interval refused", func(s *spec.Service) { s.Spec.HealthCheck.Interval = spec.D(0) }, false},
		{"changed timeouts rebind on the same address", func(s *spec.Service) { s.Spec.Proxy.IdleTimeout.Duration = time.Minute }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := testService("web", "v1", ver("v1", v1))
			next.Spec.Listen = addr
			tc.edit(next)
			err := p.Apply(t.Context(), []*spec.Service{next})
			if (err == nil) != tc.ok {
				t.Fatalf("Apply error = %v, want ok=%v", err, tc.ok)
			}
			if got := p.Addr("web").String(); got != addr {
				t.Fatalf("listener moved from %s to %s", addr, got)
			}
			seen := map[string]bool{}
			for range 20 {
				code, v, err := get(c, "http://"+addr, nil)
				if err != nil || code != 200 {
					t.Fatalf("GET after Apply: %d %v", code, err)
				}
				seen[v] = true
			}
			if !seen["v1"] || !seen["v2"] {
				t.Errorf("after Apply served by %v, want the kept 50/50 routing over v1 and v2", seen)
			}
		})
	}
	// Removing the service closes its listener.
	mustApply(t, p)
	if p.Addr("web") != nil {
		t.Error("Addr of a removed service is not nil")
	}
}

func TestRemoveVersion(t *testing.T) {
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", v1)))
	if err := p.SetVersion("web", "v2", []string{v2.addr()}); err != nil {
		t.Fatal(err)
	}
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 90, "v2": 10}})
	cases := []struct {
		name, version string
		ok            bool
	}{
		{"stable refused", "v1", false},
		{"weighted canary refused", "v2", false},
		{"unknown version refused", "v9", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.RemoveVersion("web", tc.version); (err == nil) != tc.ok {
				t.Errorf("RemoveVersion(%q) = %v, want ok=%v", tc.version, err, tc.ok)
			}
		})
	}
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 100, "v2": 0}})
	if err := p.RemoveVersion("web", "v2"); err != nil {
		t.Fatalf("RemoveVersion of a weight-0 canary = %v", err)
	}
	if code, v, err := get(newClient(1), proxyURL(t, p, "web"), map[string]string{"X-Canary": "always"}); err != nil || code != 200 || v != "v1" {
		t.Errorf("after removing the canary: %d from %q (%v), want 200 from v1", code, v, err)
	}
}

// TestSharedChecker: a proxy given a health.Checker registers its versions
// with it, routes by it, and on Shutdown stops its checks without closing it.
func TestSharedChecker(t *testing.T) {
	v1, v1b := newBackend(t, "v1"), newBackend(t, "v1")
	hc, err := health.New(health.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	var log healthLog
	hc.OnChange(log.record)
	p, err := New(Options{Logger: testLogger(t), StickyKey: []byte("test-key"), Health: hc})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, p, testService("web", "v1", ver("v1", v1, v1b)))
	eventually(t, 5*time.Second, "the checker reports v1 2/2", func() bool { return log.has(healthEvent{"web", "v1", 2, 2}) })
	v1b.healthOK.Store(false)
	eventually(t, 5*time.Second, "the checker reports v1 1/2", func() bool { return log.has(healthEvent{"web", "v1", 1, 2}) })
	c := newClient(1)
	for range 20 {
		if code, _, err := get(c, proxyURL(t, p, "web"), nil); err != nil || code != 200 {
			t.Fatalf("GET: %d %v", code, err)
		}
	}
	if v1b.hits.Load() != 0 {
		t.Errorf("the target the shared checker found unhealthy served %d requests", v1b.hits.Load())
	}
	if got, want := p.Health("web"), hc.Status("web"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Health = %+v, want the checker's Status %+v", got, want)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if st := hc.Status("web"); len(st) != 0 {
		t.Errorf("the checker still checks %+v after the proxy's Close", st)
	}
	hc.Configure("other", p.services["web"].comp.health)
	if _, err := hc.SetVersion("other", "v1", []string{v1.addr()}); err != nil {
		t.Errorf("the proxy closed a checker it was given: %v", err)
	}
}
