package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/spec"
)

// BenchmarkDaemon1000Services holds 1,000 services in one daemon and reports
// the heap per service and the p99 of `status` through the admin API, next
// to the p99 of /healthz on the same server in the same run (the ratio is
// what `status` costs beyond an HTTP round trip).
//
//	go test -run '^$' -bench Daemon1000 -benchtime 2000x ./internal/daemon
func BenchmarkDaemon1000Services(b *testing.B) {
	const n = 1000
	backend := startBenchBackend(b)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// Listeners are keyed by address, so every service gets its own port.
	ports := freePorts(b, n)
	svcs := make([]*spec.Service, n)
	for i := range svcs {
		doc := fmt.Sprintf(`apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: svc-%d}
spec:
  listen: 127.0.0.1:%d
  versions:
    - {name: blue, targets: [%q]}
  stable: blue
  healthCheck: {interval: 10s, timeout: 1s}
`, i, ports[i], backend)
		s, err := spec.Parse("bench.yaml", []byte(doc))
		if err != nil {
			b.Fatal(err)
		}
		svcs[i] = s[0]
	}
	d, err := New(Options{Services: svcs, StateDir: b.TempDir(), Admin: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for d.AdminURL() == "" || d.readyErr() != nil {
		select {
		case err := <-done:
			done <- err // for the deferred wait
			b.Fatal(err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	c := admin.NewClient(d.AdminURL(), d.Token())
	// Ready means every runner has put its first state in force.
	all, err := c.Services(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if len(all) != n || all[n-1].StableVersion != "blue" {
		b.Fatalf("ready with %d services, last %+v; want %d with stable blue", len(all), all[len(all)-1], n)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	perService := float64(after.HeapInuse-before.HeapInuse) / n

	hc := &http.Client{Timeout: 10 * time.Second}
	status := make([]time.Duration, 0, b.N)
	healthz := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := c.Service(ctx, fmt.Sprintf("svc-%d", i%n)); err != nil {
			b.Fatal(err)
		}
		status = append(status, time.Since(t0))
		t0 = time.Now()
		resp, err := hc.Get(d.AdminURL() + "/healthz")
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		healthz = append(healthz, time.Since(t0))
	}
	b.StopTimer()
	ps, ph := p99(status), p99(healthz)
	b.ReportMetric(perService/1024, "KiB-heap/service")
	b.ReportMetric(float64(ps.Microseconds()), "µs-p99-status")
	b.ReportMetric(float64(ph.Microseconds()), "µs-p99-healthz")
	b.ReportMetric(float64(ps)/float64(ph), "status/healthz-p99")
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*99/100]
}

func startBenchBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// freePorts reserves n loopback ports by binding them all at once, then
// releases them for the daemon to bind.
func freePorts(b *testing.B, n int) []int {
	lns := make([]net.Listener, n)
	ports := make([]int, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}
