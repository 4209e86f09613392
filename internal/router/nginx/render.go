package nginx

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// MaxScale bounds the weight unit of the weighted upstream: a version's
// servers share weight×scale, where scale is the least common multiple of
// the routed versions' numbers of up servers when that is at most MaxScale
// (every server of a version then gets the same weight), and MaxScale (or
// the largest number of servers, if larger) otherwise.
const MaxScale = 1000

// Keepalive is the idle upstream connections each nginx worker keeps per
// upstream (used when the location sets proxy_http_version 1.1 and an empty
// Connection header, as docs/nginx.md shows).
const Keepalive = 32

// server is one target as rendered.
type server struct {
	Addr string
	Up   bool // false: rendered "down"
}

// view is everything one service's include file is rendered from. It is
// built from values spec.Validate checked against nginx's syntax (names,
// addresses, rule values), so the renderer only lays them out.
type view struct {
	Service  string
	Upstream string
	Routing  rollout.Routing
	// Versions are the registered versions' servers, by version name.
	Versions map[string][]server
	Rules    []spec.Rule
	Trusted  []string
	Sticky   *spec.StickySessions
	// Lua, when set, renders lua mode (see lua.go).
	Lua *luaParams
}

// ServerWeights returns the nginx weight of every server of the weighted
// upstream, by version, so that each version's total share is its weight
// in the split whatever its number of up servers: 3 blue servers and 1
// green at 95/5 are weight=95 ×3 and weight=15, not 19/1 (which would give
// green 1/58). A version's servers that are down, or every server of a
// version at weight 0, get 0 (rendered down or left out).
//
// Error bound: a version's servers add up to exactly weight×scale, so its
// share of the picks among versions with an up server is exactly its
// weight over their total weight; within a version, when the servers
// cannot share weight×scale evenly (only when the lcm of the server counts
// exceeds MaxScale), they differ by at most 1 out of at least
// weight×scale/servers, under 0.1% of the version's share per server. A
// version whose servers are all down gets nothing: nginx skips down
// servers, and the other versions share its part in proportion.
func ServerWeights(weights rollout.Weights, up map[string]int) (scale int, per map[string][]int) {
	scale = 1
	most := 0
	for v, w := range weights {
		if w <= 0 || up[v] == 0 {
			continue
		}
		n := up[v]
		most = max(most, n)
		if scale <= MaxScale {
			scale = lcm(scale, n)
		}
	}
	if scale > MaxScale {
		scale = max(MaxScale, most)
	}
	per = map[string][]int{}
	for v, w := range weights {
		n := up[v]
		if w <= 0 || n == 0 {
			continue
		}
		total := w * scale
		ws := make([]int, n)
		for i := range ws {
			ws[i] = total / n
			if i < total%n {
				ws[i]++
			}
		}
		per[v] = ws
	}
	return scale, per
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func lcm(a, b int) int { return a / gcd(a, b) * b }

// versionUpstream is the upstream holding only one version's servers, where
// routing rules (and sticky sessions) send requests.
func versionUpstream(upstream, version string) string { return upstream + "__" + version }

// render lays out the include file of one service: the weighted upstream,
// one upstream per version, and the maps that set $switchyard_UPSTREAM.
func render(v view) []byte {
	var b bytes.Buffer
	up := v.Upstream
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Rendered by Switchyard for service %q; every change is overwritten.\n", v.Service)
	w("# Include it inside nginx.conf's http block, then proxy_pass http://%s;\n", spec.NginxVariable(up))
	w("# (routing rules, sticky sessions and weights) or http://%s; (weights only).\n", up)
	w("# routing: %s\n\n", describe(v.Routing))

	names := slices.Sorted(maps.Keys(v.Versions))
	upCount := map[string]int{}
	for _, name := range names {
		for _, s := range v.Versions[name] {
			if s.Up {
				upCount[name]++
			}
		}
	}
	scale, per := ServerWeights(v.Routing.Weights, upCount)

	if v.Lua != nil {
		renderLua(&b, v, scale, per)
	} else {
		renderStatic(&b, v, names, upCount, scale, per)
	}

	// The routing maps, in the proxy's order: header rules, then cookie
	// rules, then the weights (sticky or not). Each map's default is the
	// next one's variable.
	type step struct {
		source  string
		entries [][2]string // regex, upstream
	}
	var steps []step
	trusted := len(v.Trusted) > 0
	if trusted {
		w("geo %s_trusted {\n    default 0;\n", spec.NginxVariable(up))
		for _, src := range v.Trusted {
			w("    %s 1;\n", src)
		}
		w("}\n\n")
	}
	roleVersion := func(to string) (string, bool) {
		r := v.Routing
		ver := r.Stable
		if to == spec.RoleCanary {
			ver = r.Canary
		}
		_, ok := v.Versions[ver]
		return ver, ver != "" && ok
	}
	other := func(to string) string {
		if to == spec.RoleCanary {
			return spec.RoleStable
		}
		return spec.RoleCanary
	}
	for _, header := range []bool{true, false} {
		for _, r := range v.Rules {
			m, source := r.Cookie, ""
			if header {
				m = r.Header
			}
			if m == nil {
				continue
			}
			prefix := ""
			if header {
				source = "$http_" + strings.ToLower(strings.ReplaceAll(m.Name, "-", "_"))
				if trusted {
					source = spec.NginxVariable(up) + "_trusted:" + source
					prefix = "1:"
				}
			} else {
				source = "$cookie_" + m.Name
			}
			st := step{source: source}
			add := func(value, to string) {
				if ver, ok := roleVersion(to); ok {
					st.entries = append(st.entries, [2]string{"~^" + prefix + regexQuote(value) + "$", versionUpstream(up, ver)})
				}
			}
			add("always", r.To)
			add("never", other(r.To))
			if m.Value != "" && m.Value != "always" && m.Value != "never" {
				add(m.Value, r.To)
			}
			if len(st.entries) > 0 {
				steps = append(steps, st)
			}
		}
	}
	final := spec.NginxVariable(up)
	varOf := func(i int) string {
		if i == 0 {
			return final
		}
		return fmt.Sprintf("%s_r%d", final, i)
	}
	weighted := up
	if v.Sticky != nil {
		weighted = final + "_sticky"
	}
	for i, st := range steps {
		next := weighted
		if i+1 < len(steps) {
			next = varOf(i + 1)
		}
		w("map \"%s\" %s {\n    default %s;\n", st.source, varOf(i), next)
		for _, e := range st.entries {
			w("    \"%s\" %s;\n", e[0], e[1])
		}
		w("}\n\n")
	}
	if len(steps) == 0 && v.Sticky == nil {
		w("map $scheme %s {\n    default %s;\n}\n\n", final, up)
	}
	if st := v.Sticky; st != nil {
		target := weighted
		if len(steps) == 0 {
			target = final
		}
		// A client is the sticky cookie when it sends one, else its address;
		// split_clients hashes it into the versions' shares, the canary
		// first, so raising its weight only moves clients to the canary.
		w("map $cookie_%s %s_key {\n    \"\" $remote_addr;\n    default $cookie_%s;\n}\n\n", st.Cookie, final, st.Cookie)
		w("split_clients \"%s_key\" %s {\n", final, target)
		order := weightOrder(v.Routing.Weights)
		var rest string
		for i, name := range order {
			if _, ok := v.Versions[name]; !ok {
				continue
			}
			if i == len(order)-1 {
				rest = versionUpstream(up, name)
				break
			}
			w("    %d%% %s;\n", v.Routing.Weights[name], versionUpstream(up, name))
		}
		if rest == "" {
			rest = up
		}
		w("    * %s;\n}\n\n", rest)
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

// weightOrder lists the versions with weight: the canary (the versions
// other than the one with most weight) first, by name, then the heaviest.
func weightOrder(ws rollout.Weights) []string {
	var out []string
	for v, w := range ws {
		if w > 0 {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if ws[out[i]] != ws[out[j]] {
			return ws[out[i]] < ws[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

func describe(r rollout.Routing) string {
	var parts []string
	for _, v := range slices.Sorted(maps.Keys(r.Weights)) {
		parts = append(parts, fmt.Sprintf("%s=%d", v, r.Weights[v]))
	}
	s := strings.Join(parts, " ") + " (stable " + r.Stable
	if r.Canary != "" {
		s += ", canary " + r.Canary
	}
	return s + ")"
}

// regexQuote escapes the one regular-expression character a validated
// rule value may hold ('.').
func regexQuote(s string) string { return strings.ReplaceAll(s, ".", `\.`) }

// renderStatic writes the upstreams of reload mode: the weights are the
// servers' weight parameters.
func renderStatic(b *bytes.Buffer, v view, names []string, upCount map[string]int, scale int, per map[string][]int) {
	up := v.Upstream
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	// The weighted upstream: the versions that have weight, each server
	// with its share; a down server stays listed (nginx keeps its state).
	w("upstream %s {\n", up)
	listed := 0
	for _, name := range weightOrder(v.Routing.Weights) {
		servers := v.Versions[name]
		if len(servers) == 0 {
			continue
		}
		w("    # %s: %d%% = %d of %d, %d of %d servers up\n", name, v.Routing.Weights[name], v.Routing.Weights[name]*scale, 100*scale, upCount[name], len(servers))
		i := 0
		for _, s := range servers {
			listed++
			if !s.Up {
				w("    server %s down;\n", s.Addr)
				continue
			}
			w("    server %s weight=%d;\n", s.Addr, per[name][i])
			i++
		}
	}
	if listed == 0 {
		// nginx refuses an upstream without servers; this one never answers.
		w("    # no version with weight has servers\n    server 127.0.0.1:9 down;\n")
	}
	w("    keepalive %d;\n}\n\n", Keepalive)

	for _, name := range names {
		w("upstream %s {\n", versionUpstream(up, name))
		for _, s := range v.Versions[name] {
			if s.Up {
				w("    server %s;\n", s.Addr)
			} else {
				w("    server %s down;\n", s.Addr)
			}
		}
		if len(v.Versions[name]) == 0 {
			w("    server 127.0.0.1:9 down;\n")
		}
		w("    keepalive %d;\n}\n\n", Keepalive)
	}
}
