package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// table is one service's routing, immutable once published. Requests load
// it with one atomic read; Route, Apply and SetVersion build a new one.
type table struct {
	seq atomic.Uint64 // weighted-pick counter, the only mutable field

	stable, canary *version
	canaryWeight   int
	picks          []pick     // cumulative weights, in percent
	versions       []*version // every version with a role or weight, for fallback

	// compiled is copied by value: the hot path reads its fields without
	// another pointer hop.
	compiled
}

type pick struct {
	cum int
	v   *version
}

// compiled is the part of a table that comes from the spec (rules, sticky,
// options), built and validated in Apply before anything changes.
type compiled struct {
	rules   []rule
	trusted []netip.Prefix
	sticky  *stickyConfig
	health  *health.Config
	// loadToken is the load generator's token while one runs (SetLoadToken);
	// "" when none does, the only case the hot path then pays for.
	loadToken       string
	maxBody         int64
	versionHeader   string
	retries         int
	upstreamTimeout time.Duration
}

func compileSpec(name string, sp *spec.ServiceSpec, key []byte) (*compiled, error) {
	rules, err := compileRules(sp.Routing.Rules)
	if err != nil {
		return nil, err
	}
	trusted, err := parseTrusted(sp.Routing.TrustedSources)
	if err != nil {
		return nil, err
	}
	hc, err := health.NewConfig(sp.HealthCheck)
	if err != nil {
		return nil, err
	}
	c := &compiled{
		rules:           rules,
		trusted:         trusted,
		health:          hc,
		maxBody:         sp.Proxy.MaxBodyBytes,
		versionHeader:   http.CanonicalHeaderKey(sp.Proxy.VersionHeader),
		retries:         max(*sp.Proxy.Retries, 0), // set by spec.Default; Apply checks
		upstreamTimeout: sp.Proxy.UpstreamTimeout.Duration,
	}
	if st := sp.Routing.StickySessions; st != nil && st.Cookie != "" {
		c.sticky = newStickyConfig(st.Cookie, st.TTL.Duration, name, key)
	}
	return c, nil
}

// table returns a table with c's settings and no versions.
func (c *compiled) table() *table {
	return &table{compiled: *c}
}

// buildTable combines compiled spec parts, the service's versions and a
// routing into a table, or says why the routing cannot be put in force.
func buildTable(c *compiled, versions map[string]*version, r rollout.Routing) (*table, error) {
	t := c.table()
	if r.Stable != "" {
		v, ok := versions[r.Stable]
		if !ok {
			return nil, fmt.Errorf("stable version %q: %w", r.Stable, ErrUnknownVersion)
		}
		t.stable = v
		t.versions = append(t.versions, v)
	}
	if r.Canary != "" && r.Canary != r.Stable {
		v, ok := versions[r.Canary]
		if !ok {
			return nil, fmt.Errorf("canary version %q: %w", r.Canary, ErrUnknownVersion)
		}
		t.canary = v
		t.versions = append(t.versions, v)
		t.canaryWeight = r.Weights[r.Canary]
	}
	sum := 0
	for name, w := range r.Weights {
		if w < 0 || w > 100 {
			return nil, fmt.Errorf("weight of version %q is %d; must be 0-100", name, w)
		}
		if _, ok := versions[name]; !ok {
			return nil, fmt.Errorf("weighted version %q: %w", name, ErrUnknownVersion)
		}
		sum += w
	}
	if len(r.Weights) == 0 {
		if t.stable != nil {
			t.picks = []pick{{cum: 100, v: t.stable}}
		}
		return t, nil
	}
	if sum != 100 {
		return nil, fmt.Errorf("weights %v sum to %d; must sum to 100", r.Weights, sum)
	}
	// Stable first, then canary, then the rest by name: a deterministic order.
	order := make([]*version, 0, len(r.Weights))
	for _, v := range t.versions {
		if _, ok := r.Weights[v.name]; ok {
			order = append(order, v)
		}
	}
	for _, name := range sortedKeys(r.Weights) {
		v := versions[name]
		if !contains2(order, v) {
			order = append(order, v)
			t.versions = append(t.versions, v)
		}
	}
	cum := 0
	for _, v := range order {
		if w := r.Weights[v.name]; w > 0 {
			cum += w
			t.picks = append(t.picks, pick{cum: cum, v: v})
		}
	}
	return t, nil
}

func contains2(vs []*version, v *version) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// request is what routing needs from a request, whichever front end
// (net/http or fasthttp) parsed it: its fields, whether its TCP peer is a
// trusted source, and a way to issue a sticky cookie.
type request interface {
	fieldReader
	trusted(prefixes []netip.Prefix) bool
	setCookie(c *http.Cookie)
}

// choose picks the version for a request: header rules (from trusted
// peers), cookie rules, sticky cookie, then weighted random. It may issue a
// sticky cookie through r.
func (t *table) choose(r request, now time.Time) *version {
	if len(t.rules) > 0 {
		switch matchRulesIn(t.rules, r, r.trusted(t.trusted)) {
		case roleCanary:
			if t.canary != nil {
				return t.canary
			}
		case roleStable:
			if t.stable != nil {
				return t.stable
			}
		}
	}
	if t.sticky != nil && t.stable != nil {
		return t.chooseSticky(r, now)
	}
	return t.weighted()
}

// route chooses the version and a routable target for a request. When the
// chosen version has no routable target another version that has one
// serves rather than failing the request; when none has, any target of the
// chosen version is tried (nginx does the same). t is nil when the chosen
// version has no target at all.
func (t *table) route(r request, start time.Time) (v *version, tg *target) {
	now := start.UnixNano()
	v = t.choose(r, start)
	tg = v.pick(now, nil)
	if tg == nil {
		for _, o := range t.versions {
			if o != v {
				if tg = o.pick(now, nil); tg != nil {
					return o, tg
				}
			}
		}
		tg = v.anyTarget(nil)
	}
	return v, tg
}

func (t *table) weighted() *version {
	switch len(t.picks) {
	case 0:
		if t.stable != nil {
			return t.stable
		}
		return t.versions[0]
	case 1:
		return t.picks[0].v
	}
	// A counter walked with a stride coprime to 100 visits every percent
	// slot exactly once per 100 requests, so the split is exact over any 100
	// consecutive requests (a random draw is off by more than a point over
	// 10,000 requests about 3% of the time) while consecutive requests still
	// alternate between versions.
	total := uint64(t.picks[len(t.picks)-1].cum)
	n := int(t.seq.Add(1) * 37 % total)
	for i := range t.picks {
		if n < t.picks[i].cum {
			return t.picks[i].v
		}
	}
	return t.picks[len(t.picks)-1].v
}

func (t *table) chooseSticky(r request, now time.Time) *version {
	sc := t.sticky
	sec := now.Unix()
	id, exp, ok := [stickyIDLen]byte{}, int64(0), false
	if v, found := r.cookieValue(sc.cookie); found {
		id, exp, ok = sc.decode(v, sec)
	}
	if !ok {
		id = newStickyID()
	}
	if !ok || exp-sec < int64(sc.ttl/time.Second)/2 {
		// New, forged, expired or half-way to expiry: (re)issue.
		exp = sec + int64(sc.ttl/time.Second)
		r.setCookie(&http.Cookie{
			Name: sc.cookie, Value: sc.encode(id, exp), Path: "/",
			Expires: time.Unix(exp, 0), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		})
	}
	if t.canary != nil && stickyCanary(bucketOf(id), t.canaryWeight) {
		return t.canary
	}
	return t.stable
}

func sortedKeys(w rollout.Weights) []string {
	ks := make([]string, 0, len(w))
	for k := range w {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
