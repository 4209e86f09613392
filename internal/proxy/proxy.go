// Package proxy is Switchyard's data plane: a reverse proxy that splits each
// service's traffic between versions by weight, header and cookie rules and
// sticky sessions, routes only to targets internal/health lets take traffic
// (feeding it every outcome for passive health), retries idempotent requests
// on connect failures, drains retired targets, and measures every version in
// one-second windows for the rollout analysis.
//
// The routing table of a service is immutable once published and read with
// one atomic load per request; the control path (Apply, SetVersion, Route)
// is serialised by one mutex and never blocks the hot path.
package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/health"
	sources "github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Sentinel errors callers may branch on.
var (
	ErrUnknownService = errors.New("unknown service")
	ErrUnknownVersion = errors.New("unknown version")
	ErrClosed         = errors.New("proxy closed")
)

var _ rollout.TrafficRouter = (*Proxy)(nil)

// Options configures a Proxy.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // may be nil: metrics are kept but not exported
	// StickyKey is the HMAC key for sticky cookies. Keep it across restarts
	// or every client is re-bucketed; when empty a random key is used.
	StickyKey []byte
	// Health checks the targets. The proxy configures it with each
	// service's healthCheck and registers every version's targets with
	// it; its owner closes it after the proxy's Shutdown. When nil, the
	// proxy makes one (exporting switchyard_target_up to Registerer) and
	// closes it itself.
	Health *health.Checker
}

// TargetHealth is the health of one target, for Health.
type TargetHealth = health.TargetHealth

// Proxy serves every service's listener. Create it with New.
type Proxy struct {
	log       *slog.Logger
	met       *metrics
	stickyKey []byte
	lm        *latencyMapping

	root   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	conns   *connTracker
	h1, h2c *http.Transport
	// fast sends plain http requests, falling back to h1 for the rest.
	fast *upstream
	// up1 and up2c are what requests are sent with: fast and h2c, or a
	// stub in overhead benchmarks.
	up1, up2c http.RoundTripper
	rp        *httputil.ReverseProxy
	states    sync.Pool
	fastReqs  sync.Pool

	mu        sync.Mutex // control path: Apply, SetVersion, RemoveVersion, Route
	services  map[string]*service
	listeners map[string]*listener
	closed    bool

	health    *health.Checker
	ownHealth bool // made by New, so closed by Shutdown

	shutdownOnce sync.Once
	shutdownErr  error
}

// service is the control-path state of one service; the hot path only
// touches its table.
type service struct {
	name     string
	spec     spec.ServiceSpec
	comp     *compiled
	versions map[string]*version
	routing  rollout.Routing
	table    atomic.Pointer[table]
	lis      *listener
	// loadToken is the load generator's token while one runs
	// (SetLoadToken); it survives a reload's new compiled spec.
	loadToken string
}

// New builds a Proxy with no services; Apply adds them.
func New(opts Options) (*Proxy, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	key := opts.StickyKey
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	hc, own := opts.Health, false
	if hc == nil {
		hc, err = health.New(health.Options{Logger: log, Registerer: opts.Registerer})
		if err != nil {
			return nil, err
		}
		own = true
	}
	root, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		log: log, met: met, stickyKey: append([]byte(nil), key...), lm: newLatencyMapping(),
		root: root, cancel: cancel,
		conns:     &connTracker{conns: make(map[string]map[*trackedConn]struct{})},
		services:  make(map[string]*service),
		listeners: make(map[string]*listener),
		health:    hc, ownHealth: own,
	}
	p.states.New = func() any { return new(reqState) }
	p.fastReqs.New = func() any { return &fastReq{cw: new(clientWatch)} }
	dial := p.conns.dialer(&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second})
	p.h1 = &http.Transport{
		DialContext:           dial,
		MaxIdleConns:          0, // no global cap; the per-host cap below bounds it
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass Accept-Encoding through untouched
		ForceAttemptHTTP2:     false,
	}
	p.h2c = p.h1.Clone()
	p.h2c.Protocols = new(http.Protocols)
	p.h2c.Protocols.SetUnencryptedHTTP2(true)
	p.fast = newUpstream(dial, p.h1, p.h1.MaxIdleConnsPerHost, p.h1.IdleConnTimeout)
	p.up1, p.up2c = p.fast, p.h2c
	p.rp = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: roundTripFunc(p.roundTrip),
		// ReverseProxy flushes streams (unknown length, text/event-stream)
		// after every write whatever this says. Responses of known length
		// are flushed at least this often, not after every write: -1 costs
		// a timer goroutine and often an extra write per request.
		FlushInterval:  50 * time.Millisecond,
		BufferPool:     newBufferPool(),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// OnHealthChange subscribes fn to health transitions; it is the health
// checker's OnChange, kept so callers that only have the proxy still work.
func (p *Proxy) OnHealthChange(fn func(service, version string, healthy, total int)) {
	p.health.OnChange(fn)
}

// Addr returns the bound address of a service's listener, or nil.
func (p *Proxy) Addr(service string) net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.services[service]; s != nil && s.lis != nil {
		return s.lis.sock.ln.Addr()
	}
	return nil
}

// Route publishes a new routing table for a service in one atomic store:
// when it returns, no new request goes by the old table. Unknown versions
// or weights that do not sum to 100 are refused and change nothing.
func (p *Proxy) Route(ctx context.Context, name string, r rollout.Routing) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("route %q: %w", name, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	s := p.services[name]
	if s == nil {
		return fmt.Errorf("route %q: %w", name, ErrUnknownService)
	}
	t, err := buildTable(s.comp, s.versions, r)
	if err != nil {
		return fmt.Errorf("route %q: %w", name, err)
	}
	s.routing = cloneRouting(r)
	s.table.Store(t)
	p.publishWeights(s)
	p.log.Info("routing set", "service", name, "stable", r.Stable, "canary", r.Canary, "weights", r.Weights)
	return nil
}

func cloneRouting(r rollout.Routing) rollout.Routing {
	w := make(rollout.Weights, len(r.Weights))
	for k, v := range r.Weights {
		w[k] = v
	}
	r.Weights = w
	return r
}

func (p *Proxy) publishWeights(s *service) {
	for name := range s.versions {
		w := s.routing.Weights[name]
		if len(s.routing.Weights) == 0 && name == s.routing.Stable {
			w = 100
		}
		p.met.weight.WithLabelValues(s.name, name).Set(float64(w))
	}
}

// SetVersion registers a version or replaces its targets. Health checks of
// new targets start at once, even before the version takes traffic;
// removed targets stop taking new requests and drain.
func (p *Proxy) SetVersion(name, ver string, targets []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	s := p.services[name]
	if s == nil {
		return fmt.Errorf("set version %q of %q: %w", ver, name, ErrUnknownService)
	}
	if ver == "" {
		return fmt.Errorf("set version of %q: version name is empty", name)
	}
	parsed, err := health.ParseAddresses(targets)
	if err != nil {
		return fmt.Errorf("set version %q of %q: %w", ver, name, err)
	}
	return p.setVersionLocked(s, ver, targets, parsed, false)
}

// setVersionLocked registers the version's targets with the health checker
// first, so a refusal changes nothing, then shares each target's health
// state with the proxy's target of the same address.
func (p *Proxy) setVersionLocked(s *service, ver string, addrs []string, parsed []spec.Target, fromSpec bool) error {
	hts, err := p.health.SetVersion(s.name, ver, addrs)
	if err != nil {
		return err
	}
	v := s.versions[ver]
	if v == nil {
		v = &version{
			service: s.name, name: ver, stats: newStats(p.lm), fromSpec: fromSpec,
			reqs:     p.met.requests,
			duration: p.met.duration.WithLabelValues(s.name, ver),
		}
		s.versions[ver] = v
		p.met.weight.WithLabelValues(s.name, ver).Set(float64(s.routing.Weights[ver]))
	}
	old := make(map[string]*target)
	for _, t := range v.list() {
		old[t.addr] = t
	}
	next := make([]*target, 0, len(addrs))
	for i, a := range addrs {
		if t := old[a]; t != nil && t.health == hts[i] {
			next = append(next, t)
			delete(old, a)
			continue
		}
		next = append(next, &target{addr: a, host: parsed[i].Host, scheme: parsed[i].Scheme, h2c: parsed[i].H2C, version: v, health: hts[i]})
	}
	plain := true
	for _, t := range next {
		plain = plain && t.scheme == "http" && !t.h2c
	}
	// The fast path checks the flag, then the target it picked, so either
	// order is safe; clearing it first saves a hand-off.
	if !plain {
		v.plainHTTP.Store(false)
	}
	v.targets.Store(&next)
	if plain {
		v.plainHTTP.Store(true)
	}
	for _, t := range old {
		p.retire(s, t)
	}
	return nil
}

// retire closes every connection to t (idle keep-alives, streams and
// WebSockets still open at the deadline) once it has no request in flight
// or drainTimeout has passed. The health checker already stopped probing it.
func (p *Proxy) retire(s *service, t *target) {
	drain := s.spec.Proxy.DrainTimeout.Duration
	p.wg.Go(func() {
		deadline := time.NewTimer(drain)
		defer deadline.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for t.inflight.Load() > 0 {
			select {
			case <-deadline.C:
				p.log.Warn("drain deadline passed, closing connections", "service", s.name, "version", t.version.name, "target", t.addr, "inflight", t.inflight.Load())
				p.closeRetired(t)
				return
			case <-p.root.Done():
				return
			case <-tick.C:
			}
		}
		p.closeRetired(t)
	})
}

// closeRetired closes connections to a retired target unless its address is
// in use again by a live target (the same host:port in another version).
func (p *Proxy) closeRetired(t *target) {
	p.mu.Lock()
	live := false
	for _, s := range p.services {
		for _, v := range s.versions {
			for _, o := range v.list() {
				if o.host == t.host {
					live = true
				}
			}
		}
	}
	p.mu.Unlock()
	if !live {
		p.conns.closeAddr(t.host)
	}
}

// RemoveVersion stops routing to and health-checking a version; its targets
// drain up to drainTimeout. The stable version and a version with a
// non-zero weight cannot be removed; a canary at weight 0 loses its role.
func (p *Proxy) RemoveVersion(name, ver string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	s := p.services[name]
	if s == nil {
		return fmt.Errorf("remove version %q of %q: %w", ver, name, ErrUnknownService)
	}
	v := s.versions[ver]
	if v == nil {
		return fmt.Errorf("remove version %q of %q: %w", ver, name, ErrUnknownVersion)
	}
	if s.routing.Stable == ver || s.routing.Weights[ver] > 0 {
		return fmt.Errorf("remove version %q of %q: it still takes traffic (stable %q, weights %v); route away from it first",
			ver, name, s.routing.Stable, s.routing.Weights)
	}
	if s.routing.Canary == ver {
		// A canary at weight 0 (e.g. after an abort) only loses its role:
		// rules that named the canary fall through to the weights.
		r := cloneRouting(s.routing)
		r.Canary = ""
		delete(r.Weights, ver)
		s.routing = r
	}
	p.removeVersionLocked(s, v)
	return nil
}

func (p *Proxy) removeVersionLocked(s *service, v *version) {
	delete(s.versions, v.name)
	if t, err := buildTable(s.comp, s.versions, s.routing); err == nil {
		s.table.Store(t)
	}
	p.health.RemoveVersion(s.name, v.name)
	ts := v.list()
	empty := []*target{}
	v.targets.Store(&empty)
	for _, t := range ts {
		p.retire(s, t)
	}
	p.met.forgetVersion(s.name, v.name)
	p.log.Info("version removed", "service", s.name, "version", v.name)
}

// Health lists the health of every target of a service, by version then
// address; it is the health checker's Status.
func (p *Proxy) Health(name string) []TargetHealth {
	return p.health.Status(name)
}

// SetLoadToken starts (token != "") or stops (token == "") routing the load
// generator's requests: a request of the service carrying token in
// X-Switchyard-Load goes to the canary, whatever its weight, and is counted
// as generated. The header never reaches a target.
func (p *Proxy) SetLoadToken(service, token string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.services[service]
	if s == nil {
		return fmt.Errorf("set load token of %q: %w", service, ErrUnknownService)
	}
	// The token is part of the immutable table like every routing input:
	// a new compiled copy carries it, and the table is rebuilt from it.
	c := *s.comp
	c.loadToken = token
	s.comp, s.loadToken = &c, token
	t, err := buildTable(s.comp, s.versions, s.routing)
	if err != nil {
		return fmt.Errorf("set load token of %q: %w", service, err)
	}
	s.table.Store(t)
	return nil
}

// Window returns one version's exact request and error counts and latency
// sketch over the last d (whole one-second windows including the current
// one; at most 120 s). An unknown service or version gives an empty Sample.
func (p *Proxy) Window(name, ver string, d time.Duration) Sample {
	return p.window(name, ver, d, 0)
}

// CompletedWindow is Window over the last d whole seconds that have ended,
// leaving out the current, partial one: what an analysis check of interval
// d measures, so that every check counts a full interval's requests (the
// current second made a 2 s check count 1-2 s of traffic). d is rounded up
// to whole seconds.
func (p *Proxy) CompletedWindow(name, ver string, d time.Duration) Sample {
	return p.window(name, ver, d, 1)
}

// secondGrace is how long after a second ends it counts as complete: a
// request that ended in it may be recorded a moment later.
const secondGrace = 50 * time.Millisecond

// Seconds implements metrics.SecondSource: the completed one-second windows
// of each version after the Unix second after (at most the ring's 120 s).
// Unknown services and versions have none.
func (p *Proxy) Seconds(_ context.Context, name string, vers []string, after int64) (sources.Seconds, error) {
	through := time.Now().Add(-secondGrace).Unix() - 1
	out := sources.Seconds{Through: through, By: make(map[string][]sources.Second, len(vers))}
	from := max(after+1, through-windowSlots+2)
	p.mu.Lock()
	st := make(map[string]*stats, len(vers))
	if s := p.services[name]; s != nil {
		for _, ver := range vers {
			if v := s.versions[ver]; v != nil {
				st[ver] = v.stats
			}
		}
	}
	p.mu.Unlock()
	for ver, s := range st {
		for sec := from; sec <= through; sec++ {
			if w, ok := s.second(sec); ok {
				out.By[ver] = append(out.By[ver], sources.Second{Unix: sec, Sample: w})
			}
		}
	}
	return out, nil
}

func (p *Proxy) window(name, ver string, d time.Duration, back int64) Sample {
	p.mu.Lock()
	var v *version
	if s := p.services[name]; s != nil {
		v = s.versions[ver]
	}
	p.mu.Unlock()
	if v == nil {
		return (&stats{lm: p.lm}).sample(0, 0)
	}
	return v.stats.sample(time.Now().Unix()-back, d)
}

// Shutdown stops accepting connections, lets in-flight requests finish
// (bounded by ctx), closes idle connections and stops health checks of its
// services (closing the health checker if New made it). When
// ctx ends first, remaining connections are closed and ctx's error returned.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() { p.shutdownErr = p.shutdown(ctx) })
	return p.shutdownErr
}

// Close stops the proxy at once, closing every connection. It is idempotent.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (p *Proxy) shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	names := make([]string, 0, len(p.services))
	for name := range p.services {
		names = append(names, name)
	}
	ls := make([]*listener, 0, len(p.listeners))
	for _, l := range p.listeners {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	ferrs := make([]error, len(ls))
	for i, l := range ls {
		l.sock.ln.Close()
		l.ho.Close()
		wg.Go(func() { errs[i] = l.srv.Shutdown(ctx) })
		if l.fsrv != nil {
			wg.Go(func() { ferrs[i] = l.fsrv.ShutdownWithContext(ctx) })
		}
	}
	wg.Wait()
	err := errors.Join(append(errs, ferrs...)...)
	if ctx.Err() != nil {
		for _, l := range ls {
			l.srv.Close()
			l.fconns.closeAll()
		}
		p.conns.closeAll()
	}
	p.cancel()
	if p.ownHealth {
		p.health.Close()
	} else {
		// A shared checker outlives the proxy: stop checking what the
		// proxy registered, as an own one would on Close.
		for _, name := range names {
			p.health.RemoveService(name)
		}
	}
	p.fast.CloseIdleConnections() // and h1's
	p.h2c.CloseIdleConnections()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.conns.closeAll()
		<-done
	}
	p.conns.closeAll()
	return err
}
