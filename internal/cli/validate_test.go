package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/admin"
)

// TestValidateReportsEverything: one run shows the decoder's problems (an
// unknown key) and Validate's (a bad weight) together, in text and in the
// admin API's JSON error shape.
func TestValidateReportsEverything(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	doc := strings.NewReplacer("LISTEN", "127.0.0.1:8080", "BLUE", "127.0.0.1:9001", "GREEN", "127.0.0.1:9002",
		"setWeight: 50", "setWeight: 500", "  stable: blue\n", "  stable: blue\n  colour: red\n").Replace(cliService)
	os.WriteFile(bad, []byte(doc), 0o600)
	wants := []string{"spec.colour: unknown field", "spec.strategy.canary.steps[0].setWeight is 500"}

	code, out, errOut := run(t, "validate", "-f", bad)
	if code != ExitUsage {
		t.Errorf("validate exit %d, want %d", code, ExitUsage)
	}
	for _, want := range wants {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\nstdout: %s\nstderr: %s", want, out, errOut)
		}
	}

	code, out, errOut = run(t, "validate", "-f", bad, "-o", "json")
	if code != ExitUsage {
		t.Errorf("validate -o json exit %d, want %d", code, ExitUsage)
	}
	var resp admin.ErrorResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("validate -o json printed no JSON (%v):\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if resp.Code != admin.CodeInvalid {
		t.Errorf("validate -o json code %q, want %q", resp.Code, admin.CodeInvalid)
	}
	for _, want := range wants {
		if !strings.Contains(resp.Error, want) {
			t.Errorf("validate -o json error lacks %q: %q", want, resp.Error)
		}
	}
	if errOut != "" {
		t.Errorf("validate -o json wrote to stderr: %s", errOut)
	}
}
