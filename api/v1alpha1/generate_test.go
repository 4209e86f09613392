package v1alpha1

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGenerated fails when a committed generated file (the CRD, the RBAC
// ClusterRole, the DeepCopy methods here and in internal/spec) is not what
// controller-gen makes of the types now. It runs generate.go's go:generate
// lines themselves, each writing into a temporary directory instead, and
// compares every file they write. Regenerate with
//
//	go generate ./api/...
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen")
	}
	src, err := os.ReadFile("generate.go")
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "//go:generate go tool controller-gen "
	var runs int
	for line := range strings.SplitSeq(string(src), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		runs++
		out := filepath.Join(t.TempDir(), strconv.Itoa(runs))
		args := strings.Fields(rest)
		var committed string // the directory the line writes to
		for i, a := range args {
			switch {
			case strings.HasPrefix(a, "paths=") && args[0] == "object":
				committed = strings.TrimPrefix(a, "paths=")
			case strings.HasPrefix(a, "output:"):
				k, v, _ := strings.Cut(a, "=")
				committed, args[i] = v, k+"="+out
			}
		}
		if args[0] == "object" {
			args = append(args, "output:object:dir="+out)
		}
		if committed == "" {
			t.Fatalf("generate.go: cannot tell where %q writes", line)
		}
		cmd := exec.Command("go", append([]string{"tool", "controller-gen"}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("controller-gen %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		files, err := os.ReadDir(out)
		if err != nil || len(files) == 0 {
			t.Fatalf("controller-gen %s wrote nothing (%v)", strings.Join(args, " "), err)
		}
		for _, f := range files {
			want, err := os.ReadFile(filepath.Join(out, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(committed, f.Name())
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v; generate it with: go generate ./api/...", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is not what the types generate; regenerate with: go generate ./api/...", path)
			}
		}
	}
	if runs != 4 {
		t.Errorf("generate.go has %d controller-gen lines, want 4 (deepcopy of spec and of this package, the CRD, RBAC)", runs)
	}
}
