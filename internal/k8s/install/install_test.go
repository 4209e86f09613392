// Package install tests the install manifests of deploy/install and the Helm
// chart of deploy/helm/switchyard against a real kube-apiserver
// (internal/testenv/kubeenv, whose envtest apiserver runs with
// --authorization-mode=RBAC): every object applies server-side, and the
// controller's ServiceAccount may do what the controller needs and no more,
// as SubjectAccessReviews answer.
package install

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/internal/testenv/kubeenv"
)

const (
	fieldOwner   = "switchyard-install"
	controllerNS = "switchyard-system"
	saName       = "switchyard-controller"
	watchedNS    = "shop" // the placeholder of deploy/install/namespaced
)

// repoRoot is the module root, two directories above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// decode reads every YAML file of paths (files or directories, in lexical
// order, as kubectl apply -f does) into unstructured objects.
func decode(t *testing.T, paths ...string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, p := range paths {
		files := []string{p}
		if fi, err := os.Stat(p); err != nil {
			t.Fatal(err)
		} else if fi.IsDir() {
			files, _ = filepath.Glob(filepath.Join(p, "*.yaml"))
			sort.Strings(files)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			o, err := kubeenv.DecodeDocs(b)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs = append(objs, o...)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("no objects in %v", paths)
	}
	return objs
}

// apply applies objs server-side, then checks that each exists.
func apply(ctx context.Context, t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := c.Patch(ctx, o.DeepCopy(), client.Apply, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	for _, o := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
			t.Errorf("%s %s/%s after apply: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			continue
		}
		t.Logf("applied %s %s", o.GetKind(), client.ObjectKeyFromObject(o))
	}
}

// access is one SubjectAccessReview question and the answer expected.
type access struct {
	verb, group, resource, subresource, namespace string
	allowed                                       bool
}

// checkAccess asks the questions of cases for the ServiceAccount of
// deploy/install, switchyard-system/switchyard-controller.
func checkAccess(ctx context.Context, t *testing.T, k *kubeenv.Kube, cases []access) {
	t.Helper()
	checkAccessAs(ctx, t, k, controllerNS, saName, cases)
}

// checkAccessAs asks the questions of cases for the ServiceAccount
// saNamespace/sa.
func checkAccessAs(ctx context.Context, t *testing.T, k *kubeenv.Kube, saNamespace, sa string, cases []access) {
	t.Helper()
	user := "system:serviceaccount:" + saNamespace + ":" + sa
	for _, a := range cases {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + saNamespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace:   a.namespace,
				Verb:        a.verb,
				Group:       a.group,
				Resource:    a.resource,
				Subresource: a.subresource,
			},
		}}
		got, err := k.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		res := a.resource
		if a.subresource != "" {
			res += "/" + a.subresource
		}
		where := a.namespace
		if where == "" {
			where = "(cluster-wide)"
		}
		if got.Status.Allowed != a.allowed {
			t.Errorf("%s %s.%s in %s: allowed=%v, want %v (%s)", a.verb, res, a.group, where, got.Status.Allowed, a.allowed, got.Status.Reason)
		} else {
			t.Logf("%s %s.%s in %s: allowed=%v", a.verb, res, a.group, where, got.Status.Allowed)
		}
	}
}

// needs is what the controller does in the namespace it watches (ns) and
// where its Lease lives (leaseNS).
func needs(ns, leaseNS string) []access {
	return []access{
		{verb: "get", group: "switchyard.dev", resource: "rollouts", namespace: ns, allowed: true},
		{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: ns, allowed: true},
		{verb: "watch", group: "switchyard.dev", resource: "rollouts", namespace: ns, allowed: true},
		{verb: "patch", group: "switchyard.dev", resource: "rollouts", namespace: ns, allowed: true},
		{verb: "update", group: "switchyard.dev", resource: "rollouts", namespace: ns, allowed: true},
		{verb: "update", group: "switchyard.dev", resource: "rollouts", subresource: "finalizers", namespace: ns, allowed: true},
		{verb: "get", group: "switchyard.dev", resource: "rollouts", subresource: "status", namespace: ns, allowed: true},
		{verb: "patch", group: "switchyard.dev", resource: "rollouts", subresource: "status", namespace: ns, allowed: true},
		{verb: "update", group: "switchyard.dev", resource: "rollouts", subresource: "status", namespace: ns, allowed: true},
		{verb: "get", group: "apps", resource: "deployments", namespace: ns, allowed: true},
		{verb: "list", group: "apps", resource: "deployments", namespace: ns, allowed: true},
		{verb: "watch", group: "apps", resource: "deployments", namespace: ns, allowed: true},
		{verb: "create", group: "apps", resource: "deployments", namespace: ns, allowed: true},
		{verb: "patch", group: "apps", resource: "deployments", namespace: ns, allowed: true},
		{verb: "update", group: "apps", resource: "deployments", namespace: ns, allowed: true},
		{verb: "get", group: "", resource: "services", namespace: ns, allowed: true},
		{verb: "list", group: "", resource: "services", namespace: ns, allowed: true},
		{verb: "watch", group: "", resource: "services", namespace: ns, allowed: true},
		{verb: "create", group: "", resource: "services", namespace: ns, allowed: true},
		{verb: "patch", group: "", resource: "services", namespace: ns, allowed: true},
		{verb: "update", group: "", resource: "services", namespace: ns, allowed: true},
		{verb: "create", group: "events.k8s.io", resource: "events", namespace: ns, allowed: true},
		{verb: "patch", group: "events.k8s.io", resource: "events", namespace: ns, allowed: true},
		{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: leaseNS, allowed: true},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: leaseNS, allowed: true},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: leaseNS, allowed: true},
		// Never Secrets, nor anything the role does not name.
		{verb: "get", group: "", resource: "secrets", namespace: "", allowed: false},
		{verb: "get", group: "", resource: "secrets", namespace: ns, allowed: false},
		{verb: "list", group: "", resource: "secrets", namespace: "", allowed: false},
		{verb: "delete", group: "apps", resource: "deployments", namespace: ns, allowed: false},
		{verb: "delete", group: "coordination.k8s.io", resource: "leases", namespace: leaseNS, allowed: false},
	}
}

// base applies the CRD and the generated ClusterRole, as the install
// instructions do before deploy/install.
func base(ctx context.Context, t *testing.T, k *kubeenv.Kube) {
	t.Helper()
	root := repoRoot(t)
	apply(ctx, t, k.Client, decode(t, filepath.Join(root, "deploy", "crds"), filepath.Join(root, "deploy", "rbac")))
}

func TestClusterInstall(t *testing.T) {
	k := kubeenv.StartKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base(ctx, t, k)
	apply(ctx, t, k.Client, decode(t, filepath.Join(repoRoot(t), "deploy", "install", "cluster")))

	// Cluster-wide: any namespace, the Lease in the controller's own.
	cases := append(needs("shop", controllerNS), needs("other", controllerNS)...)
	cases = append(cases,
		access{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: "", allowed: true},
		access{verb: "watch", group: "apps", resource: "deployments", namespace: "", allowed: true},
	)
	checkAccess(ctx, t, k, cases)
}

func TestNamespacedInstall(t *testing.T) {
	k := kubeenv.StartKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base(ctx, t, k)
	// The watched namespace exists before the install, as the docs require.
	if err := k.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: watchedNS}}); err != nil {
		t.Fatal(err)
	}
	objs := decode(t, filepath.Join(repoRoot(t), "deploy", "install", "namespaced"))
	apply(ctx, t, k.Client, objs)

	// The controller's arguments name the watched namespace.
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
		if !contains(args, "--namespace="+watchedNS) || !contains(args, "--leader-elect") {
			t.Errorf("Deployment args %q: want --namespace=%s and --leader-elect", args, watchedNS)
		}
	}

	cases := needs(watchedNS, watchedNS)
	// Nothing outside the watched namespace.
	cases = append(cases,
		access{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: "", allowed: false},
		access{verb: "get", group: "switchyard.dev", resource: "rollouts", namespace: "other", allowed: false},
		access{verb: "create", group: "apps", resource: "deployments", namespace: "other", allowed: false},
		access{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: controllerNS, allowed: false},
	)
	checkAccess(ctx, t, k, cases)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
