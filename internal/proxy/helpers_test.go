package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// backend is a real loopback server that tags responses with its version.
type backend struct {
	*httptest.Server
	version  string
	hits     atomic.Int64
	healthOK atomic.Bool
	fail     atomic.Int32 // status to answer non-health requests with (0: 200)
	mu       sync.Mutex
	posts    map[string]int // POST bodies received, by X-Post-Id
}

func newBackend(t testing.TB, ver string) *backend {
	t.Helper()
	b := &backend{version: ver, posts: make(map[string]int)}
	b.healthOK.Store(true)
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if !b.healthOK.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
		return
	}
	b.hits.Add(1)
	if r.Method == http.MethodPost {
		_, _ = io.Copy(io.Discard, r.Body)
		b.mu.Lock()
		b.posts[r.Header.Get("X-Post-Id")]++
		b.mu.Unlock()
	}
	w.Header().Set("X-Backend-Version", b.version)
	if c := b.fail.Load(); c != 0 {
		w.WriteHeader(int(c))
	}
	_, _ = io.WriteString(w, b.version)
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newTestProxy(t testing.TB, reg prometheus.Registerer) *Proxy {
	t.Helper()
	p, err := New(Options{Logger: testLogger(t), Registerer: reg, StickyKey: []byte("test-key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testService builds a service listening on a free loopback port with
// short health intervals; versions are name=targets pairs.
func testService(name, stable string, versions ...spec.Version) *spec.Service {
	retries := 2
	return &spec.Service{
		Metadata: spec.Metadata{Name: name},
		Spec: spec.ServiceSpec{
			Listen:   "127.0.0.1:0",
			Versions: versions,
			Stable:   stable,
			HealthCheck: spec.HealthCheck{
				Path: "/healthz", Interval: spec.D(50 * time.Millisecond), Timeout: spec.D(time.Second),
				HealthyThreshold: 1, UnhealthyThreshold: 1,
				Passive: spec.PassiveHealth{ConsecutiveFailures: 3, Backoff: spec.D(time.Minute)},
			},
			Proxy: spec.ProxyOptions{
				DrainTimeout: spec.D(2 * time.Second), ReadHeaderTimeout: spec.D(5 * time.Second),
				IdleTimeout: spec.D(30 * time.Second), ReadTimeout: spec.D(30 * time.Second),
				MaxHeaderBytes: 65536, Retries: &retries,
			},
		},
	}
}

func ver(name string, bs ...*backend) spec.Version {
	v := spec.Version{Name: name}
	for _, b := range bs {
		v.Targets = append(v.Targets, b.addr())
	}
	return v
}

func mustApply(t testing.TB, p *Proxy, svcs ...*spec.Service) {
	t.Helper()
	if err := p.Apply(context.Background(), svcs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func mustRoute(t testing.TB, p *Proxy, svc string, r rollout.Routing) {
	t.Helper()
	if err := p.Route(context.Background(), svc, r); err != nil {
		t.Fatalf("Route: %v", err)
	}
}

func proxyURL(t testing.TB, p *Proxy, svc string) string {
	t.Helper()
	a := p.Addr(svc)
	if a == nil {
		t.Fatalf("Addr(%q) = nil", svc)
	}
	return "http://" + a.String()
}

func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
	}
}

// get does one GET and returns the status, the serving version and the body.
func get(c *http.Client, url string, hdr map[string]string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return res.StatusCode, "", fmt.Errorf("read body: %w", err)
	}
	return res.StatusCode, res.Header.Get("X-Backend-Version"), nil
}

// eventually waits for cond with a deadline, polling (a condition, not a sleep).
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

func routingTo(v string) rollout.Routing {
	return rollout.Routing{Stable: v, Weights: rollout.Weights{v: 100}}
}
