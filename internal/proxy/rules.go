package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/switchyard/switchyard/internal/spec"
)

// role is the part a version plays in a service's routing.
type role uint8

const (
	roleNone role = iota
	roleStable
	roleCanary
)

func (r role) other() role {
	switch r {
	case roleStable:
		return roleCanary
	case roleCanary:
		return roleStable
	}
	return roleNone
}

func (r role) String() string {
	switch r {
	case roleStable:
		return "stable"
	case roleCanary:
		return "canary"
	}
	return "none"
}

// rule is a compiled spec.Rule: a header (canonical key) or cookie name, the
// value that selects the rule's role, and that role.
type rule struct {
	header bool
	name   string
	value  string
	to     role
}

// compileRules turns spec rules into match-ready rules, canonicalising header
// names once so the hot path can index the header map directly.
func compileRules(rs []spec.Rule) ([]rule, error) {
	out := make([]rule, 0, len(rs))
	for i, r := range rs {
		var to role
		switch r.To {
		case "canary", "":
			to = roleCanary
		case "stable":
			to = roleStable
		default:
			return nil, fmt.Errorf("routing.rules[%d].to is %q; must be canary or stable", i, r.To)
		}
		switch {
		case r.Header != nil && r.Header.Name != "":
			out = append(out, rule{header: true, name: textproto.CanonicalMIMEHeaderKey(r.Header.Name), value: r.Header.Value, to: to})
		case r.Cookie != nil && r.Cookie.Name != "":
			out = append(out, rule{name: r.Cookie.Name, value: r.Cookie.Value, to: to})
		default:
			return nil, fmt.Errorf("routing.rules[%d] has neither header nor cookie name", i)
		}
	}
	return out, nil
}

// decide maps a request's header or cookie value to a role, nginx
// ingress-canary style: "always" forces the rule's role, "never" the other
// one, an exact match of the rule's value forces the rule's role, and
// anything else leaves the decision to the next rule.
func (r *rule) decide(v string) role {
	switch {
	case v == "always":
		return r.to
	case v == "never":
		return r.to.other()
	case r.value != "" && v == r.value:
		return r.to
	}
	return roleNone
}

// matchRules returns the role chosen by the first rule that decides, in
// nginx's order: every header rule first, then every cookie rule. Header
// rules count only when trusted is set (the client is a trusted source).
func matchRules(rules []rule, h http.Header, trusted bool) role {
	return matchRulesIn(rules, headerView(h), trusted)
}

// fieldReader is what rule matching reads from a request: the first value
// of a header (by canonical name) and a cookie. Both front ends (net/http
// and fasthttp) implement it, so they share every routing decision.
type fieldReader interface {
	headerValue(canonical string) (string, bool)
	cookieValue(name string) (string, bool)
}

// headerView reads fields from an http.Header.
type headerView http.Header

func (h headerView) headerValue(name string) (string, bool) {
	if vs := h[name]; len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

func (h headerView) cookieValue(name string) (string, bool) { return cookieValue(http.Header(h), name) }

func matchRulesIn(rules []rule, h fieldReader, trusted bool) role {
	if trusted {
		for i := range rules {
			r := &rules[i]
			if !r.header {
				continue
			}
			if v, ok := h.headerValue(r.name); ok {
				if ro := r.decide(v); ro != roleNone {
					return ro
				}
			}
		}
	}
	for i := range rules {
		r := &rules[i]
		if r.header {
			continue
		}
		if v, ok := h.cookieValue(r.name); ok {
			if ro := r.decide(v); ro != roleNone {
				return ro
			}
		}
	}
	return roleNone
}

// cookieValue finds a cookie in the Cookie headers without allocating
// (http.Request.Cookie parses and allocates every cookie of the request).
func cookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		if v, ok := cookieIn(line, name); ok {
			return v, true
		}
	}
	return "", false
}

// cookieIn finds a cookie in one Cookie header line.
func cookieIn(line, name string) (string, bool) {
	for len(line) > 0 {
		var part string
		part, line, _ = strings.Cut(line, ";")
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if !ok || k != name {
			continue
		}
		if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, true
	}
	return "", false
}

// parseTrusted parses trustedSources: CIDRs or single addresses.
func parseTrusted(srcs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(srcs))
	for i, s := range srcs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("routing.trustedSources[%d] is %q; must be a CIDR like 10.0.0.0/8 or an IP address", i, s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trustedPeer reports whether the TCP peer (never X-Forwarded-For, which the
// client controls) is in one of the prefixes. No prefixes means everyone.
func trustedPeer(prefixes []netip.Prefix, remoteAddr string) bool {
	if len(prefixes) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return trustedAddr(prefixes, ap.Addr())
}

// trustedAddr is trustedPeer for a parsed peer address.
func trustedAddr(prefixes []netip.Prefix, a netip.Addr) bool {
	if len(prefixes) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
