package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// discardWriter is a ResponseWriter that keeps nothing, for measuring the
// proxy's own cost.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(c int)           { w.code = c }
func (w *discardWriter) Flush()                      {}

// BenchmarkProxyHandler measures the proxy's hot path alone: table load,
// version and target pick, ReverseProxy, recording. The upstream is a stub
// RoundTripper, so no socket is involved. The stub's own response accounts
// for 3 allocations per op.
func BenchmarkProxyHandler(b *testing.B) {
	for _, bc := range []struct {
		name  string
		setup func(*spec.Service)
	}{
		{"weighted", func(*spec.Service) {}},
		{"rules+sticky", func(s *spec.Service) {
			s.Spec.Routing.Rules = []spec.Rule{{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: "canary"}}
			s.Spec.Routing.StickySessions = &spec.StickySessions{Cookie: "sy"}
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := newTestProxy(b, nil)
			// Real backends keep the targets healthy; requests go to the stub.
			s := testService("web", "v1", ver("v1", newBackend(b, "v1"), newBackend(b, "v1")), ver("v2", newBackend(b, "v2")))
			bc.setup(s)
			mustApply(b, p, s)
			mustRoute(b, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 90, "v2": 10}})
			body := "hello"
			p.up1 = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r,
					Header: http.Header{"Content-Type": {"text/plain"}}, ContentLength: int64(len(body)),
					Body: io.NopCloser(strings.NewReader(body))}, nil
			})
			svc := p.services["web"]
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "http://web/path", nil)
				// As served on an HTTP/1 connection of the proxy's listener.
				req = req.WithContext(withConnSlot(req.Context(), nil))
				req.RemoteAddr = "127.0.0.1:5000"
				req.Header.Set("Cookie", "sy="+svc.table.Load().sticky.encodeIfAny())
				w := &discardWriter{h: make(http.Header)}
				for pb.Next() {
					delete(req.Header, "X-Request-Id")
					clear(w.h)
					p.serveHTTP(svc, w, req)
					if w.code != 0 && w.code != 200 {
						b.Fatalf("status %d", w.code)
					}
				}
			})
		})
	}
}

// encodeIfAny returns a valid sticky cookie, or "" without sticky sessions.
func (sc *stickyConfig) encodeIfAny() string {
	if sc == nil {
		return ""
	}
	return sc.encode(newStickyID(), time.Now().Add(sc.ttl).Unix())
}

// BenchmarkProxyLoopback is end to end over loopback: a keep-alive client,
// the proxy and a backend in one process (allocations are all three's).
func BenchmarkProxyLoopback(b *testing.B) {
	be := newBackend(b, "v1")
	p := newTestProxy(b, nil)
	mustApply(b, p, testService("web", "v1", ver("v1", be)))
	url := proxyURL(b, p, "web")
	c := newClient(64)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code, _, err := get(c, url, nil); err != nil || code != 200 {
				b.Fatalf("GET: %d %v", code, err)
			}
		}
	})
}

// BenchmarkDirectLoopback is the same client and backend without the proxy,
// for the ratio.
func BenchmarkDirectLoopback(b *testing.B) {
	be := newBackend(b, "v1")
	c := newClient(64)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if code, _, err := get(c, be.URL, nil); err != nil || code != 200 {
				b.Fatalf("GET: %d %v", code, err)
			}
		}
	})
}

func BenchmarkWindowRecord(b *testing.B) {
	st := newStats(newLatencyMapping())
	now := time.Now().Unix()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			st.record(now, time.Duration(i)*time.Microsecond, false)
		}
	})
}

// TestMemoryAt1000Connections holds 1,000 keep-alive client connections
// open through the proxy and reports heap and RSS growth.
func TestMemoryAt1000Connections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	be := newBackend(t, "v1")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", be)))
	addr := p.Addr("web").String()
	// Warm up so pools and the upstream connection exist before measuring.
	if code, _, err := get(newClient(1), "http://"+addr, nil); err != nil || code != 200 {
		t.Fatal(code, err)
	}
	heap0, rss0 := memFigures()
	const n = 1000
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		wg.Go(func() {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
				errs <- err
				return
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	heap1, rss1 := memFigures()
	t.Logf("1,000 idle keep-alive connections: heap +%.1f MiB (%.1f KiB/conn), RSS +%.1f MiB (%.1f KiB/conn), RSS total %.1f MiB (includes the test's client side and backend)",
		mib(heap1-heap0), kib(heap1-heap0)/n, mib(rss1-rss0), kib(rss1-rss0)/n, mib(rss1))
	for _, c := range conns {
		c.Close()
	}
	if rss1-rss0 > 200<<20 {
		t.Errorf("RSS grew by %.0f MiB for 1,000 connections", mib(rss1-rss0))
	}
}

func memFigures() (heap, rss int64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = int64(ms.HeapInuse)
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return heap, rss
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
func kib(b int64) float64 { return float64(b) / (1 << 10) }
