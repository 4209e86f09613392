package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGenerated fails when a committed generated file (the CRD, the RBAC
// ClusterRole, the DeepCopy methods here and in internal/spec) is not what
// controller-gen makes of the types now. It runs the same commands as
// generate.go's go:generate lines, into a temporary directory. Regenerate
// with
//
//	go generate ./api/...
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen")
	}
	tmp := t.TempDir()
	dir := func(name string) string { return filepath.Join(tmp, name) }
	runs := [][]string{
		{"object", "paths=../../internal/spec", "output:object:dir=" + dir("spec")},
		{"object", "paths=.", "output:object:dir=" + dir("api")},
		{"crd:allowDangerousTypes=true", "paths=.", "output:crd:artifacts:config=" + dir("crds")},
		{"rbac:roleName=switchyard-controller", "paths=../../internal/k8s", "output:rbac:artifacts:config=" + dir("rbac")},
	}
	for _, args := range runs {
		cmd := exec.Command("go", append([]string{"tool", "controller-gen"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen %v: %v\n%s", args, err, out)
		}
	}
	files := []struct{ committed, generated string }{
		{"../../internal/spec/zz_generated.deepcopy.go", dir("spec/zz_generated.deepcopy.go")},
		{"zz_generated.deepcopy.go", dir("api/zz_generated.deepcopy.go")},
		{"../../deploy/crds/switchyard.dev_rollouts.yaml", dir("crds/switchyard.dev_rollouts.yaml")},
		{"../../deploy/rbac/role.yaml", dir("rbac/role.yaml")},
	}
	for _, f := range files {
		want, err := os.ReadFile(f.generated)
		if err != nil {
			t.Fatalf("controller-gen wrote no %s: %v", filepath.Base(f.generated), err)
		}
		got, err := os.ReadFile(f.committed)
		if err != nil {
			t.Fatalf("%v; generate it with: go generate ./api/...", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the types generate; regenerate with: go generate ./api/...", f.committed)
		}
	}
}
