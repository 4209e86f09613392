package builtin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// TestRouterMovesTraffic registers a version through the router's Targets
// side and routes to it: the next request reaches it.
func TestRouterMovesTraffic(t *testing.T) {
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return s
	}
	blue, green := backend("blue"), backend("green")
	p, err := proxy.New(proxy.Options{StickyKey: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	svc := &spec.Service{APIVersion: spec.APIVersion, Kind: spec.KindService, Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Listen: "127.0.0.1:0", Stable: "blue",
		Versions:    []spec.Version{{Name: "blue", Targets: []string{strings.TrimPrefix(blue.URL, "http://")}}},
		HealthCheck: spec.HealthCheck{Path: "/", Interval: spec.D(20 * time.Millisecond), Timeout: spec.D(10 * time.Millisecond)},
	}}
	svc.Default()
	if err := p.Apply(context.Background(), []*spec.Service{svc}); err != nil {
		t.Fatal(err)
	}
	r := New(p)
	if err := r.SetVersion("web", "green", []string{strings.TrimPrefix(green.URL, "http://")}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + p.Addr("web").String()
	get := func() string {
		res, err := http.Get(url)
		if err != nil {
			return err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	// Green is routable once its health check passed.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		err := r.Route(context.Background(), "web", rollout.Routing{Stable: "green", Weights: rollout.Weights{"green": 100}})
		return err == nil && get() == "green"
	}, "GET to answer green after Route(green 100)")
	if err := r.RemoveVersion("web", "blue"); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "green" {
		t.Fatalf("after RemoveVersion(blue): %q, want green", got)
	}
}
