package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// TestLoadGeneratorRouting: with a load token set, a request carrying it
// reaches the canary even at weight 0, through both front ends, is counted
// as generated, and the header never reaches the target; without the token,
// or with a wrong one, routing is as usual.
func TestLoadGeneratorRouting(t *testing.T) {
	stable := newBackend(t, "v1")
	canary := &backend{version: "v2", posts: map[string]int{}}
	canary.healthOK.Store(true)
	canary.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(loadHeader) != "" {
			http.Error(w, "the load token reached the target", http.StatusBadRequest)
			return
		}
		canary.serve(w, r)
	}))
	t.Cleanup(canary.Close)
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", stable), ver("v2", canary)))
	mustRoute(t, p, "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 100}})
	url := proxyURL(t, p, "web")
	c := newClient(2)
	eventually(t, 5*time.Second, "both versions healthy", func() bool {
		for _, h := range p.Health("web") {
			if !h.Healthy {
				return false
			}
		}
		return len(p.Health("web")) == 2
	})
	send := func(hdr map[string]string) string {
		t.Helper()
		code, v, err := get(c, url, hdr)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET with %v: %d %v", hdr, code, err)
		}
		return v
	}
	if v := send(map[string]string{loadHeader: "secret"}); v != "v1" {
		t.Fatalf("load header without a token set went to %s, want the stable v1", v)
	}
	if err := p.SetLoadToken("web", "secret"); err != nil {
		t.Fatal(err)
	}
	for _, fe := range []map[string]string{{loadHeader: "secret"}, {loadHeader: "secret", handoffHeader: "1"}} {
		for range 10 {
			if v := send(fe); v != "v2" {
				t.Fatalf("generated request (%v) went to %s, want the canary v2", fe, v)
			}
		}
	}
	// A reload builds a new compiled spec: the running generator's token stays.
	mustApply(t, p, testService("web", "v1", ver("v1", stable), ver("v2", canary)))
	if v := send(map[string]string{loadHeader: "secret"}); v != "v2" {
		t.Fatalf("after a reload the generator's request went to %s, want the canary v2", v)
	}
	if v := send(map[string]string{loadHeader: "guess"}); v != "v1" {
		t.Fatalf("a wrong token went to %s, want the stable v1", v)
	}
	if w := p.Window("web", "v2", time.Minute); w.Requests != 21 || w.Generated != 21 {
		t.Errorf("canary window = %d requests, %d generated; want 21, 21", w.Requests, w.Generated)
	}
	if w := p.Window("web", "v1", time.Minute); w.Generated != 0 {
		t.Errorf("stable window counts %d generated, want 0", w.Generated)
	}
	if err := p.SetLoadToken("web", ""); err != nil {
		t.Fatal(err)
	}
	if v := send(map[string]string{loadHeader: "secret"}); v != "v1" {
		t.Fatalf("after the generator stopped, its token went to %s, want v1", v)
	}
}
