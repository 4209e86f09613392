// Package health decides which targets may take traffic: active checks
// (each target's health path probed every interval, with healthy and
// unhealthy thresholds) and passive health (consecutive proxied failures
// eject a target for a backoff, never a version's last routable target).
//
// A Checker owns, per service and version, the targets and their state. A
// data plane (the built-in proxy) holds each version's *Target values and
// asks Routable on its hot path, reporting request outcomes with
// PassiveFailure and PassiveSuccess; a traffic router without a data plane
// of its own (nginx, Kubernetes) uses the active checks only. Both feed the
// rollout runner through OnChange.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrUnknownService is returned for a service Configure has not set up.
var ErrUnknownService = errors.New("unknown service")

// ErrClosed is returned once the Checker is closed.
var ErrClosed = errors.New("health checker closed")

// Options configures a Checker.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // may be nil: switchyard_target_up is kept but not exported
	// DialContext dials probe connections; nil means a net.Dialer with a
	// 5 s timeout. Probes use their own connections, never the data
	// plane's, so a saturated pool cannot fail a health check.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSClientConfig is used for probes of https targets; nil verifies
	// against the system roots.
	TLSClientConfig *tls.Config
}

// TargetHealth is the health of one target, for Status.
type TargetHealth struct {
	Version   string `json:"version"`
	Address   string `json:"address"`
	Healthy   bool   `json:"healthy"`
	Ejected   bool   `json:"ejected,omitempty"`
	LastError string `json:"lastError,omitempty"`
}

// Checker checks every target of every configured service. Create it with
// New; Close stops it.
type Checker struct {
	log      *slog.Logger
	up       *prometheus.GaugeVec
	h1, h2c  *http.Transport
	root     context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeErr sync.Once

	mu       sync.Mutex // Configure, SetVersion, RemoveVersion, RemoveService, Status
	services map[string]*service
	closed   bool

	subMu sync.Mutex
	subs  []func(service, version string, healthy, total int)

	dirtyMu     sync.Mutex
	dirty       map[*version]struct{}
	dirtySignal chan struct{}
}

type service struct {
	name     string
	cfg      atomic.Pointer[Config] // read by every probe round and passive failure
	versions map[string]*version
}

// New builds a Checker with no services and starts its notifier.
func New(opts Options) (*Checker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchyard_target_up",
		Help: "1 when the target passes active health checks, 0 otherwise.",
	}, []string{"service", "version", "target"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(up); err != nil {
			return nil, fmt.Errorf("register health metrics: %w (one Checker per registry)", err)
		}
	}
	dial := opts.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	}
	root, cancel := context.WithCancel(context.Background())
	c := &Checker{
		log: log, up: up, root: root, cancel: cancel,
		services:    make(map[string]*service),
		dirty:       make(map[*version]struct{}),
		dirtySignal: make(chan struct{}, 1),
	}
	c.h1 = &http.Transport{
		DialContext:         dial,
		TLSClientConfig:     opts.TLSClientConfig,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	c.h2c = c.h1.Clone()
	c.h2c.Protocols = new(http.Protocols)
	c.h2c.Protocols.SetUnencryptedHTTP2(true)
	c.wg.Go(c.runNotifier)
	return c, nil
}

// OnChange subscribes fn to health transitions: it is called from the
// checker's notifier goroutine with a version's healthy and total target
// counts whenever they change. A version is first reported once every one
// of its targets has been probed: "0 healthy" for targets nobody has
// checked yet would read as a version that lost its targets (and roll back
// a canary restored after a restart). fn must not block long; it may call
// back into the Checker.
func (c *Checker) OnChange(fn func(service, version string, healthy, total int)) {
	c.subMu.Lock()
	c.subs = append(c.subs[:len(c.subs):len(c.subs)], fn)
	c.subMu.Unlock()
}

// Configure sets a service's health settings, adding the service if it is
// new. Probes pick the new settings up at their next round; targets keep
// their state and their probe.
func (c *Checker) Configure(name string, cfg *Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.services[name]
	if s == nil {
		s = &service{name: name, versions: make(map[string]*version)}
		c.services[name] = s
	}
	s.cfg.Store(cfg)
}

// SetVersion registers a version of a configured service or replaces its
// targets, and returns its targets in the order given. A target that stays
// listed keeps its state and probe; a new one is probed at once (before it
// takes traffic); a removed one stops being probed. A bad or duplicate
// address changes nothing.
func (c *Checker) SetVersion(name, ver string, targets []string) ([]*Target, error) {
	if ver == "" {
		return nil, fmt.Errorf("set version of %q: version name is empty", name)
	}
	addrs, err := ParseAddresses(targets)
	if err != nil {
		return nil, fmt.Errorf("set version %q of %q: %w", ver, name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	s := c.services[name]
	if s == nil {
		return nil, fmt.Errorf("set version %q of %q: %w", ver, name, ErrUnknownService)
	}
	v := s.versions[ver]
	if v == nil {
		v = &version{svc: s, name: ver}
		s.versions[ver] = v
	}
	old := make(map[string]*Target)
	for _, t := range v.list() {
		old[t.addr] = t
	}
	next := make([]*Target, 0, len(targets))
	for i, a := range targets {
		if t := old[a]; t != nil {
			next = append(next, t)
			delete(old, a)
			continue
		}
		t := &Target{addr: a, at: addrs[i], v: v, c: c, up: c.up.WithLabelValues(name, ver, a)}
		t.up.Set(0)
		next = append(next, t)
		ctx, cancel := context.WithCancel(c.root)
		t.stop = cancel
		c.wg.Go(func() { t.probeLoop(ctx) })
	}
	v.targets.Store(&next)
	for _, t := range old {
		t.stop()
		c.up.DeleteLabelValues(name, ver, t.addr)
	}
	if len(old) > 0 || len(next) > 0 {
		c.changed(v)
	}
	return next, nil
}

// RemoveVersion stops checking a version's targets; nothing more is
// reported for it. Removing an unknown version does nothing.
func (c *Checker) RemoveVersion(name, ver string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.services[name]; s != nil {
		if v := s.versions[ver]; v != nil {
			c.removeVersionLocked(s, v)
		}
	}
}

func (c *Checker) removeVersionLocked(s *service, v *version) {
	delete(s.versions, v.name)
	v.removed.Store(true)
	for _, t := range v.list() {
		t.stop()
	}
	empty := []*Target{}
	v.targets.Store(&empty)
	c.up.DeletePartialMatch(prometheus.Labels{"service": s.name, "version": v.name})
}

// RemoveService stops checking every version of a service and forgets its
// settings.
func (c *Checker) RemoveService(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.services[name]
	if s == nil {
		return
	}
	for _, v := range s.versions {
		c.removeVersionLocked(s, v)
	}
	delete(c.services, name)
}

// Status lists the health of every target of a service, by version then
// address; nil for an unknown service.
func (c *Checker) Status(name string) []TargetHealth {
	c.mu.Lock()
	var vs []*version
	if s := c.services[name]; s != nil {
		for _, v := range s.versions {
			vs = append(vs, v)
		}
	}
	c.mu.Unlock()
	now := time.Now().UnixNano()
	var out []TargetHealth
	for _, v := range vs {
		for _, t := range v.list() {
			out = append(out, TargetHealth{
				Version: v.name, Address: t.addr, Healthy: t.Healthy(now),
				Ejected: t.Ejected(now), LastError: t.LastError(),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Version != out[j].Version {
			return out[i].Version < out[j].Version
		}
		return out[i].Address < out[j].Address
	})
	return out
}

// Close stops every probe and the notifier and waits for them. It is
// idempotent; targets keep answering Routable with their last state.
func (c *Checker) Close() error {
	c.closeErr.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.h1.CloseIdleConnections()
		c.h2c.CloseIdleConnections()
	})
	return nil
}

// changed marks v for the notifier goroutine. It never blocks, so the
// proxy's failure path and the probes can call it.
func (c *Checker) changed(v *version) {
	c.dirtyMu.Lock()
	c.dirty[v] = struct{}{}
	c.dirtyMu.Unlock()
	select {
	case c.dirtySignal <- struct{}{}:
	default:
	}
}

func (c *Checker) runNotifier() {
	for {
		select {
		case <-c.root.Done():
			return
		case <-c.dirtySignal:
		}
		c.dirtyMu.Lock()
		vs := make([]*version, 0, len(c.dirty))
		for v := range c.dirty {
			vs = append(vs, v)
		}
		clear(c.dirty)
		c.dirtyMu.Unlock()
		c.subMu.Lock()
		subs := c.subs
		c.subMu.Unlock()
		now := time.Now().UnixNano()
		for _, v := range vs {
			// A version not fully probed yet is skipped: its first probe
			// marks it dirty again (see OnChange).
			if v.removed.Load() || !v.probed() {
				continue
			}
			h, n := v.counts(now)
			if h == v.lastHealthy && n == v.lastTotal {
				continue
			}
			v.lastHealthy, v.lastTotal = h, n
			for _, fn := range subs {
				fn(v.svc.name, v.name, h, n)
			}
		}
	}
}
