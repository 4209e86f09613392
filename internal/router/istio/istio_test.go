package istio_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/istio"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv/kubeenv"
)

var kube = &kubeenv.Shared{
	CRDs: func(t testing.TB) []string { return []string{kubeenv.IstioCRDs(t)} },
}

func TestMain(m *testing.M) { os.Exit(kube.Run(m)) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	ns string
	c  client.WithWatch
}

func newEnv(t *testing.T) env {
	k := kube.Get(t)
	c, err := client.NewWithWatch(k.Config, client.Options{Scheme: runtime.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return env{ns: k.Namespace(t), c: c}
}

// create makes an object of kind from JSON.
func (e env) create(t *testing.T, gvk schema.GroupVersionKind, name, specJSON string) {
	t.Helper()
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(gvk)
	o.SetNamespace(e.ns)
	o.SetName(name)
	var sp map[string]any
	if err := json.Unmarshal([]byte(specJSON), &sp); err != nil {
		t.Fatal(err)
	}
	o.Object["spec"] = sp
	if err := e.c.Create(ctxT(t), o); err != nil {
		t.Fatalf("create %s %s: %v", gvk.Kind, name, err)
	}
}

func (e env) get(t *testing.T, gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	t.Helper()
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(gvk)
	if err := e.c.Get(ctxT(t), types.NamespacedName{Namespace: e.ns, Name: name}, o); err != nil {
		t.Fatalf("get %s %s: %v", gvk.Kind, name, err)
	}
	return o
}

// specJSON is an object's spec as compact JSON with sorted keys.
func specJSON(t *testing.T, o *unstructured.Unstructured, path ...string) string {
	t.Helper()
	v, _, err := unstructured.NestedFieldNoCopy(o.Object, append([]string{"spec"}, path...)...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// objects are a user's VirtualService (a docs route to another host, then
// the web route) and DestinationRule (with a subset and a policy of the
// user's).
func (e env) objects(t *testing.T) {
	e.create(t, istio.VirtualServiceKind, "web", `{"hosts":["web"],"http":[
		{"name":"docs","match":[{"uri":{"prefix":"/docs"}}],"route":[{"destination":{"host":"docs"}}]},
		{"name":"primary","match":[{"uri":{"prefix":"/"}}],"retries":{"attempts":2},"route":[{"destination":{"host":"web","port":{"number":8080}}}]}]}`)
	e.create(t, istio.DestinationRuleKind, "web", `{"host":"web","trafficPolicy":{"connectionPool":{"tcp":{"maxConnections":100}}},
		"subsets":[{"name":"legacy","labels":{"version":"old"}}]}`)
}

func (e env) target(rules ...spec.Rule) istio.Target {
	return istio.Target{
		Namespace: e.ns, VirtualService: "web", DestinationRule: "web", Service: "web", Rules: rules,
		Slots: map[string]string{"v1": istio.SlotA, "v2": istio.SlotB},
	}
}

const docsRoute = `{"match":[{"uri":{"prefix":"/docs"}}],"name":"docs","route":[{"destination":{"host":"docs"}}]}`

func TestRouteWeights(t *testing.T) {
	e := newEnv(t)
	e.objects(t)
	r := istio.New(e.c, istio.Options{})
	r.Set("web", e.target())
	for _, tc := range []struct {
		name   string
		v1, v2 int
	}{
		{"all stable", 100, 0}, {"canary 5", 95, 5}, {"half", 50, 50}, {"all canary", 0, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": tc.v1, "v2": tc.v2}}
			if err := r.Route(ctxT(t), "web", rt); err != nil {
				t.Fatalf("Route: %v", err)
			}
			vs := e.get(t, istio.VirtualServiceKind, "web")
			want := `[` + docsRoute + `,{"match":[{"uri":{"prefix":"/"}}],"name":"primary","retries":{"attempts":2},"route":[` +
				`{"destination":{"host":"web","port":{"number":8080},"subset":"switchyard-a"},"weight":` + itoa(tc.v1) + `},` +
				`{"destination":{"host":"web","port":{"number":8080},"subset":"switchyard-b"},"weight":` + itoa(tc.v2) + `}]}]`
			if got := specJSON(t, vs, "http"); got != want {
				t.Errorf("stored http =\n%s\nwant\n%s", got, want)
			}
			dr := e.get(t, istio.DestinationRuleKind, "web")
			wantDR := `{"host":"web","subsets":[{"labels":{"version":"old"},"name":"legacy"},` +
				`{"labels":{"switchyard.dev/slot":"a"},"name":"switchyard-a"},{"labels":{"switchyard.dev/slot":"b"},"name":"switchyard-b"}],` +
				`"trafficPolicy":{"connectionPool":{"tcp":{"maxConnections":100}}}}`
			if got := specJSON(t, dr); got != wantDR {
				t.Errorf("stored DestinationRule spec =\n%s\nwant\n%s", got, wantDR)
			}
			if err := r.Route(ctxT(t), "web", rt); err != nil {
				t.Fatalf("second Route: %v", err)
			}
			if v := e.get(t, istio.VirtualServiceKind, "web").GetResourceVersion(); v != vs.GetResourceVersion() {
				t.Errorf("second Route wrote the VirtualService: %s -> %s", vs.GetResourceVersion(), v)
			}
			if v := e.get(t, istio.DestinationRuleKind, "web").GetResourceVersion(); v != dr.GetResourceVersion() {
				t.Errorf("second Route wrote the DestinationRule: %s -> %s", dr.GetResourceVersion(), v)
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestRouteHeaderRule(t *testing.T) {
	e := newEnv(t)
	e.objects(t)
	r := istio.New(e.c, istio.Options{})
	r.Set("web", e.target(
		spec.Rule{Header: &spec.Match{Name: "X-Canary", Value: "true"}, To: spec.RoleCanary},
		spec.Rule{Cookie: &spec.Match{Name: "beta", Value: "1"}, To: spec.RoleCanary},
	))
	rt := rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 100, "v2": 0}}
	if err := r.Route(ctxT(t), "web", rt); err != nil {
		t.Fatalf("Route: %v", err)
	}
	vs := e.get(t, istio.VirtualServiceKind, "web")
	toA := `"route":[{"destination":{"host":"web","port":{"number":8080},"subset":"switchyard-a"},"weight":100}]`
	toB := `"route":[{"destination":{"host":"web","port":{"number":8080},"subset":"switchyard-b"},"weight":100}]`
	want := `[` + docsRoute + `,` +
		`{"match":[{"headers":{"x-canary":{"exact":"true"}},"uri":{"prefix":"/"}},{"headers":{"x-canary":{"exact":"always"}},"uri":{"prefix":"/"}}],"name":"switchyard-0-canary",` + toB + `},` +
		`{"match":[{"headers":{"x-canary":{"exact":"never"}},"uri":{"prefix":"/"}}],"name":"switchyard-0-stable",` + toA + `},` +
		`{"match":[{"headers":{"cookie":{"regex":"^(.*?;\\s*)?beta=1(;.*)?$"}},"uri":{"prefix":"/"}},{"headers":{"cookie":{"regex":"^(.*?;\\s*)?beta=always(;.*)?$"}},"uri":{"prefix":"/"}}],"name":"switchyard-1-canary",` + toB + `},` +
		`{"match":[{"headers":{"cookie":{"regex":"^(.*?;\\s*)?beta=never(;.*)?$"}},"uri":{"prefix":"/"}}],"name":"switchyard-1-stable",` + toA + `},` +
		`{"match":[{"uri":{"prefix":"/"}}],"name":"primary","retries":{"attempts":2},"route":[` +
		`{"destination":{"host":"web","port":{"number":8080},"subset":"switchyard-a"},"weight":100},` +
		`{"destination":{"host":"web","port":{"number":8080},"subset":"switchyard-b"},"weight":0}]}]`
	if got := specJSON(t, vs, "http"); got != want {
		t.Errorf("stored http =\n%s\nwant\n%s", got, want)
	}
	if err := r.Route(ctxT(t), "web", rt); err != nil {
		t.Fatalf("second Route: %v", err)
	}
	if v := e.get(t, istio.VirtualServiceKind, "web").GetResourceVersion(); v != vs.GetResourceVersion() {
		t.Errorf("second Route wrote: %s -> %s", vs.GetResourceVersion(), v)
	}
	// Promoted: the header routes go.
	if err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v2", Weights: rollout.Weights{"v2": 100}}); err != nil {
		t.Fatalf("Route after promotion: %v", err)
	}
	got := specJSON(t, e.get(t, istio.VirtualServiceKind, "web"), "http")
	if strings.Contains(got, "switchyard-0") || !strings.Contains(got, `"subset":"switchyard-b"},"weight":100`) {
		t.Errorf("stored http after promotion = %s", got)
	}
}

func TestNamedRoutes(t *testing.T) {
	// With virtualService.routes, only the named routes are the router's,
	// even when another route sends to the service too.
	e := newEnv(t)
	e.create(t, istio.VirtualServiceKind, "web", `{"hosts":["web"],"http":[
		{"name":"pinned","match":[{"uri":{"prefix":"/admin"}}],"route":[{"destination":{"host":"web.`+e.ns+`.svc.cluster.local"}}]},
		{"name":"main","route":[{"destination":{"host":"web.`+e.ns+`.svc.cluster.local"}}]}]}`)
	// The user already has switchyard-a, with a policy of theirs and
	// stale labels: the labels become the router's, the policy stays.
	e.create(t, istio.DestinationRuleKind, "web", `{"host":"web","subsets":[{"name":"switchyard-a","labels":{"old":"x"},"trafficPolicy":{"loadBalancer":{"simple":"LEAST_REQUEST"}}}]}`)
	r := istio.New(e.c, istio.Options{})
	tg := e.target()
	tg.Routes = []string{"main"}
	tg.SubsetLabels = map[string]string{"switchyard.dev/rollout": "web"}
	r.Set("web", tg)
	if err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 80, "v2": 20}}); err != nil {
		t.Fatalf("Route: %v", err)
	}
	host := "web." + e.ns + ".svc.cluster.local"
	want := `[{"match":[{"uri":{"prefix":"/admin"}}],"name":"pinned","route":[{"destination":{"host":"` + host + `"}}]},` +
		`{"name":"main","route":[{"destination":{"host":"` + host + `","subset":"switchyard-a"},"weight":80},{"destination":{"host":"` + host + `","subset":"switchyard-b"},"weight":20}]}]`
	if got := specJSON(t, e.get(t, istio.VirtualServiceKind, "web"), "http"); got != want {
		t.Errorf("stored http =\n%s\nwant\n%s", got, want)
	}
	wantDR := `[{"labels":{"switchyard.dev/rollout":"web","switchyard.dev/slot":"a"},"name":"switchyard-a","trafficPolicy":{"loadBalancer":{"simple":"LEAST_REQUEST"}}},` +
		`{"labels":{"switchyard.dev/rollout":"web","switchyard.dev/slot":"b"},"name":"switchyard-b"}]`
	if got := specJSON(t, e.get(t, istio.DestinationRuleKind, "web"), "subsets"); got != wantDR {
		t.Errorf("stored subsets =\n%s\nwant\n%s", got, wantDR)
	}
	tg.Routes = []string{"nope"}
	r.Set("web", tg)
	err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 100}})
	if !errors.Is(err, istio.ErrMalformed) || !strings.Contains(err.Error(), `VirtualService `+e.ns+`/web: has no HTTP route named "nope"`) {
		t.Errorf("unknown route: %v", err)
	}
}

func TestServerValidates(t *testing.T) {
	e := newEnv(t)
	e.objects(t)
	vs := e.get(t, istio.VirtualServiceKind, "web")
	// The schema is the API server's: a weight that is not an integer is
	// refused there.
	bad := vs.DeepCopy()
	routes, _, _ := unstructured.NestedSlice(bad.Object, "spec", "http")
	routes[1].(map[string]any)["route"].([]any)[0].(map[string]any)["weight"] = "ten"
	_ = unstructured.SetNestedSlice(bad.Object, routes, "spec", "http")
	if err := e.c.Update(ctxT(t), bad); !apierrors.IsInvalid(err) {
		t.Fatalf("update with weight \"ten\": %v, want Invalid from the API server", err)
	}
	// Istio's CRD has no minimum on a route weight (its webhook checks
	// that, and no webhook runs here): -1 is stored. So the router checks
	// weights itself before writing.
	neg := vs.DeepCopy()
	routes, _, _ = unstructured.NestedSlice(neg.Object, "spec", "http")
	routes[1].(map[string]any)["route"].([]any)[0].(map[string]any)["weight"] = int64(-1)
	_ = unstructured.SetNestedSlice(neg.Object, routes, "spec", "http")
	if err := e.c.Update(ctxT(t), neg); err != nil {
		t.Fatalf("update with weight -1: %v (the CRD has no minimum; if it has one now, this test's note is out of date)", err)
	}
	r := istio.New(e.c, istio.Options{})
	r.Set("web", e.target())
	err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": -20, "v2": 120}})
	if !errors.Is(err, istio.ErrMalformed) || !strings.Contains(err.Error(), "must be 0-100") {
		t.Fatalf("Route with weight 120: %v, want ErrMalformed", err)
	}
}

func TestConcurrentChangeSurvives(t *testing.T) {
	e := newEnv(t)
	e.objects(t)
	var updates atomic.Int32
	c := interceptor.NewClient(e.c, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if obj.GetObjectKind().GroupVersionKind().Kind == "VirtualService" && updates.Add(1) == 1 {
				// Someone else adds a label and a route in between.
				other := e.get(t, istio.VirtualServiceKind, "web")
				other.SetLabels(map[string]string{"team": "shop"})
				routes, _, _ := unstructured.NestedSlice(other.Object, "spec", "http")
				routes = append(routes, map[string]any{"name": "blog", "route": []any{map[string]any{"destination": map[string]any{"host": "blog"}}}})
				_ = unstructured.SetNestedSlice(other.Object, routes, "spec", "http")
				if err := e.c.Update(ctx, other); err != nil {
					t.Errorf("concurrent update: %v", err)
				}
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	r := istio.New(c, istio.Options{})
	r.Set("web", e.target())
	if err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 90, "v2": 10}}); err != nil {
		t.Fatalf("Route: %v", err)
	}
	if n := updates.Load(); n != 2 {
		t.Errorf("Route updated the VirtualService %d times, want 2 (a conflict, then a retry)", n)
	}
	vs := e.get(t, istio.VirtualServiceKind, "web")
	if vs.GetLabels()["team"] != "shop" {
		t.Errorf("labels = %v, want the concurrent team=shop kept", vs.GetLabels())
	}
	got := specJSON(t, vs, "http")
	if !strings.Contains(got, `"name":"blog"`) || !strings.Contains(got, `"subset":"switchyard-b"},"weight":10`) {
		t.Errorf("stored http = %s, want the blog route kept and weight 10 on switchyard-b", got)
	}
}

func TestConflictNeverOverwrites(t *testing.T) {
	e := newEnv(t)
	e.objects(t)
	var n atomic.Int32
	c := interceptor.NewClient(e.c, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			other := e.get(t, istio.DestinationRuleKind, "web")
			other.SetLabels(map[string]string{"writes": itoa(int(n.Add(1)))})
			if err := e.c.Update(ctx, other); err != nil {
				t.Errorf("concurrent update: %v", err)
			}
			return c.Update(ctx, obj, opts...)
		},
	})
	r := istio.New(c, istio.Options{})
	r.Set("web", e.target())
	err := r.Route(ctxT(t), "web", rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 100}})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "DestinationRule "+e.ns+"/web") {
		t.Fatalf("Route: %v, want a conflict naming the DestinationRule", err)
	}
	dr := e.get(t, istio.DestinationRuleKind, "web")
	if got := specJSON(t, dr, "subsets"); got != `[{"labels":{"version":"old"},"name":"legacy"}]` {
		t.Errorf("subsets = %s, want the user's unchanged", got)
	}
	if want := itoa(istio.Attempts); dr.GetLabels()["writes"] != want {
		t.Errorf("label writes = %q, want %s", dr.GetLabels()["writes"], want)
	}
}

func TestMissing(t *testing.T) {
	e := newEnv(t)
	r := istio.New(e.c, istio.Options{})
	r.Set("web", e.target())
	rt := rollout.Routing{Stable: "v1", Weights: rollout.Weights{"v1": 100}}
	err := r.Route(ctxT(t), "web", rt)
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `route "web": DestinationRule `+e.ns+`/web does not exist (spec.trafficRouter.istio.destinationRule.name)`) {
		t.Errorf("missing DestinationRule: %v", err)
	}
	e.create(t, istio.DestinationRuleKind, "web", `{"host":"web"}`)
	err = r.Route(ctxT(t), "web", rt)
	if !apierrors.IsNotFound(err) || !strings.Contains(err.Error(), `VirtualService `+e.ns+`/web does not exist`) {
		t.Errorf("missing VirtualService: %v", err)
	}
	e.create(t, istio.VirtualServiceKind, "web", `{"hosts":["web"],"http":[{"route":[{"destination":{"host":"shop"}}]}]}`)
	err = r.Route(ctxT(t), "web", rt)
	if !errors.Is(err, istio.ErrMalformed) || !strings.Contains(err.Error(), `no HTTP route has a destination to host "web"`) {
		t.Errorf("VirtualService without the service: %v", err)
	}
}
