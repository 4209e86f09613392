package nginx

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

var update = flag.Bool("update", false, "rewrite testdata/*.conf from the renderer")

func TestServerWeights(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights rollout.Weights
		up      map[string]int
		want    map[string][]int
	}{
		{"3 blue 1 green at 5%", rollout.Weights{"blue": 95, "green": 5}, map[string]int{"blue": 3, "green": 1},
			map[string][]int{"blue": {95, 95, 95}, "green": {15}}},
		{"all blue", rollout.Weights{"blue": 100}, map[string]int{"blue": 3, "green": 1},
			map[string][]int{"blue": {100, 100, 100}}},
		{"2 and 3", rollout.Weights{"a": 50, "b": 50}, map[string]int{"a": 2, "b": 3},
			map[string][]int{"a": {150, 150}, "b": {100, 100, 100}}},
		{"a version all down", rollout.Weights{"blue": 90, "green": 10}, map[string]int{"blue": 2},
			map[string][]int{"blue": {90, 90}}},
		// lcm(7, 11, 13) = 1001 > MaxScale: scale 1000, uneven by at most 1.
		{"uneven", rollout.Weights{"a": 33, "b": 33, "c": 34}, map[string]int{"a": 7, "b": 11, "c": 13},
			map[string][]int{"a": {4715, 4715, 4714, 4714, 4714, 4714, 4714}, "b": {3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000}, "c": {2616, 2616, 2616, 2616, 2616, 2616, 2616, 2616, 2616, 2616, 2616, 2616, 2616 - 8}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scale, got := ServerWeights(tc.weights, tc.up)
			// Every version's servers add up to exactly weight × scale.
			for v, ws := range got {
				sum := 0
				for _, w := range ws {
					sum += w
				}
				if sum != tc.weights[v]*scale {
					t.Errorf("version %s: weights %v add up to %d, want %d×%d", v, ws, sum, tc.weights[v], scale)
				}
			}
			if tc.name == "uneven" {
				// The exact figures of c are not the point; the bound is.
				for v, ws := range got {
					lo, hi := ws[0], ws[0]
					for _, w := range ws {
						lo, hi = min(lo, w), max(hi, w)
					}
					if hi-lo > 1 {
						t.Errorf("version %s: weights %v differ by %d, want at most 1", v, ws, hi-lo)
					}
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ServerWeights(%v, %v) = %v, want %v", tc.weights, tc.up, got, tc.want)
			}
			for v, ws := range tc.want {
				if !equalInts(got[v], ws) {
					t.Errorf("ServerWeights(%v, %v)[%s] = %v, want %v", tc.weights, tc.up, v, got[v], ws)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRenderGolden compares rendered include files with testdata/*.conf;
// regenerate with go test ./internal/router/nginx -run TestRenderGolden -update
// and review the diff. TestRenderedFilesLoad has nginx itself read them.
func TestRenderGolden(t *testing.T) {
	for name, v := range goldenViews() {
		t.Run(name, func(t *testing.T) {
			got := append(render(v), '\n')
			path := filepath.Join("testdata", name+".conf")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (generate with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("render differs from %s (regenerate with -update and review the diff):\n%s", path, got)
			}
		})
	}
}

func goldenViews() map[string]view {
	three := []server{{"127.0.0.1:9001", true}, {"127.0.0.1:9002", true}, {"127.0.0.1:9003", true}}
	one := []server{{"127.0.0.1:9101", true}}
	canary := rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 95, "green": 5}}
	xCanary := []spec.Rule{{Header: &spec.Match{Name: "X-Canary", Value: "true"}, To: spec.RoleCanary}}
	return map[string]view{
		"stable": {Service: "web", Upstream: "web", Routing: rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100}},
			Versions: map[string][]server{"blue": three}},
		"canary-3-1": {Service: "web", Upstream: "web", Routing: canary,
			Versions: map[string][]server{"blue": three, "green": one}},
		"down": {Service: "web", Upstream: "web", Routing: canary,
			Versions: map[string][]server{"blue": {{"127.0.0.1:9001", true}, {"127.0.0.1:9002", false}, {"127.0.0.1:9003", true}}, "green": one}},
		"rules": {Service: "web", Upstream: "web", Routing: canary,
			Versions: map[string][]server{"blue": three, "green": one},
			Rules: append(xCanary, spec.Rule{Cookie: &spec.Match{Name: "canary", Value: "v1.2"}, To: spec.RoleCanary},
				spec.Rule{Header: &spec.Match{Name: "x-stable"}, To: spec.RoleStable}),
			Trusted: []string{"10.0.0.0/8", "127.0.0.1"}},
		"sticky": {Service: "web", Upstream: "web", Routing: canary,
			Versions: map[string][]server{"blue": three, "green": one},
			Rules:    xCanary, Sticky: &spec.StickySessions{Cookie: "session"}},
		"lua-canary": {Service: "web", Upstream: "web", Routing: canary,
			Versions: map[string][]server{"blue": {{"127.0.0.1:9001", true}, {"127.0.0.1:9002", false}, {"127.0.0.1:9003", true}}, "green": one},
			Rules:    xCanary, Lua: &luaParams{Control: "127.0.0.1:10246", Structure: "0123456789abcdef", Gen: 1700000000000}},
		"sticky-no-rules": {Service: "web", Upstream: "web", Routing: canary,
			Versions: map[string][]server{"blue": three, "green": one},
			Sticky:   &spec.StickySessions{Cookie: "session"}},
	}
}
