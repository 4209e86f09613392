package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/daemon"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// run executes the CLI with args and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const cliService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {duration: 200ms}}]
`

func backend(t *testing.T, version string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, version) }))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startServer runs a daemon in-process and returns the flags that reach it.
func startServer(t *testing.T) []string {
	t.Helper()
	doc := strings.NewReplacer("LISTEN", testenv.FreeAddr(t), "BLUE", backend(t, "blue"), "GREEN", backend(t, "green")).Replace(cliService)
	svcs, err := spec.Parse("cli.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Services: svcs, StateDir: t.TempDir(), Admin: "127.0.0.1:0", Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitFor(t, 10*time.Second, func() bool { return d.AdminURL() != "" }, "the admin API")
	return []string{"--server", d.AdminURL(), "--token", d.Token()}
}

func TestValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(strings.NewReplacer("LISTEN", "127.0.0.1:8080", "BLUE", "127.0.0.1:9001", "GREEN", "127.0.0.1:9002").Replace(cliService)), 0o600)
	os.WriteFile(bad, []byte(strings.NewReplacer("LISTEN", "127.0.0.1:8080", "BLUE", "127.0.0.1:9001", "GREEN", "127.0.0.1:9002", "setWeight: 50", "setWeight: 500").Replace(cliService)), 0o600)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"valid", []string{"validate", "-f", good}, ExitOK, "valid: 1 service(s): web"},
		{"valid as json", []string{"validate", "-f", good, "-o", "json"}, ExitOK, `"valid": true`},
		{"invalid names line and field", []string{"validate", "-f", bad}, ExitUsage, "bad.yaml:13: service \"web\": spec.strategy.canary.steps[0].setWeight is 500"},
		{"missing file", []string{"validate", "-f", filepath.Join(dir, "nope.yaml")}, ExitUsage, "nope.yaml"},
		{"no -f", []string{"validate"}, ExitUsage, "pass -f FILE"},
		{"unknown flag", []string{"validate", "--nope"}, ExitUsage, "unknown flag"},
		{"unknown output", []string{"version", "-o", "xml"}, ExitUsage, `-o "xml"`},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "unknown command"},
		{"controller with a missing kubeconfig", []string{"controller", "--kubeconfig", filepath.Join(dir, "nope.kubeconfig")}, ExitUsage, "kubeconfig"},
		{"controller with a bad --egress-allow", []string{"controller", "--egress-allow", "nope"}, ExitUsage, "--egress-allow"},
		{"deploy without --version", []string{"deploy", "web"}, ExitUsage, "--version is required"},
		{"deploy with a bad strategy", []string{"deploy", "web", "--version", "v2", "--strategy", "yolo"}, ExitUsage, "canary or blue-green"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.contains) {
				t.Errorf("switchyard %s: exit %d, want %d; output lacks %q?\nstdout: %s\nstderr: %s", strings.Join(tt.args, " "), code, tt.code, tt.contains, out, errOut)
			}
		})
	}
}

func TestNoServer(t *testing.T) {
	code, _, errOut := run(t, "status", "--state-dir", t.TempDir(), "--server", "", "--token", "")
	if code != ExitFailed || !strings.Contains(errOut, "switchyard serve") {
		t.Errorf("status with no server: exit %d, stderr %q; want 1 and a hint to start serve", code, errOut)
	}
}

func TestCommandsAgainstServer(t *testing.T) {
	flags := startServer(t)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		_, out, _ := run(t, append([]string{"status", "web", "-o", "json"}, flags...)...)
		var st admin.ServiceStatus
		json.Unmarshal([]byte(out), &st)
		healthy := 0
		for _, tg := range st.Targets {
			if tg.Healthy {
				healthy++
			}
		}
		return healthy == 2
	}, "both versions healthy")

	code, out, errOut := run(t, append([]string{"deploy", "web", "--version", "green", "--wait", "--timeout", "30s", "-o", "json"}, flags...)...)
	if code != ExitOK {
		t.Fatalf("deploy --wait: exit %d\n%s%s", code, out, errOut)
	}
	var st admin.ServiceStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("deploy --wait -o json printed no status: %v\n%s", err, out)
	}
	if st.LastRollout == nil || st.LastRollout.Result != rollout.ResultPromoted || st.StableVersion != "green" {
		t.Fatalf("deploy --wait -o json: %+v", st)
	}

	code, out, _ = run(t, append([]string{"status", "web", "-o", "yaml"}, flags...)...)
	var fromYAML admin.ServiceStatus
	if err := yaml.Unmarshal([]byte(out), &fromYAML); code != ExitOK || err != nil || fromYAML.StableVersion != "green" {
		t.Fatalf("status -o yaml: exit %d, err %v\n%s", code, err, out)
	}

	code, out, _ = run(t, append([]string{"status"}, flags...)...)
	if code != ExitOK || !strings.Contains(out, "NAME") || !strings.Contains(out, "green promoted") {
		t.Fatalf("status table: exit %d\n%s", code, out)
	}

	code, _, errOut = run(t, append([]string{"promote", "web"}, flags...)...)
	if code != ExitFailed || !strings.Contains(errOut, "no rollout in progress") {
		t.Fatalf("promote with no rollout: exit %d, stderr %q", code, errOut)
	}

	code, _, errOut = run(t, append([]string{"deploy", "web", "--version", "purple"}, flags...)...)
	if code != ExitUsage || !strings.Contains(errOut, "purple") {
		t.Fatalf("deploy of an unknown version: exit %d, stderr %q; want 2 naming it", code, errOut)
	}

	code, out, _ = run(t, append([]string{"history", "web", "-o", "json"}, flags...)...)
	var h []rollout.HistoryEntry
	if err := json.Unmarshal([]byte(out), &h); code != ExitOK || err != nil || len(h) == 0 {
		t.Fatalf("history -o json: exit %d, err %v\n%s", code, err, out)
	}
}

func TestProgressLine(t *testing.T) {
	st := admin.ServiceStatus{
		Name: "web", Phase: rollout.PhaseProgressing, StableVersion: "blue", CanaryVersion: "green",
		Weights: rollout.Weights{"blue": 75, "green": 25},
		Step:    admin.StepStatus{Index: 2, Total: 5, Description: "pause 30s (12s left)"},
		Targets: []admin.TargetStatus{{Version: "blue", Healthy: true}, {Version: "green", Healthy: false}},
		LastVerdicts: []rollout.VerdictRecord{
			{Metric: "request-success-rate", Result: rollout.VerdictPassed},
		},
	}
	want := "web Progressing step 3/5 (pause 30s) weights blue=75%,green=25% healthy 1/2 request-success-rate=passed"
	if got := progressLine(st); got != want {
		t.Errorf("progressLine =\n %q\nwant\n %q", got, want)
	}
	var b bytes.Buffer
	writeStatus(&b, st, palette{})
	for _, w := range []string{"web  Progressing  stable blue  canary green", "step     3/5  pause 30s (12s left)", "blue=75%,green=25%"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("writeStatus lacks %q:\n%s", w, b.String())
		}
	}
	if strings.Contains(b.String(), "\x1b[") {
		t.Errorf("plain palette wrote colour codes:\n%q", b.String())
	}
}
