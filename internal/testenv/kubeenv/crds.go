package kubeenv

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/testenv"
)

// Modules whose CustomResourceDefinitions the tests install. Their versions
// are the ones go.mod requires (the test files import a package of each so
// that go mod tidy keeps them).
const (
	gatewayAPIModule = "sigs.k8s.io/gateway-api"
	istioAPIModule   = "istio.io/api"
)

// GatewayAPICRDs returns the directory of Gateway API's standard-channel
// CRDs (HTTPRoute, Gateway, GatewayClass, ...) in the sigs.k8s.io/gateway-api
// module of go.mod, for StartKube. It fails the test when the module cannot
// be found.
func GatewayAPICRDs(t testing.TB) string {
	t.Helper()
	return moduleFile(t, gatewayAPIModule, "config/crd/standard")
}

// GatewayAPIExperimentalCRDs returns the directory of Gateway API's
// experimental-channel CRDs, a superset of the standard channel's with more
// fields and kinds; install one channel or the other, not both.
func GatewayAPIExperimentalCRDs(t testing.TB) string {
	t.Helper()
	return moduleFile(t, gatewayAPIModule, "config/crd/experimental")
}

// IstioCRDs returns the file holding all of Istio's CRDs (VirtualService,
// DestinationRule, ...) in the istio.io/api module of go.mod, for StartKube.
func IstioCRDs(t testing.TB) string {
	t.Helper()
	return moduleFile(t, istioAPIModule, "kubernetes/customresourcedefinitions.gen.yaml")
}

// moduleFile returns rel inside the directory of module mod.
func moduleFile(t testing.TB, mod, rel string) string {
	t.Helper()
	dir, err := ModuleDir(mod)
	if err != nil {
		t.Fatalf("CRDs of %s: %v", mod, err)
	}
	return filepath.Join(dir, filepath.FromSlash(rel))
}

// moduleDirs caches ModuleDir's answers for the test binary: each costs a
// go command.
var moduleDirs sync.Map // module path -> string

// ModuleDir returns the directory of module mod at the version the main
// module's go.mod selects (go list -m -f {{.Dir}}), downloading it into the
// module cache when it is not there yet.
func ModuleDir(mod string) (string, error) {
	if d, ok := moduleDirs.Load(mod); ok {
		return d.(string), nil
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := goOut(root, "list", "-m", "-f", "{{.Dir}}", mod)
	if err != nil {
		return "", err
	}
	if dir == "" { // required but not downloaded yet
		if _, err := goOut(root, "mod", "download", mod); err != nil {
			return "", err
		}
		if dir, err = goOut(root, "list", "-m", "-f", "{{.Dir}}", mod); err != nil {
			return "", err
		}
		if dir == "" {
			return "", fmt.Errorf("go list -m %s: no directory after go mod download", mod)
		}
	}
	moduleDirs.Store(mod, dir)
	return dir, nil
}

// goOut runs the go command in dir and returns its trimmed stdout.
func goOut(dir string, args ...string) (string, error) {
	cmd := exec.Command(goBinary(), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// goBinary returns the go command of the toolchain in PATH, or the default
// install location's.
func goBinary() string {
	if p := testenv.LookBinary("go"); p != "" {
		return p
	}
	return "/usr/local/go/bin/go"
}
