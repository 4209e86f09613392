package prometheus

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// exporter serves the counters a test sets, as a mesh's proxies would:
// requests and errors by version and pod, and a request-duration
// histogram by version. The test sets the values directly, so it can
// reset a counter (a restarted pod) as the client library cannot.
type exporter struct {
	mu       sync.Mutex
	counters map[[3]string]float64         // name, version, pod
	buckets  map[string]map[float64]uint64 // version: le (seconds) -> cumulative count
	count    map[string]uint64             // version: histogram count
}

func (x *exporter) Describe(chan<- *prom.Desc) {} // unchecked: the series vary

func (x *exporter) Collect(ch chan<- prom.Metric) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, v := range x.counters {
		d := prom.NewDesc(k[0], "test counter", []string{"version", "pod"}, nil)
		ch <- prom.MustNewConstMetric(d, prom.CounterValue, v, k[1], k[2])
	}
	for ver, b := range x.buckets {
		d := prom.NewDesc("app_request_duration_seconds", "test histogram", []string{"version"}, nil)
		ch <- prom.MustNewConstHistogram(d, x.count[ver], 0, maps.Clone(b), ver)
	}
}

// set and observe are called under x.mu, so that a scrape sees a step whole.
func (x *exporter) set(name, version, pod string, v float64) {
	x.counters[[3]string{name, version, pod}] = v
}

func (x *exporter) observe(version string, le float64, n uint64) {
	for b := range x.buckets[version] {
		if b >= le {
			x.buckets[version][b] += n
		}
	}
	x.count[version] += n
}

func startSecondsExporter(t *testing.T) (*exporter, string) {
	x := &exporter{
		counters: map[[3]string]float64{},
		buckets:  map[string]map[float64]uint64{"stable": {0.1: 0, 0.5: 0}, "canary": {0.1: 0, 0.5: 0}},
		count:    map[string]uint64{"stable": 0, "canary": 0},
	}
	reg := prom.NewRegistry()
	reg.MustRegister(x)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { srv.Close(); wg.Wait() })
	return x, ln.Addr().String()
}

// TestSecondSourceAgainstPrometheus: a real Prometheus scrapes an
// exporter every second while the test raises its counters step by step
// (one step per scrape) and restarts one of the canary's pods; the source
// returns, second by second, exactly the requests, errors and latencies
// each step added, the reset included.
func TestSecondSourceAgainstPrometheus(t *testing.T) {
	testenv.Integration(t)
	x, addr := startSecondsExporter(t)
	p := testenv.StartPrometheus(t, time.Second, addr)
	q := New(&http.Client{Timeout: 5 * time.Second})
	cfg := spec.SequentialPrometheus{
		Address:         p.URL(),
		Requests:        `app_requests_total{version="{{ version }}"}`,
		Errors:          `app_errors_total{version="{{ version }}"}`,
		DurationBuckets: `app_request_duration_seconds_bucket{version="{{ version }}"}`,
		DurationUnit:    spec.DurationSeconds,
		ScrapeInterval:  spec.D(time.Second),
	}
	src := q.SecondSource(cfg, "stable")
	ctx := context.Background()

	// The steps: each version's counters after it, per pod. The canary's
	// pod b restarts at step 3 (15 -> 2); its errors reset with it.
	type step struct{ stable, canaryA, canaryB, stableErr, canaryErr float64 }
	steps := []step{
		{0, 0, 0, 0, 0},
		{100, 5, 5, 0, 1},
		{200, 10, 15, 2, 3},
		{300, 15, 2, 2, 0},
		{400, 20, 6, 2, 2},
	}
	wantReq := map[string][]int64{"stable": {100, 100, 100, 100}, "canary": {10, 15, 7, 9}}
	wantErr := map[string][]int64{"stable": {0, 2, 0, 0}, "canary": {1, 2, 0, 2}}
	scraped := func(s step) bool {
		for query, want := range map[string]float64{
			`sum(app_requests_total{version="stable"})`: s.stable,
			`sum(app_requests_total{version="canary"})`: s.canaryA + s.canaryB,
			`sum(app_errors_total{version="canary"})`:   s.canaryErr,
		} {
			v, err := q.Query(ctx, p.URL(), query)
			if err != nil || v.Number != want {
				return false
			}
		}
		return true
	}
	var after int64
	for i, s := range steps {
		x.mu.Lock()
		x.set("app_requests_total", "stable", "a", s.stable)
		x.set("app_requests_total", "canary", "a", s.canaryA)
		x.set("app_requests_total", "canary", "b", s.canaryB)
		x.set("app_errors_total", "stable", "a", s.stableErr)
		x.set("app_errors_total", "canary", "b", s.canaryErr)
		if i > 0 {
			x.observe("stable", 0.1, uint64(wantReq["stable"][i-1]))
			x.observe("canary", 0.5, uint64(wantReq["canary"][i-1]))
		}
		x.mu.Unlock()
		testenv.WaitFor(t, 20*time.Second, func() bool { return scraped(s) }, fmt.Sprintf("Prometheus to scrape step %d", i))
		if i == 0 {
			after = time.Now().Unix()
		}
	}

	var got metrics.Seconds
	var err error
	testenv.WaitFor(t, 20*time.Second, func() bool {
		got, err = src.Seconds(ctx, "web", []string{"stable", "canary"}, after)
		if err != nil {
			t.Fatalf("Seconds: %v", err)
		}
		var n int64
		for _, s := range got.By["stable"] {
			n += s.Requests
		}
		return n == 400
	}, "the source to return the stable version's 400 requests")
	if now := time.Now().Unix(); got.Through > now-1 || got.Through <= after {
		t.Errorf("Through = %d, want after %d and before now (%d)", got.Through, after, now)
	}
	for ver, want := range wantReq {
		var req, errs []int64
		var last int64
		for _, s := range got.By[ver] {
			if s.Unix <= after || s.Unix > got.Through || s.Unix <= last {
				t.Errorf("%s: second %d outside (%d, %d] or out of order", ver, s.Unix, after, got.Through)
			}
			last = s.Unix
			req = append(req, s.Requests)
			errs = append(errs, s.Errors)
			if s.Latency == nil || int64(s.Latency.GetCount()) != s.Requests {
				t.Errorf("%s second %d: latency sketch of %v requests, want %d", ver, s.Unix, s.Latency, s.Requests)
				continue
			}
			wantP50 := map[string]time.Duration{"stable": 100 * time.Millisecond, "canary": 500 * time.Millisecond}[ver]
			if p := s.Quantile(0.5); p < wantP50*98/100 || p > wantP50*102/100 {
				t.Errorf("%s second %d: p50 %v, want %v (the bucket's upper bound)", ver, s.Unix, p, wantP50)
			}
		}
		if !reflect.DeepEqual(req, want) {
			t.Errorf("%s requests by second = %v, want %v (one step per scrape)", ver, req, want)
		}
		if !reflect.DeepEqual(errs, wantErr[ver]) {
			t.Errorf("%s errors by second = %v, want %v", ver, errs, wantErr[ver])
		}
	}

	// Asked again from Through, nothing is counted twice.
	again, err := src.Seconds(ctx, "web", []string{"stable", "canary"}, got.Through)
	if err != nil {
		t.Fatal(err)
	}
	for ver, secs := range again.By {
		for _, s := range secs {
			if s.Requests != 0 || s.Errors != 0 {
				t.Errorf("asked again after %d: %s second %d has %d requests, want none (counted once)", got.Through, ver, s.Unix, s.Requests)
			}
		}
	}
}
