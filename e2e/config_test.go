package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestDemo runs the README's first command to its end: it ends by itself
// and leaves no state directory behind.
func TestDemo(t *testing.T) {
	testenv.Integration(t)
	bin := testenv.BuildSwitchyard(t)
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "demo", "--listen", testenv.FreeAddr(t))
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo (it must end by itself): %v\n%s", err, out)
	}
	for _, want := range []string{"promoted", "rolled-back", "0 failed", "demo --stay"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	assertNoDemoDirs(t, tmp)
}

// TestDemoStay keeps the demo serving with --stay: the commands it
// suggests run this binary, and SIGTERM ends it cleanly.
func TestDemoStay(t *testing.T) {
	testenv.Integration(t)
	bin := testenv.BuildSwitchyard(t)
	d := startDemo(t, bin, "--stay")
	testenv.WaitFor(t, 2*time.Minute, func() bool { return strings.Contains(d.out.String(), "Try next") }, "the demo's hints")
	out := d.out.String()
	for _, want := range []string{bin + " status web --state-dir " + d.stateDir(t), "Ctrl-C or SIGTERM here stops the demo"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo --stay output lacks %q:\n%s", want, out)
		}
	}
	// The hint works as printed.
	status, err := exec.Command(bin, "status", "web", "--state-dir", d.stateDir(t)).CombinedOutput()
	if err != nil || !strings.Contains(string(status), "v2") {
		t.Errorf("suggested status command: %v\n%s", err, status)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.wait(t); code != 0 {
		t.Errorf("demo --stay after SIGTERM exited %d, want 0:\n%s", code, d.out.String())
	}
	assertNoDemoDirs(t, d.tmp)
}

// TestDemoSignal stops the demo in its scripted part: it exits, and
// removes its state directory.
func TestDemoSignal(t *testing.T) {
	testenv.Integration(t)
	bin := testenv.BuildSwitchyard(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			d := startDemo(t, bin)
			dir := d.stateDir(t)
			d.cmd.Process.Signal(sig)
			if code := d.wait(t); code == 0 {
				t.Errorf("demo stopped by %v exited 0, want non-zero:\n%s", sig, d.out.String())
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("after %v the demo's state directory %s is still there (stat: %v)", sig, dir, err)
			}
			assertNoDemoDirs(t, d.tmp)
		})
	}
}

type demoProc struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	tmp    string
	exited chan struct{}
}

// startDemo starts `switchyard demo ARGS` with its own TMPDIR.
func startDemo(t *testing.T, bin string, args ...string) *demoProc {
	t.Helper()
	d := &demoProc{out: &lockedBuffer{}, tmp: t.TempDir(), exited: make(chan struct{})}
	d.cmd = exec.Command(bin, append([]string{"demo", "--listen", testenv.FreeAddr(t)}, args...)...)
	d.cmd.Env = append(os.Environ(), "NO_COLOR=1", "TMPDIR="+d.tmp)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
	})
	return d
}

// stateDir waits for the demo to name its state directory and returns it.
func (d *demoProc) stateDir(t *testing.T) string {
	t.Helper()
	var dir string
	testenv.WaitFor(t, 30*time.Second, func() bool {
		out := d.out.String()
		i := strings.Index(out, "(config: ")
		if i < 0 {
			return false
		}
		rest := out[i+len("(config: "):]
		j := strings.Index(rest, "/demo.yaml)")
		if j < 0 {
			return false
		}
		dir = rest[:j]
		return true
	}, "the demo's state directory in its output")
	return dir
}

// wait waits for the demo to exit and returns its exit code.
func (d *demoProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not exit in 30s:\n%s", d.out.String())
	}
	return d.cmd.ProcessState.ExitCode()
}

// assertNoDemoDirs fails if a switchyard-demo-* directory is left in tmp.
func assertNoDemoDirs(t *testing.T, tmp string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(tmp, "switchyard-demo-*"))
	if len(left) > 0 {
		t.Errorf("demo left %v behind", left)
	}
}
