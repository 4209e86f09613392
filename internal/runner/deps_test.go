package runner

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/switchyard/switchyard/"

// moduleDeps returns the module's packages that dir imports, directly or
// not (tests excluded).
func moduleDeps(t *testing.T, root, dir string) map[string]bool {
	t.Helper()
	deps := map[string]bool{}
	var walk func(dir string)
	walk = func(dir string) {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("import %s: %v", dir, err)
		}
		for _, imp := range pkg.Imports {
			if rel, ok := strings.CutPrefix(imp, module); ok && !deps[rel] {
				deps[rel] = true
				walk(filepath.Join(root, rel))
			}
		}
	}
	walk(dir)
	return deps
}

// TestRunnerReachesProvidersThroughInterfaces: the runner (the shell of
// every mode) depends on no data plane, store or router; the daemon wires
// them in through the runner's interfaces.
func TestRunnerReachesProvidersThroughInterfaces(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	deps := moduleDeps(t, root, ".")
	for _, banned := range []string{"internal/proxy", "internal/store", "internal/router/builtin", "internal/daemon", "internal/admin"} {
		if deps[banned] {
			t.Errorf("internal/runner imports %s (directly or not); it must reach it through its own interfaces", banned)
		}
	}
	if !deps["internal/rollout"] {
		t.Errorf("deps %v: want internal/rollout among them (the walk found nothing?)", deps)
	}
}
