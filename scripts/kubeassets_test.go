package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testenv"
)

// TestKubeAssetsCache checks kube-assets.sh's cache handling without a
// build: --print names a directory under SWITCHYARD_CACHE keyed by the
// release and the script's hash, --check fails until the three binaries are
// there, and with them present a plain run builds nothing and prints the
// directory as its last line.
func TestKubeAssetsCache(t *testing.T) {
	testenv.RequireBinary(t, "bash")
	cache := t.TempDir()
	run := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command("bash", append([]string{"kube-assets.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "SWITCHYARD_CACHE="+cache, "KUBE_VERSION=v1.37.2")
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run kube-assets.sh %v: %v", args, err)
		}
		return strings.TrimSpace(string(out)), code
	}

	dir, code := run("--print")
	want := regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Join(cache, "kube")) + `/v1\.37\.2-[0-9a-f]{12}$`)
	if code != 0 || !want.MatchString(dir) {
		t.Fatalf("kube-assets.sh --print = %q (exit %d), want %s", dir, code, want)
	}
	if _, code := run("--check"); code != 1 {
		t.Fatalf("kube-assets.sh --check with an empty cache exited %d, want 1", code)
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, code := run("--check"); code != 0 {
		t.Fatalf("kube-assets.sh --check with the binaries present exited %d, want 0", code)
	}
	out, code := run()
	lines := strings.Split(out, "\n")
	if code != 0 || lines[len(lines)-1] != dir {
		t.Fatalf("kube-assets.sh with the cache present: exit %d, output %q; want exit 0 and %s last", code, out, dir)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "kube")); len(entries) != 1 {
		t.Fatalf("cache holds %d entries after a no-op run, want only %s", len(entries), dir)
	}

	if _, code := run("--frobnicate"); code != 2 {
		t.Fatalf("kube-assets.sh --frobnicate exited %d, want 2", code)
	}
}
