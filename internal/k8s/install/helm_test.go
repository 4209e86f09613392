package install

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"

	"github.com/switchyard/switchyard/internal/testenv/kubeenv"
)

// The chart's tests load and lint deploy/helm/switchyard and render it with
// the Helm Go SDK as `helm template` does: its rules against the generated
// deploy/rbac/role.yaml, its crds/ against deploy/crds, bad values against
// the errors they must give. Then they apply what it renders to a real
// kube-apiserver and ask SubjectAccessReviews, as the tests of
// deploy/install do, and run an install, an upgrade and an uninstall
// through Helm itself. Only these last need the API server.

// helmRelease is the release name of the tests; it contains the chart's
// name, so every object (the ServiceAccount too) is named switchyard.
const helmRelease = "switchyard"

func chartDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(repoRoot(t), "deploy", "helm", "switchyard")
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir(t), err)
	}
	return ch
}

// render renders ch for a release helmRelease in namespace with
// vals over values.yaml, client-side (no API server, as `helm template`),
// values.schema.json checked, crds/ left out. It returns the objects and
// the rendered NOTES.txt.
func render(t *testing.T, ch *chart.Chart, namespace string, vals map[string]any) ([]*unstructured.Unstructured, string, error) {
	t.Helper()
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	in := action.NewInstall(cfg)
	in.DryRunStrategy = action.DryRunClient
	in.ReleaseName = helmRelease
	in.Namespace = namespace
	in.Replace = true // no release store to check the name against
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := in.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, "", err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("Install returned a %T, want *release.Release", r)
	}
	objs, err := kubeenv.DecodeDocs([]byte(rel.Manifest))
	if err != nil {
		t.Fatalf("decode the rendered manifest: %v\n%s", err, rel.Manifest)
	}
	return objs, rel.Info.Notes, nil
}

// mustRender is render that fails the test on an error.
func mustRender(t *testing.T, ch *chart.Chart, namespace string, vals map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, _, err := render(t, ch, namespace, vals)
	if err != nil {
		t.Fatalf("render with %v: %v", vals, err)
	}
	return objs
}

// ofKind returns the objects of objs of kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of kind in objs, failing the test if there is
// not exactly one.
func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	matched := ofKind(objs, kind)
	if len(matched) != 1 {
		t.Fatalf("rendered %d %s objects, want 1", len(matched), kind)
	}
	return matched[0]
}

// deployment returns the rendered Deployment, typed.
func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(one(t, objs, "Deployment").Object, d); err != nil {
		t.Fatalf("Deployment: %v", err)
	}
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment has %d containers, want 1", n)
	}
	return d
}

func args(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	return deployment(t, objs).Spec.Template.Spec.Containers[0].Args
}

func TestHelmChartLoadsAndLints(t *testing.T) {
	ch := loadChart(t)
	if ch.Metadata.APIVersion != chart.APIVersionV2 {
		t.Errorf("Chart.yaml apiVersion %q, want %q", ch.Metadata.APIVersion, chart.APIVersionV2)
	}
	if err := ch.Validate(); err != nil {
		t.Errorf("chart: %v", err)
	}
	if n := len(ch.CRDObjects()); n != 1 {
		t.Errorf("chart has %d CRDs in crds/, want 1", n)
	}
	// The chart's default image is the one of deploy/install.
	image := deployment(t, decode(t, filepath.Join(repoRoot(t), "deploy", "install", "cluster"))).Spec.Template.Spec.Containers[0].Image
	if got := deployment(t, mustRender(t, ch, "switchyard-system", nil)).Spec.Template.Spec.Containers[0].Image; got != image {
		t.Errorf("chart's default image %q (appVersion %q), want deploy/install's %q", got, ch.Metadata.AppVersion, image)
	}

	for _, tc := range []struct {
		name string
		vals map[string]any
	}{
		{"defaults", nil},
		{"namespace scope", map[string]any{"scope": "namespace"}},
		{"namespace scope, watchNamespace", map[string]any{"scope": "namespace", "watchNamespace": "shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := action.NewLint()
			l.Strict = true // warnings fail too
			l.Namespace = "switchyard-system"
			res := l.Run([]string{chartDir(t)}, tc.vals)
			for _, m := range res.Messages {
				t.Logf("lint: %s", m)
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts, want 1", res.TotalChartsLinted)
			}
			for _, err := range res.Errors {
				t.Errorf("lint: %v", err)
			}
		})
	}
}

// TestHelmCRDsCopy checks that the chart's crds/ holds exactly the CRDs of
// deploy/crds, which controller-gen generates: Helm reads only files inside
// the chart, so crds/ is a copy.
func TestHelmCRDsCopy(t *testing.T) {
	src := filepath.Join(repoRoot(t), "deploy", "crds")
	dst := filepath.Join(chartDir(t), "crds")
	names := func(dir string) []string {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range files {
			files[i] = filepath.Base(f)
		}
		slices.Sort(files)
		return files
	}
	const fix = "copy them: cp deploy/crds/*.yaml deploy/helm/switchyard/crds/ (and remove files that deploy/crds no longer has)"
	if got, want := names(dst), names(src); !slices.Equal(got, want) {
		t.Fatalf("deploy/helm/switchyard/crds holds %q, deploy/crds %q; %s", got, want, fix)
	}
	for _, n := range names(src) {
		want, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dst, n))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/helm/switchyard/crds/%s differs from deploy/crds/%s (regenerated by go generate ./api/...); %s", n, n, fix)
		}
	}
}

// TestHelmRBACRules checks that the role the chart renders, a ClusterRole
// or a Role, has exactly the rules of deploy/rbac/role.yaml, which
// controller-gen generates from the controller's markers.
func TestHelmRBACRules(t *testing.T) {
	generated := one(t, decode(t, filepath.Join(repoRoot(t), "deploy", "rbac", "role.yaml")), "ClusterRole")
	want, _, _ := unstructured.NestedSlice(generated.Object, "rules")
	if len(want) == 0 {
		t.Fatal("deploy/rbac/role.yaml has no rules")
	}
	ch := loadChart(t)
	for _, tc := range []struct {
		name, kind, bindingKind string
		vals                    map[string]any
	}{
		{"cluster", "ClusterRole", "ClusterRoleBinding", nil},
		{"namespace", "Role", "RoleBinding", map[string]any{"scope": "namespace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustRender(t, ch, "switchyard-system", tc.vals)
			if n := len(ofKind(objs, "ClusterRole")) + len(ofKind(objs, "Role")); n != 1 {
				t.Fatalf("rendered %d roles, want 1", n)
			}
			role := one(t, objs, tc.kind)
			got, _, _ := unstructured.NestedSlice(role.Object, "rules")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s rules:\n%v\nwant those of deploy/rbac/role.yaml:\n%v", tc.kind, got, want)
			}
			binding := one(t, objs, tc.bindingKind)
			ref, _, _ := unstructured.NestedStringMap(binding.Object, "roleRef")
			if ref["kind"] != tc.kind || ref["name"] != role.GetName() {
				t.Errorf("%s roleRef %v, want %s %s", tc.bindingKind, ref, tc.kind, role.GetName())
			}
		})
	}
}

// TestHelmRender checks what the Deployment runs for some values.
func TestHelmRender(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name      string
		namespace string
		vals      map[string]any
		want      []string // arguments that must be there
		not       []string // prefixes of arguments that must not
		replicas  int32
	}{
		{
			name: "defaults", namespace: "switchyard-system",
			want: []string{"controller", "--leader-elect", "--leader-election-namespace=$(POD_NAMESPACE)",
				"--metrics-address=:8080", "--log-level=info", "--log-format=json"},
			not:      []string{"--namespace", "--egress-allow"},
			replicas: 2,
		},
		{
			name: "namespace scope watches the release namespace", namespace: "shop",
			vals:     map[string]any{"scope": "namespace"},
			want:     []string{"--namespace=shop", "--leader-elect", "--leader-election-namespace=shop"},
			not:      []string{"--leader-election-namespace=$(POD_NAMESPACE)"},
			replicas: 2,
		},
		{
			name: "namespace scope, watchNamespace", namespace: "switchyard-system",
			vals:     map[string]any{"scope": "namespace", "watchNamespace": "store"},
			want:     []string{"--namespace=store", "--leader-election-namespace=store"},
			not:      []string{"--namespace=switchyard-system"},
			replicas: 2,
		},
		{
			name: "one replica without leader election", namespace: "switchyard-system",
			vals:     map[string]any{"replicaCount": 1, "leaderElection": map[string]any{"enabled": false}},
			want:     []string{"controller"},
			not:      []string{"--leader-elect"},
			replicas: 1,
		},
		{
			name: "egress, log, metrics and extra args", namespace: "switchyard-system",
			vals: map[string]any{
				"egressAllow": []any{"10.0.0.0/8", "192.168.1.5"},
				"logLevel":    "debug", "logFormat": "text",
				"metrics":   map[string]any{"enabled": false},
				"extraArgs": []any{"--kubeconfig=/etc/kube/config"},
			},
			want: []string{"--egress-allow=10.0.0.0/8", "--egress-allow=192.168.1.5", "--log-level=debug",
				"--log-format=text", "--metrics-address=0", "--kubeconfig=/etc/kube/config"},
			not:      []string{"--metrics-address=:"},
			replicas: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, notes, err := render(t, ch, tc.namespace, tc.vals)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			d := deployment(t, objs)
			c := d.Spec.Template.Spec.Containers[0]
			for _, w := range tc.want {
				if !slices.Contains(c.Args, w) {
					t.Errorf("args %q: want %s", c.Args, w)
				}
			}
			for _, n := range tc.not {
				for _, x := range c.Args {
					if strings.HasPrefix(x, n) {
						t.Errorf("args %q: want none starting %s", c.Args, n)
					}
				}
			}
			if r := d.Spec.Replicas; r == nil || *r != tc.replicas {
				t.Errorf("replicas %v, want %d", r, tc.replicas)
			}
			if sa := one(t, objs, "ServiceAccount"); d.Spec.Template.Spec.ServiceAccountName != sa.GetName() {
				t.Errorf("serviceAccountName %q, want the chart's ServiceAccount %q", d.Spec.Template.Spec.ServiceAccountName, sa.GetName())
			}
			// Non-root, read-only root filesystem, no privilege escalation,
			// ALL capabilities dropped, as deploy/install.
			sc, psc := c.SecurityContext, d.Spec.Template.Spec.SecurityContext
			if sc == nil || psc == nil {
				t.Fatalf("securityContext %v, pod securityContext %v: want both", sc, psc)
			}
			for _, f := range []struct {
				name string
				got  *bool
				want bool
			}{
				{"securityContext.readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem, true},
				{"securityContext.allowPrivilegeEscalation", sc.AllowPrivilegeEscalation, false},
				{"securityContext.runAsNonRoot", sc.RunAsNonRoot, true},
				{"podSecurityContext.runAsNonRoot", psc.RunAsNonRoot, true},
			} {
				if f.got == nil || *f.got != f.want {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("securityContext.capabilities %v, want drop ALL", sc.Capabilities)
			}
			if !strings.Contains(notes, "kubectl apply --server-side -f deploy/crds") {
				t.Errorf("NOTES.txt does not say to apply deploy/crds on upgrade:\n%s", notes)
			}
			t.Logf("args %q", c.Args)
		})
	}
}

// TestHelmBadValues checks that values.schema.json and the templates refuse
// bad values with an error that names the field.
func TestHelmBadValues(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct {
		name string
		vals map[string]any
		want []string // in the error
	}{
		{"scope not in the enum", map[string]any{"scope": "bogus"}, []string{"/scope", "cluster", "namespace"}},
		{"replicaCount 0", map[string]any{"replicaCount": 0}, []string{"/replicaCount", "minimum"}},
		{"replicaCount a string", map[string]any{"replicaCount": "2"}, []string{"/replicaCount"}},
		{"unknown top-level key", map[string]any{"replicas": 3}, []string{"replicas", "not allowed"}},
		{"unknown nested key", map[string]any{"image": map[string]any{"name": "x"}}, []string{"/image", "name", "not allowed"}},
		{"logLevel", map[string]any{"logLevel": "loud"}, []string{"/logLevel"}},
		{"watchNamespace not a name", map[string]any{"scope": "namespace", "watchNamespace": "Shop_1"}, []string{"/watchNamespace"}},
		{"metrics port", map[string]any{"metrics": map[string]any{"port": 70000}}, []string{"/metrics/port"}},
		{"watchNamespace with scope cluster", map[string]any{"watchNamespace": "shop"}, []string{"watchNamespace", `"shop"`, "scope: namespace"}},
		{
			"replicas without leader election",
			map[string]any{"leaderElection": map[string]any{"enabled": false}},
			[]string{"replicaCount is 2", "leaderElection.enabled"},
		},
		{
			"no ServiceAccount named",
			map[string]any{"serviceAccount": map[string]any{"create": false}},
			[]string{"serviceAccount.name", "serviceAccount.create"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := render(t, ch, "switchyard-system", tc.vals)
			if err == nil {
				t.Fatalf("render with %v: no error, want one naming %q", tc.vals, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("render with %v: error %q does not say %q", tc.vals, err, w)
				}
			}
			t.Logf("%v: %v", tc.vals, err)
		})
	}
}

// helmInstall renders the chart for a release in namespace, creates the
// namespaces the install needs (Helm's --create-namespace; a watched
// namespace must exist), then applies the chart's crds/ and the rendered
// objects server-side.
func helmInstall(ctx context.Context, t *testing.T, k *kubeenv.Kube, namespace string, vals map[string]any, namespaces ...string) []*unstructured.Unstructured {
	t.Helper()
	objs := mustRender(t, loadChart(t), namespace, vals)
	for _, ns := range append([]string{namespace}, namespaces...) {
		if err := k.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
	apply(ctx, t, k.Client, decode(t, filepath.Join(chartDir(t), "crds")))
	apply(ctx, t, k.Client, objs)
	return objs
}

func TestHelmClusterInstall(t *testing.T) {
	k := kubeenv.StartKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "switchyard-system"
	objs := helmInstall(ctx, t, k, ns, nil)
	sa := one(t, objs, "ServiceAccount")

	// Cluster-wide: any namespace, the Lease in the release namespace.
	cases := append(needs("shop", ns), needs("other", ns)...)
	cases = append(cases,
		access{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: "", allowed: true},
		access{verb: "watch", group: "apps", resource: "deployments", namespace: "", allowed: true},
	)
	checkAccessAs(ctx, t, k, ns, sa.GetName(), cases)
}

func TestHelmNamespacedInstall(t *testing.T) {
	// One API server for both cases: their ServiceAccounts are in different
	// namespaces, and each is checked to get nothing outside its own.
	k := kubeenv.StartKube(t)
	for _, tc := range []struct {
		name      string
		namespace string // the release's
		watch     string
		vals      map[string]any
		others    []string // namespaces to create
	}{
		{"release namespace", "shop", "shop", map[string]any{"scope": "namespace"}, nil},
		{"watchNamespace", "switchyard-system", "store", map[string]any{"scope": "namespace", "watchNamespace": "store"}, []string{"store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			objs := helmInstall(ctx, t, k, tc.namespace, tc.vals, tc.others...)
			for _, o := range objs {
				if o.GetNamespace() == "" {
					t.Errorf("namespace scope rendered the cluster-scoped %s %s", o.GetKind(), o.GetName())
				}
			}
			if a := args(t, objs); !slices.Contains(a, "--namespace="+tc.watch) {
				t.Errorf("args %q: want --namespace=%s", a, tc.watch)
			}
			sa := one(t, objs, "ServiceAccount")

			cases := needs(tc.watch, tc.watch)
			// Nothing outside the watched namespace, its own included.
			for _, other := range []string{"other", "kube-system", tc.namespace} {
				if other == tc.watch {
					continue
				}
				cases = append(cases,
					access{verb: "get", group: "switchyard.dev", resource: "rollouts", namespace: other, allowed: false},
					access{verb: "create", group: "apps", resource: "deployments", namespace: other, allowed: false},
					access{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: other, allowed: false},
				)
			}
			cases = append(cases,
				access{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: "", allowed: false},
				access{verb: "watch", group: "apps", resource: "deployments", namespace: "", allowed: false},
				access{verb: "list", group: "", resource: "pods", namespace: "", allowed: false},
			)
			checkAccessAs(ctx, t, k, tc.namespace, sa.GetName(), cases)
		})
	}
}

// TestHelmInstallUpgradeUninstall runs the chart through Helm itself
// against the real kube-apiserver: an install creates the namespace, the
// CRD of crds/ and the objects; an upgrade to scope namespace replaces the
// ClusterRole by a Role (Helm deletes what the new revision no longer
// renders), which SubjectAccessReviews see; an uninstall keeps the CRD.
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	k := kubeenv.StartKube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kubeconfig, err := k.Kubeconfig("helm")
	if err != nil {
		t.Fatal(err)
	}
	const ns = "switchyard-system"
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = ptr.To(kubeconfig)
	flags.Namespace = ptr.To(ns)
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatalf("helm configuration: %v", err)
	}
	ch := loadChart(t)

	// No kubelet runs the pods: wait for nothing but hooks (there are none).
	in := action.NewInstall(cfg)
	in.ReleaseName = helmRelease
	in.Namespace = ns
	in.CreateNamespace = true
	in.WaitStrategy = kube.HookOnlyStrategy
	in.Timeout = time.Minute
	if _, err := in.RunWithContext(ctx, ch, nil); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k.Client.Get(ctx, client.ObjectKey{Name: "rollouts.switchyard.dev"}, crd); err != nil {
		t.Fatalf("CRD after helm install: %v", err)
	}
	d := &appsv1.Deployment{}
	if err := k.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: helmRelease}, d); err != nil {
		t.Fatalf("Deployment after helm install: %v", err)
	}
	clusterWide := []access{
		{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: "", allowed: true},
		{verb: "patch", group: "switchyard.dev", resource: "rollouts", subresource: "status", namespace: "shop", allowed: true},
		{verb: "get", group: "", resource: "secrets", namespace: ns, allowed: false},
	}
	checkAccessAs(ctx, t, k, ns, helmRelease, clusterWide)

	up := action.NewUpgrade(cfg)
	up.Namespace = ns
	up.WaitStrategy = kube.HookOnlyStrategy
	up.Timeout = time.Minute
	if _, err := up.RunWithContext(ctx, helmRelease, ch, map[string]any{"scope": "namespace", "watchNamespace": "shop"}); err == nil {
		t.Fatal("helm upgrade to watchNamespace shop, which does not exist: no error")
	} else {
		// The Role goes into the watched namespace, which must exist.
		t.Logf("helm upgrade before namespace shop exists: %v", err)
	}
	if err := k.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.RunWithContext(ctx, helmRelease, ch, map[string]any{"scope": "namespace", "watchNamespace": "shop"}); err != nil {
		t.Fatalf("helm upgrade to scope namespace: %v", err)
	}
	if err := k.Client.Get(ctx, client.ObjectKey{Name: helmRelease}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
		t.Errorf("ClusterRole after the upgrade to scope namespace: %v, want not found", err)
	}
	checkAccessAs(ctx, t, k, ns, helmRelease, append(needs("shop", "shop"),
		access{verb: "list", group: "switchyard.dev", resource: "rollouts", namespace: "", allowed: false},
		access{verb: "get", group: "switchyard.dev", resource: "rollouts", namespace: ns, allowed: false},
	))

	un := action.NewUninstall(cfg)
	un.WaitStrategy = kube.HookOnlyStrategy
	un.Timeout = time.Minute
	if _, err := un.Run(helmRelease); err != nil {
		t.Fatalf("helm uninstall: %v", err)
	}
	if err := k.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: helmRelease}, &rbacv1.Role{}); !apierrors.IsNotFound(err) {
		t.Errorf("Role after helm uninstall: %v, want not found", err)
	}
	if err := k.Client.Get(ctx, client.ObjectKey{Name: "rollouts.switchyard.dev"}, crd); err != nil {
		t.Errorf("CRD after helm uninstall: %v, want kept (Helm never deletes crds/)", err)
	}
}
