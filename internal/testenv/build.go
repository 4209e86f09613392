package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// switchyardBuild is the one build of cmd/switchyard per test binary. It is
// package state on purpose: every test in the binary shares the build.
var switchyardBuild struct {
	once sync.Once
	path string
	err  error
}

// BuildSwitchyard builds ./cmd/switchyard once per test binary and returns
// the path of the binary. The binary lives in a directory named after the
// test process under os.TempDir()/switchyard-testbin; directories left by
// test processes that have exited are removed by the next build.
func BuildSwitchyard(t testing.TB) string {
	t.Helper()
	switchyardBuild.once.Do(func() {
		switchyardBuild.path, switchyardBuild.err = buildSwitchyard()
	})
	if switchyardBuild.err != nil {
		t.Fatalf("build switchyard: %v", switchyardBuild.err)
	}
	return switchyardBuild.path
}

// buildSwitchyard runs go build for cmd/switchyard at the module root.
func buildSwitchyard() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	base := filepath.Join(os.TempDir(), "switchyard-testbin")
	sweepStale(base)
	dir := filepath.Join(base, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build dir: %w", err)
	}
	out := filepath.Join(dir, "switchyard")
	cmd := exec.Command(goBinary(), "build", "-o", out, "./cmd/switchyard")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/switchyard in %s: %w\n%s", root, err, b)
	}
	return out, nil
}

// sweepStale removes build directories of test processes that no longer run.
func sweepStale(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(filepath.Join(base, e.Name()))
		}
	}
}

// ModuleRoot returns the directory of the main module's go.mod, as reported
// by `go env GOMOD` from the current directory (a test's package directory).
func ModuleRoot() (string, error) {
	out, err := exec.Command(goBinary(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// goBinary returns the go command of the toolchain running the tests when it
// can be found, so that tests build with the same Go as they run under.
func goBinary() string {
	if p := LookBinary("go"); p != "" {
		return p
	}
	return filepath.Join(runtimeGOROOT(), "bin", "go")
}
