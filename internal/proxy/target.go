package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Active health states of a target. A target nobody has probed yet is
// routable (so a fresh start does not refuse traffic) but is not reported
// healthy (so a health gate waits for a real probe).
const (
	healthUnknown int32 = iota
	healthUp
	healthDown
)

// target is one backend address of one version. It is shared by every
// routing table that contains its version, so counters and health survive
// table rebuilds (Caddy's Upstream/Host split).
type target struct {
	addr    string // as configured, e.g. "10.0.0.1:8080" or "h2c://10.0.0.1:9000"
	host    string // host:port
	scheme  string // "http" or "https"
	h2c     bool
	version *version

	inflight     atomic.Int64
	state        atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when not ejected
	fails        atomic.Int32 // consecutive passive failures
	okStreak     atomic.Int32 // consecutive active successes/failures (checker only)
	lastErr      atomic.Pointer[string]
	up           prometheus.Gauge

	stop context.CancelFunc // stops the health checker
	done chan struct{}      // closed when the health checker returned
}

func (t *target) setErr(s string) {
	if p := t.lastErr.Load(); p != nil && *p == s {
		return
	}
	t.lastErr.Store(&s)
}

// routable reports whether new requests may go to t at now (unix nanos).
func (t *target) routable(now int64) bool {
	if t.state.Load() == healthDown {
		return false
	}
	if u := t.ejectedUntil.Load(); u != 0 && now < u {
		return false
	}
	return true
}

// healthy is what Health and OnHealthChange report.
func (t *target) healthy(now int64) bool {
	return t.state.Load() == healthUp && !t.ejected(now)
}

func (t *target) ejected(now int64) bool {
	u := t.ejectedUntil.Load()
	return u != 0 && now < u
}

// version is one named pool of targets. The target list is replaced
// atomically by SetVersion, so tables need not be rebuilt for it.
type version struct {
	service  string
	name     string
	targets  atomic.Pointer[[]*target]
	stats    *stats
	fromSpec bool
	// plainHTTP is set while every target is plain http, which the fast
	// path requires (it speaks HTTP/1.1 only).
	plainHTTP atomic.Bool

	rr       atomic.Uint32
	duration prometheus.Observer
	codes    [600]atomic.Pointer[prometheus.Counter]
	reqs     *prometheus.CounterVec

	ejectMu sync.Mutex // serialises ejection decisions (never eject the last one)

	lastHealthy, lastTotal int // reported to subscribers; notifier goroutine only
}

func (v *version) list() []*target {
	if p := v.targets.Load(); p != nil {
		return *p
	}
	return nil
}

// counter returns the requests_total child for a status code, creating and
// caching it on first use so the hot path does not hash label values.
func (v *version) counter(code int) prometheus.Counter {
	if code < 0 || code >= len(v.codes) {
		return v.reqs.WithLabelValues(v.service, v.name, itoa(code))
	}
	if c := v.codes[code].Load(); c != nil {
		return *c
	}
	c := v.reqs.WithLabelValues(v.service, v.name, itoa(code))
	v.codes[code].Store(&c)
	return c
}

// pick chooses a routable target by the power of two random choices on
// in-flight requests (least-loaded without a global scan), skipping the
// excluded ones. It returns nil when no target is routable.
func (v *version) pick(now int64, exclude []*target) *target {
	ts := v.list()
	switch len(ts) {
	case 0:
		return nil
	case 1:
		if ts[0].routable(now) && !contains(exclude, ts[0]) {
			return ts[0]
		}
		return nil
	}
	n := len(ts)
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := ts[i], ts[j]
	aok := a.routable(now) && !contains(exclude, a)
	bok := b.routable(now) && !contains(exclude, b)
	switch {
	case aok && bok:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case aok:
		return a
	case bok:
		return b
	}
	// Both samples unusable: scan from a rotating start for any routable one.
	start := int(v.rr.Add(1))
	for k := range n {
		t := ts[(start+k)%n]
		if t.routable(now) && !contains(exclude, t) {
			return t
		}
	}
	return nil
}

// anyTarget returns some target regardless of health: when every target of
// every version looks down, trying one beats refusing (nginx does the same).
func (v *version) anyTarget(exclude []*target) *target {
	ts := v.list()
	if len(ts) == 0 {
		return nil
	}
	start := int(v.rr.Add(1))
	for k := range ts {
		t := ts[(start+k)%len(ts)]
		if !contains(exclude, t) {
			return t
		}
	}
	return nil
}

// counts returns healthy and total targets at now.
func (v *version) counts(now int64) (healthy, total int) {
	ts := v.list()
	for _, t := range ts {
		if t.healthy(now) {
			healthy++
		}
	}
	return healthy, len(ts)
}

// probed reports whether every target of v has had its first probe.
func (v *version) probed() bool {
	for _, t := range v.list() {
		if t.state.Load() == healthUnknown {
			return false
		}
	}
	return true
}

func contains(ts []*target, t *target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func itoa(i int) string { return fmt.Sprint(i) }
