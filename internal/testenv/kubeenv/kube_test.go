package kubeenv

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	// The Istio CRDs come from this module's files; importing one of its
	// packages keeps it (at go.mod's version) through go mod tidy.
	_ "istio.io/api/networking/v1"

	"github.com/switchyard/switchyard/internal/testenv"
)

// kube is the package's one control plane: Gateway API (standard channel),
// Istio and Switchyard's own CRDs, and kube-controller-manager.
var kube = &Shared{
	CRDs:              func(t testing.TB) []string { return []string{GatewayAPICRDs(t), IstioCRDs(t), repoCRDs(t)} },
	ControllerManager: true,
}

// repoCRDs returns the repository's generated CRDs (deploy/crds).
func repoCRDs(t testing.TB) string {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	return filepath.Join(root, "deploy", "crds")
}

func TestMain(m *testing.M) { os.Exit(kube.Run(m)) }

// waitTimeout bounds each wait for a controller's reaction; generous for a
// shared, loaded machine.
const waitTimeout = 60 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestStartKube starts a control plane of its own (no CRDs), checks that it
// reports the release the assets were built for and listens on loopback only,
// and that it is gone after Stop.
func TestStartKube(t *testing.T) {
	k := StartKube(t)
	v, err := k.Clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	if !strings.HasPrefix(v.GitVersion, "v1.") || v.GitVersion == "v0.0.0-master+$Format:%H$" {
		t.Fatalf("/version gitVersion = %q, want a release (v1.x.y): the build's -ldflags -X did not apply", v.GitVersion)
	}
	if v.Major != "1" || v.Minor == "" {
		t.Fatalf("/version major.minor = %q.%q, want 1.N", v.Major, v.Minor)
	}
	t.Logf("kube-apiserver %s (go %s)", v.GitVersion, v.GoVersion)
	u, err := url.Parse(k.Config.Host)
	if err != nil {
		t.Fatalf("parse host %q: %v", k.Config.Host, err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		t.Fatalf("apiserver at %s, want a loopback address", k.Config.Host)
	}
	// The kubernetes Service has no endpoints: the reconciler that would
	// publish the advertised address is off.
	var eps discoveryv1.EndpointSliceList
	if err := k.Client.List(ctxT(t), &eps, client.InNamespace("default")); err != nil {
		t.Fatalf("list endpointslices: %v", err)
	}
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			t.Fatalf("default/%s lists %v; want no endpoints (--endpoint-reconciler-type=none)", s.Name, e.Addresses)
		}
	}
	if err := k.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if testenv.Accepts(u.Host) {
		t.Fatalf("apiserver %s still accepts connections after Stop", u.Host)
	}
	if err := k.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// TestCRDSchemasValidate shows that the Gateway API and Istio CRDs are
// installed with their schemas: the apiserver rejects what they forbid.
func TestCRDSchemasValidate(t *testing.T) {
	k := kube.Get(t)
	ctx := ctxT(t)
	ns := k.Namespace(t)
	for _, name := range []string{"httproutes.gateway.networking.k8s.io", "virtualservices.networking.istio.io", "destinationrules.networking.istio.io"} {
		if !slices.ContainsFunc(k.CRDs, func(c *apiextensionsv1.CustomResourceDefinition) bool { return c.Name == name }) {
			t.Fatalf("CRD %s not installed; installed %d", name, len(k.CRDs))
		}
	}

	if err := gatewayv1.Install(k.Scheme); err != nil {
		t.Fatalf("add Gateway API types to the scheme: %v", err)
	}
	route := func(name string, weights ...int32) *gatewayv1.HTTPRoute {
		port := gatewayv1.PortNumber(80)
		r := &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gw"}}},
			},
		}
		var refs []gatewayv1.HTTPBackendRef
		for i, w := range weights {
			w := w
			refs = append(refs, gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName([]string{"web-stable", "web-canary"}[i]), Port: &port},
				Weight:                 &w,
			}})
		}
		r.Spec.Rules = []gatewayv1.HTTPRouteRule{{BackendRefs: refs}}
		return r
	}
	tests := []struct {
		name    string
		route   *gatewayv1.HTTPRoute
		wantErr string // "" accepted
	}{
		{"weights 90/10", route("ok", 90, 10), ""},
		{"negative weight", route("negative", 100, -1), "weight"},
		{"weight above the maximum", route("huge", 100, 1000001), "weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k.Client.Create(ctx, tt.route)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("create HTTPRoute %s: %v, want accepted", tt.route.Name, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("create HTTPRoute %s: accepted, want rejected (%s)", tt.route.Name, tt.wantErr)
			case tt.wantErr != "" && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("create HTTPRoute %s: %v, want Invalid naming %q", tt.route.Name, err, tt.wantErr)
			}
		})
	}

	vs := func(name string, route map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1",
			"kind":       "VirtualService",
			"metadata":   map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{
				"hosts": []any{"web"},
				"http": []any{
					map[string]any{
						"match": []any{map[string]any{"headers": map[string]any{"x-canary": map[string]any{"exact": "true"}}}},
						"route": []any{map[string]any{"destination": map[string]any{"host": "web", "subset": "canary"}}},
					},
					map[string]any{"route": []any{route}},
				},
			},
		}}
		return u
	}
	vsTests := []struct {
		name    string
		route   map[string]any
		wantErr string
	}{
		{"weighted route", map[string]any{"destination": map[string]any{"host": "web", "subset": "stable"}, "weight": int64(90)}, ""},
		{"weight not a number", map[string]any{"destination": map[string]any{"host": "web"}, "weight": "ninety"}, "weight"},
		{"destination without host", map[string]any{"destination": map[string]any{"subset": "stable"}, "weight": int64(90)}, "host"},
	}
	for i, tt := range vsTests {
		t.Run("VirtualService "+tt.name, func(t *testing.T) {
			obj := vs("vs-"+string(rune('a'+i)), tt.route)
			err := k.Client.Create(ctx, obj)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("create VirtualService: %v, want accepted", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("create VirtualService: accepted, want rejected (%s)", tt.wantErr)
			case tt.wantErr != "" && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("create VirtualService: %v, want Invalid naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestRolloutCRDServed shows that the repository's generated Rollout CRD
// installs into a real apiserver (its schema and CEL rules compile there)
// and is served.
func TestRolloutCRDServed(t *testing.T) {
	k := kube.Get(t)
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k.Client.Get(ctxT(t), types.NamespacedName{Name: "rollouts.switchyard.dev"}, &crd); err != nil {
		t.Fatalf("get CRD rollouts.switchyard.dev: %v", err)
	}
	established := false
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			established = true
		}
	}
	if !established {
		t.Fatalf("CRD rollouts.switchyard.dev not established: %+v", crd.Status.Conditions)
	}
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion("switchyard.dev/v1alpha1")
	list.SetKind("RolloutList")
	if err := k.Client.List(ctxT(t), list, client.InNamespace(k.Namespace(t))); err != nil {
		t.Fatalf("list rollouts: %v", err)
	}
}

// TestLoopbackEndpointsRejected pins down why the kubelet stand-in does not
// give pods 127.0.0.x addresses: the apiserver refuses loopback endpoints.
func TestLoopbackEndpointsRejected(t *testing.T) {
	k := kube.Get(t)
	ns := k.Namespace(t)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "loopback", Namespace: ns},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.2"}}},
	}
	err := k.Client.Create(ctxT(t), slice)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("create EndpointSlice with 127.0.0.2: %v, want Invalid (loopback range)", err)
	}
}

// TestKubeletStandIn runs Deployments on the stand-in: they become
// available, the EndpointSlice of a Service lists their pods' IPs, and a
// selector switch moves the endpoints to the other Deployment's pods.
func TestKubeletStandIn(t *testing.T) {
	k := kube.Get(t)
	ctx := ctxT(t)
	ns := k.Namespace(t)
	kl := k.RunKubelet(t, KubeletOptions{Namespace: ns, Selector: "app=web"})

	for _, slot := range []string{"blue", "green"} {
		if err := k.Client.Create(ctx, deployment(ns, "web-"+slot, slot, 2)); err != nil {
			t.Fatalf("create deployment web-%s: %v", slot, err)
		}
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web", "slot": "blue"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if err := k.Client.Create(ctx, svc); err != nil {
		t.Fatalf("create service: %v", err)
	}

	for _, slot := range []string{"blue", "green"} {
		name := "web-" + slot
		waitFor(t, kl, func() bool {
			var d appsv1.Deployment
			if err := k.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err != nil {
				return false
			}
			return d.Status.AvailableReplicas == 2 && d.Status.UpdatedReplicas == 2 && available(&d)
		}, "deployment "+name+" to have 2 available replicas")
	}
	blue, green := podIPs(t, k, ns, "blue"), podIPs(t, k, ns, "green")
	all := append(slices.Clone(blue), green...)
	slices.Sort(all)
	if len(all) != 4 || len(slices.Compact(slices.Clone(all))) != 4 {
		t.Fatalf("pod IPs %v, want 4 distinct", all)
	}
	for _, ip := range all {
		if a, err := netip.ParseAddr(ip); err != nil || !PodIPRange.Contains(a) {
			t.Fatalf("pod IP %s not in %v", ip, PodIPRange)
		}
	}

	testenv.WaitFor(t, waitTimeout, func() bool { return slices.Equal(endpointIPs(ctx, k, ns, "web"), blue) },
		"the EndpointSlice of web to list the blue pods "+strings.Join(blue, ","))

	t0 := time.Now()
	patch := client.MergeFrom(svc.DeepCopy())
	svc.Spec.Selector["slot"] = "green"
	if err := k.Client.Patch(ctx, svc, patch); err != nil {
		t.Fatalf("switch selector to green: %v", err)
	}
	testenv.WaitFor(t, waitTimeout, func() bool { return slices.Equal(endpointIPs(ctx, k, ns, "web"), green) },
		"the EndpointSlice of web to list the green pods "+strings.Join(green, ","))
	t.Logf("endpoints moved to green %v after the selector switch", time.Since(t0).Round(time.Millisecond))

	// Scaling down: the stand-in finishes the pods' deletion, as a kubelet
	// does once their containers have stopped.
	var d appsv1.Deployment
	if err := k.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web-blue"}, &d); err != nil {
		t.Fatalf("get web-blue: %v", err)
	}
	scale := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = ptr(int32(0))
	if err := k.Client.Patch(ctx, &d, scale); err != nil {
		t.Fatalf("scale web-blue to 0: %v", err)
	}
	testenv.WaitFor(t, waitTimeout, func() bool { return len(podIPs(t, k, ns, "blue")) == 0 }, "web-blue's pods to be gone")
	if errs := kl.Errors(); len(errs) > 0 {
		t.Fatalf("stand-in errors: %v", errs)
	}
}

// TestKubeletStandInNotReady holds pods unready and then lets them become
// ready: the Deployment is available only after Refresh.
func TestKubeletStandInNotReady(t *testing.T) {
	k := kube.Get(t)
	ctx := ctxT(t)
	ns := k.Namespace(t)
	var ready atomic.Bool
	kl := k.RunKubelet(t, KubeletOptions{Namespace: ns, Ready: func(*corev1.Pod) bool { return ready.Load() }})
	if err := k.Client.Create(ctx, deployment(ns, "web", "a", 1)); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	var pod corev1.Pod
	waitFor(t, kl, func() bool {
		var pods corev1.PodList
		if err := k.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil || len(pods.Items) != 1 {
			return false
		}
		pod = pods.Items[0]
		return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != ""
	}, "the pod to run")
	if podReady(&pod) {
		t.Fatalf("pod %s is ready while Ready returns false", pod.Name)
	}
	ready.Store(true)
	kl.Refresh()
	testenv.WaitFor(t, waitTimeout, func() bool {
		var d appsv1.Deployment
		return k.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "web"}, &d) == nil && d.Status.AvailableReplicas == 1
	}, "the deployment to become available after Refresh")
}

// deployment returns a Deployment of replicas pods labelled app=web and
// slot.
func deployment(ns, name, slot string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": "web", "slot": slot}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web",
					Image: "example.invalid/web:" + slot,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podIPs returns the sorted IPs of the running pods of slot.
func podIPs(t *testing.T, k *Kube, ns, slot string) []string {
	t.Helper()
	var pods corev1.PodList
	if err := k.Client.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{"slot": slot}); err != nil {
		t.Fatalf("list pods: %v", err)
	}
	var ips []string
	for _, p := range pods.Items {
		if p.Status.PodIP != "" {
			ips = append(ips, p.Status.PodIP)
		}
	}
	slices.Sort(ips)
	return ips
}

// endpointIPs returns the sorted ready addresses of service's EndpointSlices.
func endpointIPs(ctx context.Context, k *Kube, ns, service string) []string {
	var list discoveryv1.EndpointSliceList
	if err := k.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return nil
	}
	var ips []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	slices.Sort(ips)
	return ips
}

// waitFor waits for cond like testenv.WaitFor, naming the stand-in's
// errors when it times out.
func waitFor(t *testing.T, kl *Kubelet, cond func() bool, what string) {
	t.Helper()
	if testenv.Poll(waitTimeout, cond) {
		return
	}
	t.Fatalf("timed out after %v waiting for %s; kubelet stand-in errors: %v", waitTimeout, what, kl.Errors())
}

func ptr[T any](v T) *T { return &v }
