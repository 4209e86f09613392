package gatewayapi_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/gatewayapi"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv/kubeenv"
)

var kube = &kubeenv.Shared{
	CRDs: func(t testing.TB) []string { return []string{kubeenv.GatewayAPICRDs(t)} },
}

func TestMain(m *testing.M) { os.Exit(kube.Run(m)) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is one test's namespace and a client that knows the Gateway API.
type env struct {
	ns string
	c  client.WithWatch
}

func newEnv(t *testing.T) env {
	k := kube.Get(t)
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := gatewayv1.Install(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(k.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return env{ns: k.Namespace(t), c: c}
}

func ptr[T any](v T) *T { return &v }

// httpRoute is a user's HTTPRoute: one rule to another Service (not
// ours), then one to the Service "web" on port 8080.
func (e env) httpRoute(t *testing.T, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	r := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gw"}}},
			Rules: []gatewayv1.HTTPRouteRule{
				{
					Name: ptr(gatewayv1.SectionName("docs")),
					Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
						Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/docs")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{backend("docs", 80, nil)},
				},
				{
					Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
						Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{backend("web", 8080, nil)},
				},
			},
		},
	}
	if err := e.c.Create(ctxT(t), r); err != nil {
		t.Fatalf("create HTTPRoute: %v", err)
	}
	return r
}

func backend(name string, port int32, weight *int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{
			Name: gatewayv1.ObjectName(name), Port: ptr(gatewayv1.PortNumber(port)),
		},
		Weight: weight,
	}}
}

func (e env) get(t *testing.T, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	var r gatewayv1.HTTPRoute
	if err := e.c.Get(ctxT(t), types.NamespacedName{Namespace: e.ns, Name: name}, &r); err != nil {
		t.Fatalf("get HTTPRoute: %v", err)
	}
	return &r
}

func (e env) target(name string, rules ...spec.Rule) gatewayapi.Target {
	return gatewayapi.Target{
		Namespace: e.ns, HTTPRoute: name, Service: "web", Rules: rules,
		Slots: map[string]string{"v1": gatewayapi.SlotA, "v2": gatewayapi.SlotB},
	}
}

// refs renders backendRefs as "name:port=weight" for comparison.
func refs(rs []gatewayv1.HTTPBackendRef) string {
	var out []string
	for _, r := range rs {
		s := string(r.Name)
		if r.Port != nil {
			s += ":" + strconv.Itoa(int(*r.Port))
		}
		if r.Weight != nil {
			s += "=" + strconv.Itoa(int(*r.Weight))
		}
		if r.Group == nil || *r.Group != "" || r.Kind == nil || *r.Kind != "Service" {
			s += "(not a core Service)"
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func TestRouteWeights(t *testing.T) {
	e := newEnv(t)
	e.httpRoute(t, "web")
	r := gatewayapi.New(e.c, gatewayapi.Options{})
	r.Set("web", e.target("web"))
	for _, tc := range []struct {
		name   string
		v1, v2 int
		want   string
	}{
		{"all stable", 100, 0, "web-a:8080=100,web-b:8080=0"},
		{"canary 5", 95, 5, "web-a:8080=95,web-b:8080=5"},
		{"half", 50, 50, "web-a:8080=50,web-b:8080=50"},
		{"all canary", 0, 100, "web-a:8080=0,web-b:8080=100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": tc.v1, "v2": tc.v2}}
			if err := r.Route(ctxT(t), "web", rt); err != nil {
				t.Fatalf("Route: %v", err)
			}
			got := e.get(t, "web")
			if n := len(got.Spec.Rules); n != 2 {
				t.Fatalf("stored %d rules, want 2: %+v", n, got.Spec.Rules)
			}
			if s := refs(got.Spec.Rules[1].BackendRefs); s != tc.want {
				t.Errorf("stored backendRefs = %s, want %s", s, tc.want)
			}
			if s := refs(got.Spec.Rules[0].BackendRefs); s != "docs:80=1" {
				t.Errorf("the user's rule's backendRefs = %s, want docs:80=1 (untouched)", s)
			}
			// Idempotent: the same routing again writes nothing.
			if err := r.Route(ctxT(t), "web", rt); err != nil {
				t.Fatalf("second Route: %v", err)
			}
			if again := e.get(t, "web"); again.ResourceVersion != got.ResourceVersion {
				t.Errorf("second Route wrote: resourceVersion %s -> %s", got.ResourceVersion, again.ResourceVersion)
			}
		})
	}
}

func TestRouteOneSlot(t *testing.T) {
	// Before the first rollout only slot a holds a version: slot b's
	// Service may not exist, so it gets no backendRef.
	e := newEnv(t)
	e.httpRoute(t, "web")
	r := gatewayapi.New(e.c, gatewayapi.Options{})
	tg := e.target("web")
	tg.Slots = map[string]string{"v1": gatewayapi.SlotA}
	r.Set("web", tg)
	if err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 100}}); err != nil {
		t.Fatalf("Route: %v", err)
	}
	if s := refs(e.get(t, "web").Spec.Rules[1].BackendRefs); s != "web-a:8080=100" {
		t.Errorf("stored backendRefs = %s, want web-a:8080=100", s)
	}
}

func TestRouteHeaderRule(t *testing.T) {
	e := newEnv(t)
	e.httpRoute(t, "web")
	r := gatewayapi.New(e.c, gatewayapi.Options{})
	r.Set("web", e.target("web", spec.Rule{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: spec.RoleCanary}))
	rt := rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 100, "v2": 0}}
	if err := r.Route(ctxT(t), "web", rt); err != nil {
		t.Fatalf("Route: %v", err)
	}
	got := e.get(t, "web")
	var names []string
	for _, rule := range got.Spec.Rules {
		n := "(unnamed)"
		if rule.Name != nil {
			n = string(*rule.Name)
		}
		names = append(names, n)
	}
	if s := strings.Join(names, ","); s != "docs,switchyard-0-canary,switchyard-0-stable,(unnamed)" {
		t.Fatalf("stored rules = %s, want docs,switchyard-0-canary,switchyard-0-stable,(unnamed)", s)
	}
	canary, stable := got.Spec.Rules[1], got.Spec.Rules[2]
	if s := refs(canary.BackendRefs); s != "web-b:8080=1" {
		t.Errorf("canary rule's backendRefs = %s, want web-b:8080=1", s)
	}
	if s := refs(stable.BackendRefs); s != "web-a:8080=1" {
		t.Errorf("stable rule's backendRefs = %s, want web-a:8080=1", s)
	}
	if s := matches(canary.Matches); s != "PathPrefix / x-canary=true|PathPrefix / x-canary=always" {
		t.Errorf("canary rule's matches = %s", s)
	}
	if s := matches(stable.Matches); s != "PathPrefix / x-canary=never" {
		t.Errorf("stable rule's matches = %s", s)
	}
	if s := refs(got.Spec.Rules[3].BackendRefs); s != "web-a:8080=100,web-b:8080=0" {
		t.Errorf("weighted rule's backendRefs = %s", s)
	}
	if err := r.Route(ctxT(t), "web", rt); err != nil {
		t.Fatalf("second Route: %v", err)
	}
	if again := e.get(t, "web"); again.ResourceVersion != got.ResourceVersion {
		t.Errorf("second Route wrote: resourceVersion %s -> %s", got.ResourceVersion, again.ResourceVersion)
	}

	// The rollout ends: no canary, no header rules.
	if err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v2", Weights: rollout.Weights{"v2": 100}}); err != nil {
		t.Fatalf("Route after promotion: %v", err)
	}
	got = e.get(t, "web")
	if n := len(got.Spec.Rules); n != 2 {
		t.Fatalf("stored %d rules after promotion, want 2", n)
	}
	if s := refs(got.Spec.Rules[1].BackendRefs); s != "web-a:8080=0,web-b:8080=100" {
		t.Errorf("backendRefs after promotion = %s", s)
	}
}

func matches(ms []gatewayv1.HTTPRouteMatch) string {
	var out []string
	for _, m := range ms {
		var parts []string
		if m.Path != nil {
			parts = append(parts, string(*m.Path.Type)+" "+*m.Path.Value)
		}
		for _, h := range m.Headers {
			if h.Type == nil || *h.Type != gatewayv1.HeaderMatchExact {
				parts = append(parts, "(not exact)")
			}
			parts = append(parts, string(h.Name)+"="+h.Value)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return strings.Join(out, "|")
}

func TestServerRejectsBadWeight(t *testing.T) {
	e := newEnv(t)
	rt := e.httpRoute(t, "web")
	// The schema is the API server's: a negative weight is refused there.
	bad := rt.DeepCopy()
	bad.Spec.Rules[1].BackendRefs[0].Weight = ptr(int32(-1))
	err := e.c.Update(ctxT(t), bad)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("update with weight -1: %v, want Invalid from the API server", err)
	}
	// And the router refuses weights the machine cannot make, naming the
	// object, before writing.
	r := gatewayapi.New(e.c, gatewayapi.Options{})
	r.Set("web", e.target("web"))
	err = r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": -20, "v2": 120}})
	if !errors.Is(err, gatewayapi.ErrMalformed) || !strings.Contains(err.Error(), "HTTPRoute "+e.ns+"/web") {
		t.Fatalf("Route with weight 120: %v, want ErrMalformed naming the HTTPRoute", err)
	}
}

func TestConcurrentChangeSurvives(t *testing.T) {
	e := newEnv(t)
	e.httpRoute(t, "web")
	// Between the router's read and its write, someone else adds a label
	// and a rule: the write must conflict, and the retry keep both.
	var patches atomic.Int32
	c := interceptor.NewClient(e.c, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			if patches.Add(1) == 1 {
				other := e.get(t, "web")
				other.Labels = map[string]string{"team": "shop"}
				other.Spec.Rules = append(other.Spec.Rules, gatewayv1.HTTPRouteRule{
					Name:        ptr(gatewayv1.SectionName("blog")),
					Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/blog")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{backend("blog", 80, nil)},
				})
				if err := e.c.Update(ctx, other); err != nil {
					t.Errorf("concurrent update: %v", err)
				}
			}
			return c.Patch(ctx, obj, p, opts...)
		},
	})
	r := gatewayapi.New(c, gatewayapi.Options{})
	r.Set("web", e.target("web"))
	if err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 90, "v2": 10}}); err != nil {
		t.Fatalf("Route: %v", err)
	}
	if n := patches.Load(); n != 2 {
		t.Errorf("Route patched %d times, want 2 (a conflict, then a retry)", n)
	}
	got := e.get(t, "web")
	if got.Labels["team"] != "shop" {
		t.Errorf("labels = %v, want the concurrent team=shop kept", got.Labels)
	}
	if n := len(got.Spec.Rules); n != 3 || got.Spec.Rules[2].Name == nil || *got.Spec.Rules[2].Name != "blog" {
		t.Fatalf("rules = %+v, want the concurrent rule blog kept", got.Spec.Rules)
	}
	if s := refs(got.Spec.Rules[1].BackendRefs); s != "web-a:8080=90,web-b:8080=10" {
		t.Errorf("backendRefs = %s, want web-a:8080=90,web-b:8080=10", s)
	}
}

func TestConflictNeverOverwrites(t *testing.T) {
	// Every write of the router meets a newer object: it gives up with an
	// error naming the object, and what the other writer stored stays.
	e := newEnv(t)
	e.httpRoute(t, "web")
	var n atomic.Int32
	c := interceptor.NewClient(e.c, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			other := e.get(t, "web")
			other.Labels = map[string]string{"writes": strconv.Itoa(int(n.Add(1)))}
			if err := e.c.Update(ctx, other); err != nil {
				t.Errorf("concurrent update: %v", err)
			}
			return c.Patch(ctx, obj, p, opts...)
		},
	})
	r := gatewayapi.New(c, gatewayapi.Options{})
	r.Set("web", e.target("web"))
	err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 90, "v2": 10}})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "HTTPRoute "+e.ns+"/web") {
		t.Fatalf("Route: %v, want a conflict naming the HTTPRoute", err)
	}
	got := e.get(t, "web")
	if s := refs(got.Spec.Rules[1].BackendRefs); s != "web:8080=1" {
		t.Errorf("backendRefs = %s, want the user's web:8080=1 unchanged", s)
	}
	if want := strconv.Itoa(gatewayapi.Attempts); got.Labels["writes"] != want {
		t.Errorf("label writes = %q, want %s (one concurrent write per attempt)", got.Labels["writes"], want)
	}
}

func TestMissingOrMalformed(t *testing.T) {
	e := newEnv(t)
	r := gatewayapi.New(e.c, gatewayapi.Options{})
	rt := rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 100}}

	r.Set("web", e.target("missing"))
	err := r.Route(ctxT(t), "web", rt)
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `route "web": HTTPRoute `+e.ns+`/missing does not exist`) {
		t.Errorf("missing HTTPRoute: %v", err)
	}

	other := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "other"},
		Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{{
			BackendRefs: []gatewayv1.HTTPBackendRef{backend("shop", 80, nil)},
		}}},
	}
	if err := e.c.Create(ctxT(t), other); err != nil {
		t.Fatal(err)
	}
	r.Set("web", e.target("other"))
	err = r.Route(ctxT(t), "web", rt)
	if !errors.Is(err, gatewayapi.ErrMalformed) || !strings.Contains(err.Error(), `HTTPRoute `+e.ns+`/other: no rule has a backendRef to Service "web"`) {
		t.Errorf("HTTPRoute without the service: %v", err)
	}

	err = r.Route(ctxT(t), "unknown", rt)
	if !errors.Is(err, gatewayapi.ErrUnknownService) {
		t.Errorf("unknown service: %v", err)
	}
}
