package health

import (
	"bufio"
	"context"
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

	"github.com/switchyard/switchyard/internal/spec"
)

// testCheck is a defaulted-looking health check with short intervals.
func testCheck() spec.HealthCheck {
	return spec.HealthCheck{
		Path: "/healthz", Interval: spec.D(50 * time.Millisecond), Timeout: spec.D(time.Second),
		HealthyThreshold: 1, UnhealthyThreshold: 1,
		Passive: spec.PassiveHealth{ConsecutiveFailures: 3, Backoff: spec.D(time.Minute)},
	}
}

func mustConfig(t testing.TB, hc spec.HealthCheck) *Config {
	t.Helper()
	cfg, err := NewConfig(hc)
	if err != nil {
		t.Fatalf("NewConfig: %v", err)
	}
	return cfg
}

func newTestChecker(t testing.TB, opts Options) *Checker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustSetVersion(t testing.TB, c *Checker, svc, ver string, addrs ...string) []*Target {
	t.Helper()
	ts, err := c.SetVersion(svc, ver, addrs)
	if err != nil {
		t.Fatalf("SetVersion: %v", err)
	}
	return ts
}

// backend is a real loopback server answering its health path with a
// status that tests change.
type backend struct {
	*httptest.Server
	status atomic.Int32
	probes atomic.Int64
	proto  atomic.Int32 // ProtoMajor of the last probe
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	b := &backend{}
	b.status.Store(http.StatusOK)
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.probes.Add(1)
	b.proto.Store(int32(r.ProtoMajor))
	if r.URL.Path != "/healthz" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.WriteHeader(int(b.status.Load()))
}

func (b *backend) addr() string {
	return strings.TrimPrefix(strings.TrimPrefix(b.URL, "http://"), "https://")
}

type event struct {
	service, version string
	healthy, total   int
}

// events records OnChange calls.
type events struct {
	mu  sync.Mutex
	all []event
}

func (e *events) record(s, v string, healthy, total int) {
	e.mu.Lock()
	e.all = append(e.all, event{s, v, healthy, total})
	e.mu.Unlock()
}

func (e *events) has(want event) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.all {
		if x == want {
			return true
		}
	}
	return false
}

func (e *events) last() event {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.all) == 0 {
		return event{}
	}
	return e.all[len(e.all)-1]
}

func (e *events) list() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event(nil), e.all...)
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

// gauge returns switchyard_target_up for a target, and whether it exists.
func gauge(t testing.TB, reg *prometheus.Registry, target string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_target_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == target {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// pipeBackends answers probes in memory over net.Pipe, for tests inside a
// synctest bubble (no real sockets): each address answers every request
// with the status set for it (200 until set).
type pipeBackends struct {
	mu     sync.Mutex
	status map[string]int
}

func newPipeBackends() *pipeBackends { return &pipeBackends{status: make(map[string]int)} }

func (b *pipeBackends) set(addr string, code int) {
	b.mu.Lock()
	b.status[addr] = code
	b.mu.Unlock()
}

func (b *pipeBackends) get(addr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.status[addr]; ok {
		return c
	}
	return http.StatusOK
}

func (b *pipeBackends) dial(_ context.Context, _, addr string) (net.Conn, error) {
	client, server := net.Pipe()
	// The bubble owns this goroutine: it ends when the checker closes its
	// idle connections, and synctest.Test waits for it.
	go b.serve(server, addr)
	return client, nil
}

func (b *pipeBackends) serve(conn net.Conn, addr string) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		res := &http.Response{StatusCode: b.get(addr), ProtoMajor: 1, ProtoMinor: 1, Request: req, Header: http.Header{}}
		if err := res.Write(conn); err != nil {
			return
		}
	}
}
