package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/testenv"
)

const validService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: 127.0.0.1:18080
  versions:
    - name: blue
      targets: ["127.0.0.1:9001"]
    - name: green
      targets: ["127.0.0.1:9101"]
  stable: blue
  strategy:
    canary:
      steps:
        - setWeight: 5
        - pause: {duration: 30s}
`

// TestBrokenConfigs checks ten kinds of broken configuration: each gives
// exit 2 and a message naming the line and the field.
func TestBrokenConfigs(t *testing.T) {
	testenv.Integration(t)
	bin := testenv.BuildSwitchyard(t)
	tests := []struct {
		name    string
		old     string // replaced in validService
		new     string
		line    string // "file:LINE" must appear
		mention []string
	}{
		{"unknown key", "  stable: blue\n", "  stable: blue\n  stabel: green\n", ":13", []string{"stabel"}},
		{"wrong case", "        - setWeight: 5", "        - SetWeight: 5", ":16", []string{"SetWeight"}},
		{"duplicate key", "  stable: blue\n", "  stable: blue\n  stable: green\n", ":13", []string{"stable"}},
		{"weight over 100", "setWeight: 5", "setWeight: 120", ":16", []string{"setWeight", "120", "0-100"}},
		{"bad duration", "duration: 30s", "duration: 30 seconds", ":17", []string{"30 seconds"}},
		{"stable not a version", "  stable: blue", "  stable: purple", ":12", []string{"stable", "purple"}},
		{"target without port", `["127.0.0.1:9101"]`, `["localhost"]`, ":11", []string{"targets", "localhost"}},
		{"bad listen", "listen: 127.0.0.1:18080", "listen: 127.0.0.1:99999", ":6", []string{"listen", "99999"}},
		{"wrong apiVersion", "switchyard.dev/v1alpha1", "switchyard.dev/v9", ":1", []string{"apiVersion", "v9"}},
		{"duplicate version", "    - name: green", "    - name: blue", ":10", []string{"blue"}},
		{"bad preset", "      steps:\n        - setWeight: 5\n        - pause: {duration: 30s}\n", "      preset: Canary200Percent\n", ":15", []string{"preset", "Canary200Percent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(validService, tt.old) {
				t.Fatalf("test case does not apply: %q not in the valid service", tt.old)
			}
			file := filepath.Join(t.TempDir(), "web.yaml")
			os.WriteFile(file, []byte(strings.Replace(validService, tt.old, tt.new, 1)), 0o600)
			out, err := exec.Command(bin, "validate", "-f", file).CombinedOutput()
			if code := exitCode(err); code != 2 {
				t.Fatalf("validate: exit %d, want 2\n%s", code, out)
			}
			msg := string(out)
			if !strings.Contains(msg, "web.yaml"+tt.line) {
				t.Errorf("message does not name web.yaml%s:\n%s", tt.line, msg)
			}
			for _, m := range tt.mention {
				if !strings.Contains(msg, m) {
					t.Errorf("message does not mention %q:\n%s", m, msg)
				}
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "web.yaml")
		os.WriteFile(file, []byte(validService), 0o600)
		if out, err := exec.Command(bin, "validate", "-f", file).CombinedOutput(); err != nil {
			t.Fatalf("validate of a valid file: %v\n%s", err, out)
		}
	})
}

// TestBrokenApplyKeepsServing applies a broken file to a running daemon: it
// is refused with exit 2, and the running configuration keeps serving.
func TestBrokenApplyKeepsServing(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	config := serviceConfig("web", map[string][]string{"blue": {blue.addr}, "green": {green.addr}}, "blue", "")
	d := newDaemon(t, config)
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })

	broken := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(broken, []byte(strings.Replace(strings.ReplaceAll(config, "%LISTEN%", d.listen), "stable: blue", "stable: purple", 1)), 0o600)
	out := d.mustRun(2, "apply", "-f", broken)
	if !strings.Contains(out, "purple") || !strings.Contains(out, "broken.yaml:") {
		t.Fatalf("apply error does not name the file, line and value:\n%s", out)
	}
	if got := d.get(20); got["blue"] != 20 {
		t.Fatalf("after a refused apply: %v, want all 20 from blue", got)
	}

	// A good apply takes effect: green becomes reachable by a header rule.
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte(strings.ReplaceAll(config, "%LISTEN%", d.listen)+`  routing:
    rules:
      - header: {name: x-canary, value: "true"}
        to: canary
`), 0o600)
	d.mustRun(0, "apply", "-f", good)
	if got := d.get(20); got["blue"] != 20 {
		t.Fatalf("after a good apply: %v, want all 20 from blue", got)
	}
}

// TestDemo runs the README's first command to its end.
func TestDemo(t *testing.T) {
	testenv.Integration(t)
	bin := testenv.BuildSwitchyard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--exit", "--listen", testenv.FreeAddr(t))
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"promoted", "rolled-back", "0 failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}
