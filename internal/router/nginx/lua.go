package nginx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Lua mode (spec.trafficRouter.nginx.mode: lua) renders every upstream of
// a service with one placeholder server and a balancer_by_lua_block that
// picks a peer by smooth weighted round robin, nginx's own algorithm, from
// a list kept in a lua_shared_dict. The include file also opens a control
// server on the service's controlAddress (loopback only); Switchyard posts
// each upstream's peers there, so weight and health changes take effect
// without a reload, on the connections clients already have. The list the
// file was rendered with is the default, used until a newer one is posted
// (and after nginx restarts, when the dictionary is empty).
//
// Two numbers keep the file and the dictionary apart: gen, the time in
// milliseconds of the render or post (a dictionary entry is used only when
// it is at least as new as the file the worker runs), and the structure, a
// hash of everything a post cannot change (the upstreams, the maps, the
// control server). A post for another structure is refused (409), and the
// router reloads instead.

// luaParams are the lua-mode parts of a view.
type luaParams struct {
	Control   string // the control server's listen address
	Structure string // hash of the render without peers and gen
	Gen       int64  // milliseconds; peers posted with an older gen are ignored
}

// peer is one entry of a balancer's list.
type peer struct {
	Host   string
	Port   string
	Weight int
}

// dictName is the lua_shared_dict of an upstream's service.
func dictName(upstream string) string { return "switchyard_" + upstream }

// peersOf returns the balancer lists of every upstream of v: the weighted
// one (up servers of the versions with weight, with ServerWeights) and one
// per version (its up servers, weight 1).
func peersOf(v view, per map[string][]int) map[string][]peer {
	out := map[string][]peer{}
	split := func(addr string) (string, string) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			h, p, _ := net.SplitHostPort(addr)
			return h, p
		}
		return ap.Addr().String(), fmt.Sprint(ap.Port())
	}
	var weighted []peer
	for _, name := range weightOrder(v.Routing.Weights) {
		i := 0
		for _, s := range v.Versions[name] {
			if !s.Up {
				continue
			}
			h, p := split(s.Addr)
			weighted = append(weighted, peer{h, p, per[name][i]})
			i++
		}
	}
	out[v.Upstream] = weighted
	for name, servers := range v.Versions {
		var ps []peer
		for _, s := range servers {
			if s.Up {
				h, p := split(s.Addr)
				ps = append(ps, peer{h, p, 1})
			}
		}
		out[versionUpstream(v.Upstream, name)] = ps
	}
	return out
}

// peersValue is an upstream's entry in the dictionary: the gen, then one
// "host port weight" line per peer.
func peersValue(gen int64, ps []peer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", gen)
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %s %d\n", p.Host, p.Port, p.Weight)
	}
	return b.String()
}

// luaBalancer is the balancer of one upstream: %[1]s the upstream, %[2]s
// the dictionary, %[3]d the file's gen, %[4]s the default list. Every value
// is validated (names, IP addresses, numbers): nothing needs quoting in a
// Lua long string.
const luaBalancer = `        local up, gen = "%[1]s", %[3]d
        local raw = ngx.shared.%[2]s:get(up)
        if raw == nil or tonumber(raw:match("^(%%d+)")) < gen then
            raw = [[%[4]s]]
        end
        local st = package.loaded["switchyard:" .. up]
        if st == nil then
            st = {}
            package.loaded["switchyard:" .. up] = st
        end
        if st.raw ~= raw then
            local peers = {}
            for host, port, w in raw:gmatch("\n(%%S+) (%%d+) (%%d+)") do
                peers[#peers + 1] = {host = host, port = tonumber(port), w = tonumber(w), cw = 0}
            end
            st.raw, st.peers = raw, peers
        end
        local peers = st.peers
        local best, total = nil, 0
        for i = 1, #peers do
            local p = peers[i]
            p.cw = p.cw + p.w
            total = total + p.w
            if best == nil or p.cw > best.cw then
                best = p
            end
        end
        if best == nil then
            ngx.log(ngx.ERR, "switchyard: upstream ", up, " has no server up")
            return ngx.exit(502)
        end
        best.cw = best.cw - total
        local b = require("ngx.balancer")
        if #peers > 1 and b.get_last_failure() == nil then
            b.set_more_tries(1)
        end
        local ok, err = b.set_current_peer(best.host, best.port)
        if not ok then
            ngx.log(ngx.ERR, "switchyard: set_current_peer: ", err)
            return ngx.exit(502)
        end
`

// luaControl is the control handler: %[1]s the dictionary, %[2]s the
// structure. A body is "UPSTREAM\n" then its entry, entries separated by an
// empty line.
const luaControl = `            if ngx.req.get_method() ~= "POST" then
                return ngx.exit(405)
            end
            if ngx.var.arg_structure ~= "%[2]s" then
                ngx.status = 409
                ngx.say("nginx runs structure %[2]s")
                return ngx.exit(409)
            end
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if body == nil then
                ngx.status = 400
                ngx.say("no body")
                return ngx.exit(400)
            end
            local dict, n = ngx.shared.%[1]s, 0
            for up, value in (body .. "\n"):gmatch("(%%S+)\n(.-\n)\n") do
                local ok, err = dict:set(up, value)
                if not ok then
                    ngx.status = 500
                    ngx.say("lua_shared_dict: ", err)
                    return ngx.exit(500)
                end
                n = n + 1
            end
            ngx.say("ok ", n)
`

// renderLua writes the upstreams of lua mode and the control server.
func renderLua(b *bytes.Buffer, v view, scale int, per map[string][]int) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	up, l := v.Upstream, v.Lua
	dict := dictName(up)
	peers := peersOf(v, per)
	w("# lua mode: weights and health come from lua_shared_dict %s, posted to %s (structure %s).\n", dict, l.Control, l.Structure)
	w("lua_shared_dict %s 1m;\n\n", dict)
	names := append([]string{up}, func() []string {
		var vs []string
		for _, n := range slices.Sorted(maps.Keys(v.Versions)) {
			vs = append(vs, versionUpstream(up, n))
		}
		return vs
	}()...)
	for _, name := range names {
		def := "0\n"
		if l.Structure != "" { // the structure hash is taken without the peers
			def = peersValue(l.Gen, peers[name])
		}
		if name == up {
			w("# weights: %s (scale %d)\n", describe(v.Routing), scale)
		}
		w("upstream %s {\n    server 0.0.0.1; # placeholder: the balancer picks\n    balancer_by_lua_block {\n", name)
		w(luaBalancer, name, dict, l.Gen, def)
		w("    }\n    keepalive %d;\n}\n\n", Keepalive)
	}
	w("server {\n    listen %s;\n    access_log off;\n    allow 127.0.0.0/8;\n    allow ::1;\n    deny all;\n", l.Control)
	w("    location = /switchyard/%s {\n        client_body_buffer_size 64k;\n        client_max_body_size 64k;\n        content_by_lua_block {\n", up)
	w(luaControl, dict, l.Structure)
	w("        }\n    }\n    location / {\n        return 404;\n    }\n}\n\n")
}

// structureOf is the hash of what a post cannot change: the file rendered
// without peers, gen and structure.
func structureOf(v view) string {
	v.Lua = &luaParams{Control: v.Lua.Control}
	// Weights and health only reach the peers lists and comments, unless
	// sticky sessions split by weight in the file (split_clients); roles
	// reach the rules' maps.
	switch {
	case v.Sticky != nil:
	case len(v.Rules) > 0:
		v.Routing.Weights = nil
	default:
		v.Routing = rollout.Routing{}
	}
	versions := map[string][]server{}
	for name, servers := range v.Versions {
		ss := slices.Clone(servers)
		for i := range ss {
			ss[i].Up = true
		}
		versions[name] = ss
	}
	v.Versions = versions
	sum := sha256.Sum256(render(v))
	return hex.EncodeToString(sum[:8])
}

// post sends every upstream's peers to the control server; 409 means nginx
// runs another structure (a reload has not taken effect, or the file was
// changed behind Switchyard's back).
func post(ctx context.Context, client *http.Client, control, upstream, structure string, body []byte) error {
	url := "http://" + control + "/switchyard/" + upstream + "?structure=" + structure
	var last error
	// A reload that was just signalled may leave an old worker answering
	// for a moment (409), or the new control server not listening yet
	// (refused): try again briefly, longer for the first.
	start := time.Now()
	deadline := start.Add(3 * time.Second)
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		res, err := client.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("control server %s answered %s: %s", control, res.Status, bytes.TrimSpace(msg))
			if res.StatusCode != http.StatusConflict {
				return last
			}
		} else {
			last = fmt.Errorf("%w: control server %s: %v", ErrNotRunning, control, err)
			if d := start.Add(time.Second); d.Before(deadline) {
				deadline = d
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		select {
		case <-time.After(time.Duration(10*(attempt+1)) * time.Millisecond):
		case <-ctx.Done():
			return last
		}
	}
}

// postBody lays out every upstream's entry for post.
func postBody(gen int64, peers map[string][]peer) []byte {
	var b bytes.Buffer
	for _, up := range slices.Sorted(maps.Keys(peers)) {
		fmt.Fprintf(&b, "%s\n%s\n", up, peersValue(gen, peers[up]))
	}
	return b.Bytes()
}
