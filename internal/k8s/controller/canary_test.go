package controller

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/istio"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

func ptrTo[T any](v T) *T { return &v }

// createGatewayCanary makes the Service web, an HTTPRoute web whose one
// rule sends to it, and a Rollout web of image with trafficRouter.gatewayAPI,
// steps 20% and 60% with short pauses, and the x-canary header rule.
func (e *env) createGatewayCanary(image string) {
	e.t.Helper()
	pause := &spec.Pause{Duration: spec.D(1500 * time.Millisecond)}
	e.createGatewayRollout(image, []spec.Step{{SetWeight: ptrTo(20)}, {Pause: pause}, {SetWeight: ptrTo(60)}, {Pause: pause}}, nil)
}

// createGatewayRollout is createGatewayCanary with its steps and analysis.
func (e *env) createGatewayRollout(image string, steps []spec.Step, analysis *spec.Analysis) {
	e.t.Helper()
	ctx := ctxT(e.t)
	e.createService()
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web", Labels: map[string]string{"team": "shop"}},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gw"}}},
			Rules: []gatewayv1.HTTPRouteRule{{
				Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{
					Type: ptrTo(gatewayv1.PathMatchPathPrefix), Value: ptrTo("/")}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: "web", Port: ptrTo(gatewayv1.PortNumber(80))},
				}}},
			}},
		},
	}
	if err := e.c.Create(ctx, route); err != nil {
		e.t.Fatalf("create HTTPRoute: %v", err)
	}
	replicas := int32(2)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: v1alpha1.RolloutSpec{
			Replicas: &replicas, Template: template(image),
			Service:       v1alpha1.ServiceRef{Name: "web", Port: 80},
			TrafficRouter: v1alpha1.TrafficRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{HTTPRoute: "web"}},
			Routing:       spec.Routing{Rules: []spec.Rule{{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: "canary"}}},
			Strategy:      spec.Strategy{Canary: &spec.Canary{Steps: steps}},
			Analysis:      analysis,
		},
	}
	if err := e.c.Create(ctx, ro); err != nil {
		e.t.Fatalf("create rollout: %v", err)
	}
}

// routeWeights renders the HTTPRoute's rules as "name:refs", refs as
// "service=weight": the header rules' and the weighted rule's.
func (e *env) routeWeights() []string {
	e.t.Helper()
	var r gatewayv1.HTTPRoute
	if err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: "web"}, &r); err != nil {
		e.t.Fatalf("get HTTPRoute: %v", err)
	}
	if r.Labels["team"] != "shop" {
		e.t.Fatalf("the HTTPRoute lost the user's label: %v", r.Labels)
	}
	var out []string
	for _, rule := range r.Spec.Rules {
		name := ""
		if rule.Name != nil {
			name = string(*rule.Name)
		}
		var refs []string
		for _, b := range rule.BackendRefs {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			refs = append(refs, fmt.Sprintf("%s=%d", b.Name, w))
		}
		out = append(out, name+":"+strings.Join(refs, ","))
	}
	return out
}

// TestCanaryByHTTPRoute: a canary through Gateway API walks the
// HTTPRoute's weights step by step (20%, 60%, then all) between the slots'
// Services, which the controller creates with the Service's port, with the
// x-canary header rule ahead while the canary runs; the user's label and
// the rule's match stay. Deleting the Rollout mid-way through the next
// canary restores all traffic to stable and drops the header rules.
func TestCanaryByHTTPRoute(t *testing.T) {
	e := newEnv(t)
	e.startController(false)
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.createGatewayCanary("web:1")
	e.waitFor("stable "+r1+" with all traffic to web-a", func() bool {
		ro, _ := e.rollout()
		return ro.Status.StableRevision == r1 && slices.Equal(e.routeWeights(), []string{":web-a=100"})
	})
	for _, s := range slotNames {
		var svc corev1.Service
		if err := e.c.Get(ctxT(t), types.NamespacedName{Namespace: e.ns, Name: SlotServiceName("web", s)}, &svc); err != nil {
			t.Fatalf("slot service %s: %v", s, err)
		}
		if svc.Spec.Selector[v1alpha1.LabelSlot] != s || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 {
			t.Fatalf("slot service %s: selector %v ports %+v", s, svc.Spec.Selector, svc.Spec.Ports)
		}
	}

	// Record every distinct state of the HTTPRoute while the canary runs.
	var seen [][]string
	record := func() {
		w := e.routeWeights()
		if len(seen) == 0 || !slices.Equal(seen[len(seen)-1], w) {
			seen = append(seen, w)
		}
	}
	e.setImage("web:2")
	e.waitFor("the canary of "+r2+" promoted", func() bool {
		record()
		ro, st := e.rollout()
		return ro.Status.StableRevision == r2 && st.Rollout == nil
	})
	// Once the rollout is over the header rules go; the previous slot keeps
	// a backendRef at 0 while it is kept for scaleDownDelay.
	e.waitFor("all traffic to web-b", func() bool {
		record()
		w := e.routeWeights()
		return len(w) == 1 && (w[0] == ":web-a=0,web-b=100" || w[0] == ":web-b=100")
	})
	header := []string{"switchyard-0-canary:web-b=1", "switchyard-0-stable:web-a=1"}
	want := [][]string{
		{":web-a=100"},
		append(slices.Clone(header), ":web-a=80,web-b=20"),
		append(slices.Clone(header), ":web-a=40,web-b=60"),
	}
	for _, w := range want {
		if !slices.ContainsFunc(seen, func(s []string) bool { return slices.Equal(s, w) }) {
			t.Fatalf("the HTTPRoute never was %v; it went through %v", w, seen)
		}
	}
	for _, s := range seen {
		if len(s) != 1 && len(s) != 3 {
			t.Fatalf("unexpected HTTPRoute state %v (all: %v)", s, seen)
		}
	}

	// The next canary goes to slot a; delete the Rollout at 20%.
	r3 := rev(t, "web:3")
	e.setImage("web:3")
	e.waitFor("the canary of "+r3+" at 20% through web-a", func() bool {
		w := e.routeWeights()
		return len(w) == 3 && w[2] == ":web-a=20,web-b=80"
	})
	ro, _ := e.rollout()
	if err := e.c.Delete(ctxT(t), ro); err != nil {
		t.Fatalf("delete rollout: %v", err)
	}
	e.waitFor("the Rollout to be gone", func() bool {
		var cur v1alpha1.Rollout
		return apierrors.IsNotFound(e.c.Get(ctxT(t), client.ObjectKeyFromObject(ro), &cur))
	})
	if w := e.routeWeights(); !slices.Equal(w, []string{":web-b=100"}) {
		t.Fatalf("HTTPRoute after deleting the Rollout mid-canary: %v, want all traffic to web-b (stable %s)", w, r2)
	}
}

// istioRoutes renders the VirtualService's HTTP routes as
// "name:subset=weight,...".
func (e *env) istioRoutes() []string {
	e.t.Helper()
	vs := &unstructured.Unstructured{}
	vs.SetGroupVersionKind(istio.VirtualServiceKind)
	if err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: "web"}, vs); err != nil {
		e.t.Fatalf("get VirtualService: %v", err)
	}
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	var out []string
	for _, r := range routes {
		m, _ := r.(map[string]any)
		name, _ := m["name"].(string)
		dests, _ := m["route"].([]any)
		var ds []string
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			subset, _, _ := unstructured.NestedString(dm, "destination", "subset")
			w, ok := dm["weight"]
			if !ok {
				w = int64(100)
			}
			ds = append(ds, fmt.Sprintf("%s=%v", subset, w))
		}
		out = append(out, name+":"+strings.Join(ds, ","))
	}
	return out
}

// TestCanaryByIstio: a canary through Istio walks the VirtualService's
// destination weights between the slots' DestinationRule subsets, with the
// x-canary route ahead while it runs; the subsets select the Rollout's
// slots, the user's subset stays, and the slots' pods carry the revision
// as Istio's canonical revision (destination_version in its metrics).
func TestCanaryByIstio(t *testing.T) {
	e := newEnv(t)
	e.startController(false)
	ctx := ctxT(t)
	e.createService()
	for _, o := range []struct {
		gvk  schema.GroupVersionKind
		spec string
	}{
		{istio.VirtualServiceKind, `{"hosts":["web"],"http":[{"name":"primary","match":[{"uri":{"prefix":"/"}}],"route":[{"destination":{"host":"web"}}]}]}`},
		{istio.DestinationRuleKind, `{"host":"web","subsets":[{"name":"legacy","labels":{"version":"old"}}]}`},
	} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(o.gvk)
		u.SetNamespace(e.ns)
		u.SetName("web")
		var sp map[string]any
		if err := json.Unmarshal([]byte(o.spec), &sp); err != nil {
			t.Fatal(err)
		}
		u.Object["spec"] = sp
		if err := e.c.Create(ctx, u); err != nil {
			t.Fatalf("create %s: %v", o.gvk.Kind, err)
		}
	}
	replicas := int32(2)
	pause := &spec.Pause{Duration: spec.D(1500 * time.Millisecond)}
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: v1alpha1.RolloutSpec{
			Replicas: &replicas, Template: template("web:1"),
			Service: v1alpha1.ServiceRef{Name: "web"},
			TrafficRouter: v1alpha1.TrafficRouter{Istio: &v1alpha1.IstioRouter{
				VirtualService:  v1alpha1.IstioVirtualService{Name: "web", Routes: []string{"primary"}},
				DestinationRule: v1alpha1.IstioDestinationRule{Name: "web"},
			}},
			Routing: spec.Routing{Rules: []spec.Rule{{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: "canary"}}},
			Strategy: spec.Strategy{Canary: &spec.Canary{Steps: []spec.Step{
				{SetWeight: ptrTo(20)}, {Pause: pause}, {SetWeight: ptrTo(60)}, {Pause: pause},
			}}},
		},
	}
	if err := e.c.Create(ctx, ro); err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.waitFor("stable "+r1+" with all traffic to switchyard-a", func() bool {
		cur, _ := e.rollout()
		return cur.Status.StableRevision == r1 && slices.Equal(e.istioRoutes(), []string{"primary:switchyard-a=100"})
	})
	var seen [][]string
	e.setImage("web:2")
	e.waitFor("the canary of "+r2+" promoted, all traffic to switchyard-b", func() bool {
		w := e.istioRoutes()
		if len(seen) == 0 || !slices.Equal(seen[len(seen)-1], w) {
			seen = append(seen, w)
		}
		cur, st := e.rollout()
		return cur.Status.StableRevision == r2 && st.Rollout == nil && len(w) == 1 &&
			(w[0] == "primary:switchyard-a=0,switchyard-b=100" || w[0] == "primary:switchyard-b=100")
	})
	header := []string{"switchyard-0-canary:switchyard-b=100", "switchyard-0-stable:switchyard-a=100"}
	for _, w := range [][]string{
		append(slices.Clone(header), "primary:switchyard-a=80,switchyard-b=20"),
		append(slices.Clone(header), "primary:switchyard-a=40,switchyard-b=60"),
	} {
		if !slices.ContainsFunc(seen, func(s []string) bool { return slices.Equal(s, w) }) {
			t.Fatalf("the VirtualService never was %v; it went through %v", w, seen)
		}
	}
	dr := &unstructured.Unstructured{}
	dr.SetGroupVersionKind(istio.DestinationRuleKind)
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: e.ns, Name: "web"}, dr); err != nil {
		t.Fatal(err)
	}
	subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	b, _ := json.Marshal(subsets)
	want := `[{"labels":{"version":"old"},"name":"legacy"},` +
		`{"labels":{"switchyard.dev/rollout":"web","switchyard.dev/slot":"a"},"name":"switchyard-a"},` +
		`{"labels":{"switchyard.dev/rollout":"web","switchyard.dev/slot":"b"},"name":"switchyard-b"}]`
	if string(b) != want {
		t.Fatalf("DestinationRule subsets %s, want %s", b, want)
	}
	if l := e.slot("b").Spec.Template.Labels[IstioRevisionLabel]; l != r2 {
		t.Fatalf("slot b's pods have %s=%q, want the revision %s", IstioRevisionLabel, l, r2)
	}
}

// exporter is the workload's metrics as the test decides them: every 100
// ms each revision in rates answers that many requests, a share of them
// with a 500. Prometheus scrapes it.
type exporter struct {
	reg   *prometheus.Registry
	total *prometheus.CounterVec
	dur   *prometheus.HistogramVec
	mu    sync.Mutex
	rates map[string]float64 // revision -> error share
}

func startExporter(t *testing.T) (*exporter, string) {
	x := &exporter{reg: prometheus.NewRegistry(), rates: map[string]float64{}}
	x.total = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "requests"}, []string{"version", "code"})
	x.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "latency", Buckets: prometheus.DefBuckets}, []string{"version"})
	x.reg.MustRegister(x.total, x.dur)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{})}
	go srv.Serve(ln)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			x.mu.Lock()
			for v, bad := range x.rates {
				x.total.WithLabelValues(v, "200").Add(10 * (1 - bad))
				x.total.WithLabelValues(v, "500").Add(10 * bad)
				for range 10 {
					x.dur.WithLabelValues(v).Observe(0.02)
				}
			}
			x.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); srv.Close() })
	return x, ln.Addr().String()
}

func (x *exporter) set(rev string, errorShare float64) {
	x.mu.Lock()
	x.rates[rev] = errorShare
	x.mu.Unlock()
}

// errorRateAnalysis checks the exporter's error rate of a revision through
// the Prometheus at address every second: above 1% twice rolls back.
func errorRateAnalysis(address string) *spec.Analysis {
	return &spec.Analysis{
		Interval: spec.D(time.Second), Threshold: 2,
		Metrics: []spec.Metric{{
			Name: "error-rate",
			Prometheus: &spec.PrometheusMetric{Address: address, Query: `(sum(rate(http_requests_total{version="{{ version }}",code=~"5.."}[5s])) or vector(0))` +
				` / sum(rate(http_requests_total{version="{{ version }}"}[5s]))`},
			ThresholdRange: spec.ThresholdRange{Max: ptrTo(0.01)},
		}},
	}
}

// TestCanaryPrometheusAnalysis: a canary through the HTTPRoute judged by a
// PromQL error rate over a real Prometheus that scrapes an exporter the
// test controls. A revision answering 20% errors is rolled back at its
// first weight (the HTTPRoute all on stable again, the header rules gone);
// the next, answering none, walks the steps and is promoted.
func TestCanaryPrometheusAnalysis(t *testing.T) {
	e := newEnv(t)
	x, addr := startExporter(t)
	prom := testenv.StartPrometheus(t, 500*time.Millisecond, addr)
	e.startControllerWith(Options{EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	r1, r2, r3 := rev(t, "web:1"), rev(t, "web:2"), rev(t, "web:3")
	x.set(r1, 0)
	x.set(r2, 0.2)
	x.set(r3, 0)
	pause := &spec.Pause{Duration: spec.D(4 * time.Second)}
	e.createGatewayRollout("web:1", []spec.Step{{SetWeight: ptrTo(20)}, {Pause: pause}, {SetWeight: ptrTo(60)}, {Pause: pause}}, errorRateAnalysis(prom.URL()))
	e.waitFor("stable "+r1, func() bool {
		ro, _ := e.rollout()
		return ro.Status.StableRevision == r1 && slices.Equal(e.routeWeights(), []string{":web-a=100"})
	})

	e.setImage("web:2")
	e.waitFor("the bad canary "+r2+" rolled back", func() bool {
		_, st := e.rollout()
		return st.Last != nil && st.Last.Version == r2 && st.Last.Result == rollout.ResultRolledBack
	})
	e.waitFor("all traffic back on web-a", func() bool {
		w := e.routeWeights()
		return len(w) == 1 && (w[0] == ":web-a=100" || w[0] == ":web-a=100,web-b=0")
	})
	ro, st := e.rollout()
	if !strings.Contains(st.Last.Reason, "error-rate") {
		t.Fatalf("rollback reason %q does not name the check", st.Last.Reason)
	}
	if !strings.Contains(ro.Status.Message, "error-rate") {
		t.Fatalf("status message %q does not say which check rolled back", ro.Status.Message)
	}

	e.setImage("web:3")
	e.waitFor("the good canary "+r3+" promoted", func() bool {
		ro, st := e.rollout()
		return ro.Status.StableRevision == r3 && st.Rollout == nil && st.Last != nil && st.Last.Result == rollout.ResultPromoted
	})
}

// TestCanarySequentialJudge: the sequential judge on a cluster, reading
// per-second counters from a real Prometheus (spec.analysis.sequential.
// prometheus) that scrapes an exporter the test controls: a canary
// answering 30% errors while stable answers none is rolled back by the
// judge, long before its pause ends.
func TestCanarySequentialJudge(t *testing.T) {
	e := newEnv(t)
	x, addr := startExporter(t)
	prom := testenv.StartPrometheus(t, time.Second, addr)
	e.startControllerWith(Options{EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	x.set(r1, 0)
	x.set(r2, 0.3)
	e.createGatewayRollout("web:1", []spec.Step{{SetWeight: ptrTo(20)}, {Pause: &spec.Pause{Duration: spec.D(10 * time.Minute)}}}, &spec.Analysis{
		Judge: spec.JudgeSequential,
		Sequential: &spec.Sequential{
			MinBaseline: 100, MinExposure: spec.D(5 * time.Second),
			Prometheus: &spec.SequentialPrometheus{
				Address:         prom.URL(),
				Requests:        `http_requests_total{version="{{ version }}"}`,
				Errors:          `http_requests_total{version="{{ version }}",code=~"5.."}`,
				DurationBuckets: `http_request_duration_seconds_bucket{version="{{ version }}"}`,
			},
		},
	})
	e.waitFor("stable "+r1, func() bool {
		ro, _ := e.rollout()
		return ro.Status.StableRevision == r1 && slices.Equal(e.routeWeights(), []string{":web-a=100"})
	})
	// The judge's baseline: a few seconds of stable's counters in Prometheus.
	e.waitFor("3 scrapes of "+r1+"'s counters in Prometheus", func() bool {
		return promValue(t, prom.URL(), `count_over_time(http_requests_total{version="`+r1+`",code="200"}[1m])`) >= 3
	})
	e.setImage("web:2")
	e.waitFor("the bad canary "+r2+" rolled back by the judge", func() bool {
		_, st := e.rollout()
		return st.Last != nil && st.Last.Version == r2 && st.Last.Result == rollout.ResultRolledBack
	})
	_, st := e.rollout()
	t.Logf("rolled back: %s", st.Last.Reason)
}

// TestRouterInvalid: a Rollout whose router cannot be built gets Valid
// False with the reason, at its generation, and no slot is created.
func TestRouterInvalid(t *testing.T) {
	e := newEnv(t)
	e.startControllerWith(Options{Router: func(RouterParams) (runner.Router, error) { return nil, ErrRouterNotBuilt }})
	replicas := int32(1)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: v1alpha1.RolloutSpec{
			Replicas: &replicas, Template: template("web:1"),
			Service:       v1alpha1.ServiceRef{Name: "web"},
			TrafficRouter: v1alpha1.TrafficRouter{GatewayAPI: &v1alpha1.GatewayAPIRouter{HTTPRoute: "web"}},
		},
	}
	if err := e.c.Create(ctxT(t), ro); err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	e.waitFor("Valid False", func() bool {
		cur, _ := e.rollout()
		c := findCondition(cur, v1alpha1.ConditionValid)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == "RouterInvalid" && c.ObservedGeneration == cur.Generation
	})
	if d := e.slot("a"); d != nil {
		t.Fatalf("slot a created for a Rollout that cannot run")
	}
}

// TestBlueGreenAnalysisSwitchesBack: a blue-green by selector whose new
// revision fails its Prometheus check during the bake after the switch
// has the Service switched back to the stable slot (never an empty
// selector on the way), and is rolled back.
func TestBlueGreenAnalysisSwitchesBack(t *testing.T) {
	e := newEnv(t)
	x, addr := startExporter(t)
	prom := testenv.StartPrometheus(t, 500*time.Millisecond, addr)
	e.startControllerWith(Options{EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	x.set(r1, 0)
	x.set(r2, 0.2)
	e.create("web:1", spec.BlueGreen{BakeDuration: spec.D(time.Minute), ScaleDownDelay: spec.D(time.Hour)})
	e.waitStable(r1, "a")
	e.edit(func(ro *v1alpha1.Rollout) {
		ro.Spec.Analysis = errorRateAnalysis(prom.URL())
		ro.Spec.Template = template("web:2")
	})
	var seen []string
	e.waitFor("the rollout of "+r2+" rolled back", func() bool {
		s := e.selectorSlot()
		if s == "" {
			t.Fatal("the Service's selector lost its slot key")
		}
		if len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		_, st := e.rollout()
		return st.Last != nil && st.Last.Version == r2 && st.Last.Result == rollout.ResultRolledBack
	})
	e.waitFor("the Service back on slot a", func() bool { return e.selectorSlot() == "a" })
	_, st := e.rollout()
	if !strings.Contains(st.Last.Reason, "error-rate") {
		t.Fatalf("rollback reason %q does not name the check", st.Last.Reason)
	}
	if !slices.Contains(seen, "b") {
		t.Fatalf("the selector never switched to slot b (went through %v): the check failed before the bake", seen)
	}
	t.Logf("selector went through slots %v; %s", seen, st.Last.Reason)
}

// promValue is the value of an instant query's first sample (0 when it
// has none).
func promValue(t *testing.T, address, query string) float64 {
	t.Helper()
	resp, err := http.Get(address + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		t.Fatalf("query Prometheus: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("query Prometheus: %v", err)
	}
	if len(body.Data.Result) == 0 {
		return 0
	}
	v, _ := body.Data.Result[0].Value[1].(string)
	f, _ := strconv.ParseFloat(v, 64)
	return f
}
