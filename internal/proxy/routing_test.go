package proxy

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func TestWeightedSplitAccuracy(t *testing.T) {
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", v1), ver("v2", v2)))
	c := newClient(8)
	for _, canary := range []int{1, 10, 33, 50} {
		mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 100 - canary, "v2": canary}})
		const n, workers = 10000, 8
		var got atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range n / workers {
					code, v, err := get(c, proxyURL(t, p, "web"), nil)
					if err != nil || code != 200 {
						t.Errorf("GET: %d %v", code, err)
						return
					}
					if v == "v2" {
						got.Add(1)
					}
				}
			})
		}
		wg.Wait()
		pct := float64(got.Load()) * 100 / n
		if pct < float64(canary)-1 || pct > float64(canary)+1 {
			t.Errorf("canary weight %d%%: canary got %.2f%% of %d requests, want within 1 point", canary, pct, n)
		}
		if testing.Short() {
			break
		}
	}
}

func TestRules(t *testing.T) {
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	rules := []spec.Rule{
		{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: "canary"},
		{Cookie: &spec.Match{Name: "canary"}, To: "canary"},
	}
	cases := []struct {
		name    string
		trusted []string
		weight  int
		hdr     map[string]string
		want    string
	}{
		{"no match goes by weight", nil, 0, nil, "stable"},
		{"header exact value", nil, 0, map[string]string{"X-Canary": "true"}, "canary"},
		{"header always", nil, 0, map[string]string{"X-Canary": "always"}, "canary"},
		{"header never at weight 100", nil, 100, map[string]string{"X-Canary": "never"}, "stable"},
		{"header other value ignored", nil, 0, map[string]string{"X-Canary": "yes"}, "stable"},
		{"cookie always", nil, 0, map[string]string{"Cookie": "a=b; canary=always"}, "canary"},
		{"cookie never", nil, 100, map[string]string{"Cookie": "canary=never"}, "stable"},
		{"header before cookie", nil, 0, map[string]string{"X-Canary": "never", "Cookie": "canary=always"}, "stable"},
		{"trusted source header", []string{"127.0.0.0/8"}, 0, map[string]string{"X-Canary": "true"}, "canary"},
		{"untrusted source header ignored", []string{"10.0.0.0/8"}, 0, map[string]string{"X-Canary": "true"}, "stable"},
		{"untrusted despite X-Forwarded-For", []string{"10.0.0.0/8"}, 0, map[string]string{"X-Canary": "always", "X-Forwarded-For": "10.1.2.3"}, "stable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProxy(t, nil)
			s := testService("web", "stable", ver("stable", stable), ver("canary", canary))
			s.Spec.Routing = spec.Routing{Rules: rules, TrustedSources: tc.trusted}
			mustApply(t, p, s)
			mustRoute(t, p, "web", rollout.Routing{Stable: "stable", Canary: "canary",
				Weights: rollout.Weights{"stable": 100 - tc.weight, "canary": tc.weight}})
			c := newClient(1)
			for range 20 {
				code, v, err := get(c, proxyURL(t, p, "web"), tc.hdr)
				if err != nil || code != 200 {
					t.Fatalf("GET: %d %v", code, err)
				}
				if v != tc.want {
					t.Fatalf("served by %q, want %q", v, tc.want)
				}
			}
		})
	}
}

func TestStickySessions(t *testing.T) {
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	p := newTestProxy(t, nil)
	s := testService("web", "stable", ver("stable", stable), ver("canary", canary))
	s.Spec.Routing.StickySessions = &spec.StickySessions{Cookie: "sy"}
	mustApply(t, p, s)
	route := func(w int) {
		mustRoute(t, p, "web", rollout.Routing{Stable: "stable", Canary: "canary", Weights: rollout.Weights{"stable": 100 - w, "canary": w}})
	}
	route(10)
	url := proxyURL(t, p, "web")
	c := newClient(4)

	do := func(cookie string) (version, setCookie string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if cookie != "" {
			req.Header.Set("Cookie", "sy="+cookie)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		for _, ck := range res.Cookies() {
			if ck.Name == "sy" {
				setCookie = ck.Value
			}
		}
		return res.Header.Get("X-Backend-Version"), setCookie
	}

	const users = 400
	cookies := make([]string, users)
	at10 := make([]string, users)
	for i := range users {
		v, ck := do("")
		if ck == "" {
			t.Fatal("no sticky cookie issued to a new client")
		}
		cookies[i], at10[i] = ck, v
		for range 3 { // the same user stays put
			if v2, _ := do(ck); v2 != v {
				t.Fatalf("user %d moved from %s to %s at a constant weight", i, v, v2)
			}
		}
	}
	route(20)
	moved, canaryAt20 := 0, 0
	for i, ck := range cookies {
		v, _ := do(ck)
		if at10[i] == "canary" && v != "canary" {
			t.Errorf("user %d was on canary at 10%% and left it at 20%%", i)
		}
		if at10[i] != v {
			moved++
		}
		if v == "canary" {
			canaryAt20++
		}
	}
	if moved == 0 || canaryAt20 < users*10/100 || canaryAt20 > users*30/100 {
		t.Errorf("raising 10%%→20%%: %d users moved, %d of %d on canary; want some moved and about 20%%", moved, canaryAt20, users)
	}

	t.Run("forged cookie ignored", func(t *testing.T) {
		// A cookie for a canary bucket, signed with another key.
		forger := newStickyConfig("sy", 0, "web", []byte("attacker"))
		var id [stickyIDLen]byte // bucket 0: canary at any weight > 0
		forged := forger.encode(id, 1<<40)
		tampered := []byte(cookies[0])
		tampered[3] ^= 1
		for _, ck := range []string{forged, string(tampered), "garbage", ""} {
			_, set := do(ck)
			if set == "" || set == ck {
				t.Errorf("cookie %q was accepted (no new cookie issued)", ck)
			}
		}
		route(50)
		canaryHits := 0
		for range 200 {
			if v, _ := do(forged); v == "canary" {
				canaryHits++
			}
		}
		if canaryHits == 200 {
			t.Errorf("forged canary-bucket cookie reached the canary every time")
		}
	})
}

func TestStickyBucketsMonotonic(t *testing.T) {
	for b := range stickyBucket {
		for w := 0; w < 100; w++ {
			if stickyCanary(b, w) && !stickyCanary(b, w+1) {
				t.Fatalf("bucket %d is canary at %d%% but not at %d%%", b, w, w+1)
			}
		}
	}
	if stickyCanary(0, 0) || !stickyCanary(stickyBucket-1, 100) {
		t.Fatal("weights 0 and 100 must send nobody and everybody to the canary")
	}
}

func TestCookieValue(t *testing.T) {
	cases := []struct {
		name, header, cookie, want string
		ok                         bool
	}{
		{"single", "a=1", "a", "1", true},
		{"among several", "x=2; a=1; b=3", "a", "1", true},
		{"quoted", `a="q"`, "a", "q", true},
		{"missing", "b=1", "a", "", false},
		{"prefix is not a match", "aa=1", "a", "", false},
		{"empty value", "a=", "a", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := cookieValue(http.Header{"Cookie": {tc.header}}, tc.cookie)
			if got != tc.want || ok != tc.ok {
				t.Errorf("cookieValue(%q, %q) = %q, %v; want %q, %v", tc.header, tc.cookie, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestRouteRefusesInvalid(t *testing.T) {
	v1 := newBackend(t, "v1")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", v1)))
	cases := []struct {
		name string
		r    rollout.Routing
		want string
	}{
		{"unknown stable", rollout.Routing{Stable: "nope", Weights: rollout.Weights{"nope": 100}}, "unknown version"},
		{"weights not 100", rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 90}}, "sum to 90"},
		{"negative weight", rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": -1}}, "0-100"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Route(t.Context(), "web", tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Route = %v, want error containing %q", err, tc.want)
			}
			if code, v, err := get(newClient(1), proxyURL(t, p, "web"), nil); err != nil || code != 200 || v != "v1" {
				t.Fatalf("after refused Route: %d %q %v, want 200 from v1", code, v, err)
			}
		})
	}
}
