package proxy

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/health"
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
	// health is the checker's state of this address in this version: the
	// hot path asks it whether the target is routable and reports outcomes
	// to it.
	health *health.Target

	inflight atomic.Int64
}

// routable reports whether new requests may go to t at now (unix nanos).
func (t *target) routable(now int64) bool { return t.health.Routable(now) }

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

func contains(ts []*target, t *target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func itoa(i int) string { return fmt.Sprint(i) }
