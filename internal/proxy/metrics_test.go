package proxy

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func TestMetricsAndWindows(t *testing.T) {
	ok, bad := newBackend(t, "v1"), newBackend(t, "v2")
	bad.fail.Store(http.StatusInternalServerError)
	reg := prometheus.NewRegistry()
	p := newTestProxy(t, reg)
	mustApply(t, p, testService("web", "v1", ver("v1", ok), ver("v2", bad)))
	c := newClient(2)
	url := proxyURL(t, p, "web")
	const n = 57
	for range n {
		if code, _, err := get(c, url, nil); err != nil || code != 200 {
			t.Fatalf("GET: %d %v", code, err)
		}
	}
	// Rules would be simpler, but weights exercise traffic_weight too.
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 0, "v2": 100}})
	for range 13 {
		if code, _, err := get(c, url, nil); err != nil || code != 500 {
			t.Fatalf("GET: %d %v, want 500 from v2", code, err)
		}
	}
	// A request is recorded just after its response is flushed to the client.
	eventually(t, 5*time.Second, "the last request recorded", func() bool {
		return testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v2", "500")) >= 13 &&
			testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", "200")) >= n
	})
	if got := testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", "200")); got != n {
		t.Errorf("switchyard_requests_total{v1,200} = %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v2", "500")); got != 13 {
		t.Errorf("switchyard_requests_total{v2,500} = %v, want 13", got)
	}
	if got := testutil.ToFloat64(p.met.weight.WithLabelValues("web", "v2")); got != 100 {
		t.Errorf("switchyard_traffic_weight{v2} = %v, want 100", got)
	}
	if got := testutil.ToFloat64(p.met.weight.WithLabelValues("web", "v1")); got != 0 {
		t.Errorf("switchyard_traffic_weight{v1} = %v, want 0", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("metric lint: %s: %s", pr.Metric, pr.Text)
	}
	if n, err := testutil.GatherAndCount(reg, "switchyard_request_duration_seconds", "switchyard_target_up"); err != nil || n < 4 {
		t.Errorf("GatherAndCount = %d, %v; want histograms for 2 versions and 2 target_up series", n, err)
	}

	w1, w2 := p.Window("web", "v1", time.Minute), p.Window("web", "v2", time.Minute)
	if w1.Requests != n || w1.Errors != 0 {
		t.Errorf("Window(v1) = %d requests, %d errors; want %d, 0", w1.Requests, w1.Errors, n)
	}
	if w2.Requests != 13 || w2.Errors != 13 {
		t.Errorf("Window(v2) = %d requests, %d errors; want 13, 13", w2.Requests, w2.Errors)
	}
	if q := w1.Quantile(0.99); q <= 0 || q > 5*time.Second {
		t.Errorf("Window(v1).Quantile(0.99) = %v, want a small positive duration", q)
	}
	if got := w1.Latency.GetCount(); got != n {
		t.Errorf("sketch count = %v, want %d", got, n)
	}
	if w := p.Window("web", "nope", time.Minute); w.Requests != 0 || w.Latency == nil {
		t.Errorf("Window of an unknown version = %+v, want empty with a sketch", w)
	}
}

// TestErrorDefinition checks what counts as an error in the windows:
// connect failures and upstream timeouts do, client cancels do not.
func TestErrorDefinition(t *testing.T) {
	// A port with nothing listening: connect refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	hang := make(chan struct{})
	defer close(hang)
	slow := newBackend(t, "slow")
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	p := newTestProxy(t, nil)
	// Only the dead version at first, so there is nothing to fall back to.
	s := testService("web", "dead", spec.Version{Name: "dead", Targets: []string{dead}})
	s.Spec.Proxy.UpstreamTimeout.Duration = 200 * time.Millisecond
	mustApply(t, p, s)
	c := newClient(1)
	url := proxyURL(t, p, "web")
	if code, _, _ := get(c, url, nil); code != http.StatusBadGateway {
		t.Errorf("connect refused: status %d, want 502", code)
	}
	if err := p.SetVersion("web", "slow", []string{slow.addr()}); err != nil {
		t.Fatal(err)
	}
	mustRoute(t, p, "web", rollout.Routing{Stable: "slow", Weights: rollout.Weights{"slow": 100}})
	if code, _, _ := get(c, url, nil); code != http.StatusGatewayTimeout {
		t.Errorf("upstream timeout: status %d, want 504", code)
	}
	// A client that gives up first is not the version's fault.
	s.Spec.Proxy.UpstreamTimeout.Duration = 0
	mustApply(t, p, s)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("request outlived its context")
	}
	eventually(t, 5*time.Second, "the cancelled request recorded", func() bool {
		return p.Window("web", "slow", time.Minute).Requests == 2
	})
	if w := p.Window("web", "dead", time.Minute); w.Requests != 1 || w.Errors != 1 {
		t.Errorf("Window(dead) = %d/%d errors, want 1/1", w.Errors, w.Requests)
	}
	if w := p.Window("web", "slow", time.Minute); w.Errors != 1 {
		t.Errorf("Window(slow) = %d errors of %d, want 1 (the timeout, not the cancel)", w.Errors, w.Requests)
	}
	if got := testutil.ToFloat64(p.met.requests.WithLabelValues("web", "slow", "499")); got != 1 {
		t.Errorf("requests_total{slow,499} = %v, want 1", got)
	}
}

func TestWindowSketchAccuracy(t *testing.T) {
	st := newStats(newLatencyMapping())
	now := time.Now().Unix()
	for i := 1; i <= 10000; i++ {
		st.record(now-int64(i%30), time.Duration(i)*time.Microsecond, i%100 == 0)
	}
	s := st.sample(now, 30*time.Second)
	if s.Requests != 10000 || s.Errors != 100 {
		t.Fatalf("sample = %d requests, %d errors; want 10000, 100", s.Requests, s.Errors)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 10000 * float64(time.Microsecond)
		got := float64(s.Quantile(q))
		if rel := (got - want) / want; rel > 0.02 || rel < -0.02 {
			t.Errorf("Quantile(%v) = %v, want %v ±2%%", q, time.Duration(got), time.Duration(want))
		}
	}
	// Windows older than d are left out; the ring forgets after 120 s.
	if got := st.sample(now, 10*time.Second).Requests; got < 3000 || got > 4000 {
		t.Errorf("10 s sample = %d requests, want about a third", got)
	}
	st.record(now+windowSlots, time.Millisecond, false)
	if got := st.sample(now+windowSlots, time.Second).Requests; got != 1 {
		t.Errorf("after the ring wrapped: %d requests in the newest second, want 1", got)
	}
}

// TestCompletedWindow: the window arithmetic CompletedWindow uses (sample
// ending at the last completed second) counts whole seconds that have
// ended, so a check of interval d sees d seconds of traffic, never the
// current second's part.
func TestCompletedWindow(t *testing.T) {
	st := newStats(newLatencyMapping())
	now := time.Now().Unix()
	for sec := now - 5; sec <= now; sec++ {
		for range 50 { // 50 requests a second
			st.record(sec, time.Millisecond, false)
		}
	}
	if got := st.sample(now-1, 2*time.Second).Requests; got != 100 {
		t.Errorf("completed 2 s window = %d requests, want exactly 100 at 50/s", got)
	}
	if got := st.sample(now-1, 1500*time.Millisecond).Requests; got != 100 {
		t.Errorf("completed 1.5 s window = %d requests, want 100 (whole seconds, rounded up)", got)
	}
}
