// Package kubeenv runs a real Kubernetes control plane for Switchyard's
// Kubernetes-mode tests: etcd and kube-apiserver through controller-runtime's
// envtest, optionally kube-controller-manager, and a stand-in for the kubelet
// that binds pods to a fake node and reports them running and ready.
//
// The binaries are built from the Go module proxy by scripts/kube-assets.sh
// and found through KUBEBUILDER_ASSETS or that script's cache directory. When
// they are missing a test is skipped, or fails under CI=true, as with
// testenv.RequireBinary. Everything listens on 127.0.0.1 only.
//
// It is a package of its own, apart from testenv, so that the tests that
// need no Kubernetes do not link client-go and envtest.
package kubeenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/switchyard/switchyard/internal/testenv"
)

// Binary names in the assets directory.
const (
	etcdBin              = "etcd"
	apiserverBin         = "kube-apiserver"
	controllerManagerBin = "kube-controller-manager"
)

// startTimeout bounds the start of etcd and kube-apiserver each; generous
// because the machines are shared and the apiserver's first start on a cold
// page cache is slow.
const startTimeout = 90 * time.Second

// stopTimeout is how long each component gets to exit after SIGTERM.
const stopTimeout = 20 * time.Second

// Kube is a running control plane: etcd and kube-apiserver on loopback, and
// kube-controller-manager once StartControllerManager was called.
type Kube struct {
	// Config is a cluster-admin (system:masters) client configuration.
	Config *rest.Config
	// Client is a controller-runtime client on Config whose scheme knows
	// the built-in types and CustomResourceDefinitions; use
	// unstructured.Unstructured or add to Scheme for other custom resources.
	Client client.Client
	// Clientset is client-go's typed clientset on Config.
	Clientset kubernetes.Interface
	// Scheme is Client's scheme.
	Scheme *runtime.Scheme
	// CRDs are the CustomResourceDefinitions installed at start.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// Assets is the directory the binaries came from.
	Assets string
	// StartDuration is how long etcd, kube-apiserver and the CRDs took to
	// come up.
	StartDuration time.Duration

	env *envtest.Environment
	dir string // private directory: logs, kubeconfigs

	mu       sync.Mutex
	kcm      *process // kube-controller-manager, nil until started
	stopped  bool
	nodeOnce sync.Once
	nodeErr  error
	ips      ipAllocator
}

// StartKube starts etcd and kube-apiserver with the CustomResourceDefinitions
// found in crdDirs (directories or single YAML files, such as those returned
// by GatewayAPICRDs and IstioCRDs), and stops them on t.Cleanup. It is an
// integration test: skipped under -short unless CI=true, and skipped (failed
// under CI) when the binaries are missing.
func StartKube(t testing.TB, crdDirs ...string) *Kube {
	t.Helper()
	testenv.Integration(t)
	assets := RequireAssets(t)
	k, err := start(assets, t.TempDir(), crdDirs)
	if err != nil {
		t.Fatalf("start kube: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Errorf("stop kube: %v", err)
		}
	})
	t.Logf("kube: etcd, kube-apiserver and %d CRDs up in %v (%s)", len(k.CRDs), k.StartDuration.Round(time.Millisecond), k.Config.Host)
	return k
}

// start brings up etcd and kube-apiserver from assets, with dir for logs.
func start(assets, dir string, crdDirs []string) (*Kube, error) {
	t0 := time.Now()
	killOrphans()
	k := &Kube{Assets: assets, dir: dir}
	for _, d := range crdDirs {
		if _, err := os.Stat(d); err != nil {
			return nil, fmt.Errorf("CRD path: %w", err)
		}
	}
	etcdLog, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	defer etcdLog.Close() // the child has its own descriptor
	apiLog, err := os.Create(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		return nil, err
	}
	defer apiLog.Close()

	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        crdDirs,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  stopTimeout,
	}
	env.ControlPlane.Etcd = &envtest.Etcd{
		Path: filepath.Join(assets, etcdBin),
		Out:  etcdLog,
		Err:  etcdLog,
	}
	api := env.ControlPlane.GetAPIServer()
	api.Path = filepath.Join(assets, apiserverBin)
	api.Out = apiLog
	api.Err = apiLog
	args := api.Configure()
	// Loopback only. Without --advertise-address the apiserver advertises
	// the address of the default route's interface; with 127.0.0.1 it
	// refuses to start unless the endpoint reconciler (which would publish
	// that address as the kubernetes Service's endpoint) is off.
	args.Set("advertise-address", "127.0.0.1")
	args.Set("endpoint-reconciler-type", "none")
	k.env = env

	cfg, err := env.Start()
	if err != nil {
		// envtest may have started etcd before the apiserver failed.
		_ = env.Stop()
		return nil, fmt.Errorf("envtest: %w\n%s", err, logTails(dir))
	}
	// Best effort: without the record an orphan outlives only a crashed run.
	_ = recordChildren(etcdBin, apiserverBin)
	k.Config = cfg
	k.CRDs = env.CRDs
	k.StartDuration = time.Since(t0)

	k.Scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(k.Scheme); err != nil {
		return nil, errors.Join(err, k.Stop())
	}
	if err := apiextensionsv1.AddToScheme(k.Scheme); err != nil {
		return nil, errors.Join(err, k.Stop())
	}
	if k.Client, err = client.New(cfg, client.Options{Scheme: k.Scheme}); err != nil {
		return nil, errors.Join(fmt.Errorf("client: %w", err), k.Stop())
	}
	if k.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, errors.Join(fmt.Errorf("clientset: %w", err), k.Stop())
	}
	return k, nil
}

// Stop stops kube-controller-manager, then kube-apiserver, then etcd (an
// apiserver whose etcd went first spends its stop timeout retrying). It is
// idempotent; StartKube calls it on t.Cleanup.
func (k *Kube) Stop() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return nil
	}
	k.stopped = true
	var errs []error
	if k.kcm != nil {
		errs = append(errs, k.kcm.stop())
	}
	if err := k.env.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("envtest stop: %w", err))
	}
	return errors.Join(errs...)
}

// Kubeconfig writes a kubeconfig for a user in group system:masters to the
// Kube's private directory and returns its path, for commands such as
// kube-controller-manager or `kubectl switchyard`.
func (k *Kube) Kubeconfig(user string) (string, error) {
	return k.KubeconfigAs(user, "system:masters")
}

// KubeconfigAs is Kubeconfig for a user in groups: with no group but
// system:authenticated, the user may do only what a test's RBAC grants.
func (k *Kube) KubeconfigAs(user string, groups ...string) (string, error) {
	u, err := k.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		return "", fmt.Errorf("add user %q: %w", user, err)
	}
	b, err := u.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("kubeconfig for %q: %w", user, err)
	}
	path := filepath.Join(k.dir, user+".kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// Namespace creates a namespace with a generated name for t and deletes it
// on t.Cleanup (its contents go with it where the namespace controller of
// kube-controller-manager runs), so that tests can share one Kube.
func (k *Kube) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix, "-") + "-"}}
	if err := k.Client.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.IgnoreNotFound(k.Client.Delete(ctx, ns)); err != nil && !k.isStopped() {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

func (k *Kube) isStopped() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopped
}

// Logs returns the last lines of each component's log, for failure
// messages.
func (k *Kube) Logs() string { return logTails(k.dir) }

// logTails returns the last lines of the *.log files in dir.
func logTails(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", filepath.Base(f), len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// assetsHint says how to get the binaries.
const assetsHint = "build them with scripts/kube-assets.sh (about 15 min the first time; scripts/test.sh does it) and export KUBEBUILDER_ASSETS=$(scripts/kube-assets.sh)"

// RequireAssets returns the directory holding etcd and kube-apiserver (and
// usually kube-controller-manager): KUBEBUILDER_ASSETS when set, otherwise
// the cache directory scripts/kube-assets.sh builds into. When the binaries
// are missing, the test fails under CI and is skipped otherwise.
func RequireAssets(t testing.TB) string {
	t.Helper()
	dir, err := Assets()
	if err == nil {
		return dir
	}
	if testenv.CI() {
		t.Fatalf("CI=true: %v; %s", err, assetsHint)
	}
	t.Skipf("%v; %s", err, assetsHint)
	return ""
}

// Assets finds the directory holding etcd and kube-apiserver, as
// RequireAssets does, or says why it cannot.
func Assets() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		var err error
		if dir, err = cacheDir(); err != nil {
			return "", err
		}
	}
	for _, b := range []string{etcdBin, apiserverBin} {
		if err := executable(filepath.Join(dir, b)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// cacheDir asks scripts/kube-assets.sh where its cache directory is (it is
// keyed by a hash of the script, which only the script should compute).
func cacheDir() (string, error) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "kube-assets.sh")
	cmd := exec.Command("bash", script, "--print")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --print: %w: %s", script, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// executable reports an error unless path is an executable file.
func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("kube binary missing: %w", err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("kube binary %s is not an executable file", path)
	}
	return nil
}
