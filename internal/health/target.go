package health

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Active health states of a target. A target nobody has probed yet is
// routable (so a fresh start does not refuse traffic) but is not reported
// healthy (so a health gate waits for a real probe).
const (
	stateUnknown int32 = iota
	stateUp
	stateDown
)

// Target is the health of one address of one version. Its methods read and
// update atomics only, so a data plane may call them on every request with
// no lock and no allocation; the state survives routing-table rebuilds and
// configuration changes for as long as the address stays listed.
type Target struct {
	addr string // as configured, e.g. "10.0.0.1:8080" or "h2c://10.0.0.1:9000"
	at   Address
	v    *version
	c    *Checker

	state        atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when not ejected
	fails        atomic.Int32 // consecutive passive failures
	okStreak     atomic.Int32 // consecutive active results against the state (prober only)
	lastErr      atomic.Pointer[string]
	up           prometheus.Gauge

	stop context.CancelFunc // stops the prober
}

// Addr returns the address as configured.
func (t *Target) Addr() string { return t.addr }

// Address returns how the target is reached.
func (t *Target) Address() Address { return t.at }

// Routable reports whether new requests may go to t at now (unix nanos):
// not failing its active checks (a target not probed yet is routable) and
// not ejected by passive health.
func (t *Target) Routable(now int64) bool {
	if t.state.Load() == stateDown {
		return false
	}
	if u := t.ejectedUntil.Load(); u != 0 && now < u {
		return false
	}
	return true
}

// Healthy reports whether t passed its active checks and is not ejected at
// now: what Status and OnChange count. Unlike Routable, a target not probed
// yet is not healthy, so a health gate waits for a real probe.
func (t *Target) Healthy(now int64) bool {
	return t.state.Load() == stateUp && !t.Ejected(now)
}

// Ejected reports whether passive health keeps t out of rotation at now.
func (t *Target) Ejected(now int64) bool {
	u := t.ejectedUntil.Load()
	return u != 0 && now < u
}

// LastError returns the last probe or proxied failure seen, cleared when the
// target becomes healthy again.
func (t *Target) LastError() string {
	if e := t.lastErr.Load(); e != nil {
		return *e
	}
	return ""
}

func (t *Target) setErr(s string) {
	if p := t.lastErr.Load(); p != nil && *p == s {
		return
	}
	t.lastErr.Store(&s)
}

// ConsecutiveFailures is how many proxied requests in a row t has failed
// since its last success or ejection.
func (t *Target) ConsecutiveFailures() int { return int(t.fails.Load()) }

// PassiveSuccess records a proxied request t answered well: it resets the
// consecutive-failure count.
func (t *Target) PassiveSuccess() {
	// Load first: most requests succeed, and a store would bounce the
	// cache line between cores.
	if t.fails.Load() != 0 {
		t.fails.Store(0)
	}
}

// PassiveFailure records a proxied request t failed (a connection error or
// a 502-504) and ejects t for the service's backoff after
// consecutiveFailures in a row, unless it is the version's last routable
// target: a version with one bad target left is better served by it than by
// nothing.
func (t *Target) PassiveFailure(reason string) {
	t.setErr(reason)
	cfg := t.v.svc.cfg.Load()
	if t.fails.Add(1) < cfg.passiveFailures || cfg.backoff == 0 {
		return
	}
	v := t.v
	v.ejectMu.Lock()
	now := time.Now().UnixNano()
	if t.Ejected(now) {
		v.ejectMu.Unlock()
		return
	}
	others := 0
	for _, o := range v.list() {
		if o != t && o.Routable(now) {
			others++
		}
	}
	if others == 0 {
		v.ejectMu.Unlock()
		return
	}
	t.ejectedUntil.Store(now + int64(cfg.backoff))
	t.fails.Store(0)
	v.ejectMu.Unlock()
	t.c.log.Warn("target ejected", "service", v.svc.name, "version", v.name, "target", t.addr, "backoff", cfg.backoff, "error", reason)
	t.c.changed(v)
}

// probeLoop probes t at once, then every interval, until ctx ends.
func (t *Target) probeLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		cfg := t.v.svc.cfg.Load()
		t.probe(ctx, cfg)
		if u := t.ejectedUntil.Load(); u != 0 && time.Now().UnixNano() >= u && t.ejectedUntil.CompareAndSwap(u, 0) {
			// The passive backoff ran out: the target is back in rotation.
			t.c.changed(t.v)
		}
		timer.Reset(cfg.interval)
	}
}

func (t *Target) probe(ctx context.Context, cfg *Config) {
	pctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	ok, msg := false, ""
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, t.at.Scheme+"://"+t.at.Host+cfg.path, nil)
	if err == nil {
		req.Header.Set("User-Agent", "switchyard-health/1")
		rt := http.RoundTripper(t.c.h1)
		if t.at.H2C {
			rt = t.c.h2c
		}
		var res *http.Response
		res, err = rt.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
			res.Body.Close()
			ok = cfg.expected(res.StatusCode)
			if !ok {
				msg = fmt.Sprintf("health check %s returned %d", cfg.path, res.StatusCode)
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return // stopped (target removed or checker closed), not a verdict
		}
		msg = "health check: " + err.Error()
	}
	if msg != "" {
		t.setErr(msg)
	}
	t.observe(ok, cfg)
}

// observe applies one active probe result with thresholds. The first result
// decides at once, so a new target needs one probe, not healthyThreshold.
func (t *Target) observe(ok bool, cfg *Config) {
	cur := t.state.Load()
	next := cur
	switch {
	case cur == stateUnknown:
		t.okStreak.Store(0)
		next = stateDown
		if ok {
			next = stateUp
		}
	case ok && cur == stateUp, !ok && cur == stateDown:
		t.okStreak.Store(0)
	default:
		need := cfg.unhealthyAfter
		if ok {
			need = cfg.healthyAfter
		}
		if t.okStreak.Add(1) >= need {
			t.okStreak.Store(0)
			next = stateUp
			if !ok {
				next = stateDown
			}
		}
	}
	if next == cur {
		return
	}
	t.state.Store(next)
	v := t.v
	if next == stateUp {
		t.lastErr.Store(nil) // a recovered target shows no stale error
		t.up.Set(1)
		t.c.log.Info("target healthy", "service", v.svc.name, "version", v.name, "target", t.addr)
	} else {
		t.up.Set(0)
		t.c.log.Warn("target unhealthy", "service", v.svc.name, "version", v.name, "target", t.addr, "error", t.LastError())
	}
	t.c.changed(v)
}

// version is one named pool of targets of a service.
type version struct {
	svc     *service
	name    string
	targets atomic.Pointer[[]*Target]
	removed atomic.Bool // set by RemoveVersion: nothing more is reported

	ejectMu sync.Mutex // serialises ejection decisions (never eject the last one)

	lastHealthy, lastTotal int // reported to subscribers; notifier goroutine only
}

func (v *version) list() []*Target {
	if p := v.targets.Load(); p != nil {
		return *p
	}
	return nil
}

// counts returns healthy and total targets at now.
func (v *version) counts(now int64) (healthy, total int) {
	ts := v.list()
	for _, t := range ts {
		if t.Healthy(now) {
			healthy++
		}
	}
	return healthy, len(ts)
}

// probed reports whether every target of v has had its first probe.
func (v *version) probed() bool {
	for _, t := range v.list() {
		if t.state.Load() == stateUnknown {
			return false
		}
	}
	return true
}
