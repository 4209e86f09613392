package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testenv"
)

// TestTestShExitCodes runs scripts/test.sh the ways that skip a pass
// (--short, --no-race, package arguments) on one small package, and checks
// its exit code and its closing line: an all-pass run exits 0, a failing
// one 1, a bad option 2.
func TestTestShExitCodes(t *testing.T) {
	testenv.RequireBinary(t, "bash") // a failure under CI=true, never a silent skip
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		// slow cases build and vet a package each; -short runs one of them.
		slow bool
	}{
		{"short", []string{"--short", "./scripts/testsummary"}, 0, "total: ", false},
		{"no-race", []string{"--no-install", "--no-race", "./scripts/testsummary"}, 0, "total: ", true},
		{"package args", []string{"--no-install", "./scripts/testsummary"}, 0, "total: ", true},
		{"failing package", []string{"--short", "./no/such/package"}, 1, "FAILED", true},
		{"unknown option", []string{"--frobnicate"}, 2, "unknown option --frobnicate", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.slow && testing.Short() {
				t.Skip("builds and vets a package; runs without -short")
			}
			cache := t.TempDir()
			cmd := exec.Command("bash", append([]string{"test.sh"}, tc.args...)...)
			cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache, "SWITCHYARD_CACHE=", "KUBEBUILDER_ASSETS=", "TEST_LOG="+filepath.Join(cache, "log.json"), "CI=")
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("run test.sh: %v", err)
			}
			if code != tc.wantCode {
				t.Fatalf("test.sh %s exited %d, want %d; output:\n%s", strings.Join(tc.args, " "), code, tc.wantCode, out)
			}
			if !strings.Contains(string(out), tc.wantOut) {
				t.Errorf("test.sh %s output lacks %q:\n%s", strings.Join(tc.args, " "), tc.wantOut, out)
			}
		})
	}
}
