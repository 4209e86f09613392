package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/daemon"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// pausedService waits for promote at its second step, and has a version,
// red, that takes no part in the rollouts and never answers its probes.
const pausedService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
    - {name: red, targets: ["RED"]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
`

// startDoc runs a daemon in-process for doc and returns the client and the
// flags that reach it.
func startDoc(t *testing.T, doc string) (*admin.Client, []string) {
	t.Helper()
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
	return admin.NewClient(d.AdminURL(), d.Token()), []string{"--server", d.AdminURL(), "--token", d.Token()}
}

func statusOf(t *testing.T, flags []string) admin.ServiceStatus {
	t.Helper()
	code, out, errOut := run(t, append([]string{"status", "web", "-o", "json"}, flags...)...)
	var st admin.ServiceStatus
	if err := json.Unmarshal([]byte(out), &st); code != ExitOK || err != nil {
		t.Fatalf("status -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	return st
}

// TestStatusLabels follows a rollout through a pause without duration, a
// promotion, a rollback and a second deploy of the version rolled back,
// and checks what status says at each.
func TestStatusLabels(t *testing.T) {
	doc := strings.NewReplacer("LISTEN", testenv.FreeAddr(t), "BLUE", backend(t, "blue"), "GREEN", backend(t, "green"),
		"RED", testenv.FreeAddr(t)).Replace(pausedService)
	_, flags := startDoc(t, doc)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		healthy := 0
		for _, tg := range statusOf(t, flags).Targets {
			if tg.Healthy {
				healthy++
			}
		}
		return healthy == 2
	}, "blue and green healthy")

	if code, out, errOut := run(t, append([]string{"deploy", "web", "--version", "green"}, flags...)...); code != ExitOK {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	var st admin.ServiceStatus
	testenv.WaitFor(t, 10*time.Second, func() bool {
		st = statusOf(t, flags)
		return st.Step.Kind == string(rollout.StepPause)
	}, "the rollout at its pause")
	if st.Phase != rollout.PhasePaused {
		t.Errorf("phase at a pause without duration = %s, want %s", st.Phase, rollout.PhasePaused)
	}
	_, text, _ := run(t, append([]string{"status", "web"}, flags...)...)
	if !strings.Contains(text, "Paused") || !strings.Contains(text, "switchyard promote web") {
		t.Errorf("status at a pause without duration does not say it waits for promote:\n%s", text)
	}
	if line := progressLine(st); !strings.Contains(line, "healthy 2/2") {
		t.Errorf("progress line counts targets of red, which takes no part: %s", line)
	}

	if code, out, errOut := run(t, append([]string{"promote", "web"}, flags...)...); code != ExitOK {
		t.Fatalf("promote: exit %d\n%s%s", code, out, errOut)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return statusOf(t, flags).StableVersion == "green" }, "green promoted")
	if code, out, errOut := run(t, append([]string{"rollback", "web"}, flags...)...); code != ExitOK {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	st = statusOf(t, flags)
	if l := st.LastRollout; l == nil || l.Version != "green" || l.From != "blue" || l.Result != rollout.ResultRolledBack {
		t.Errorf("lastRollout after a rollback = %+v, want version green, from blue, rolled-back", l)
	}
	if st.PreviousVersion != "green" {
		t.Errorf("previous after a rollback = %q, want green", st.PreviousVersion)
	}

	if code, out, errOut := run(t, append([]string{"deploy", "web", "--version", "green"}, flags...)...); code != ExitOK {
		t.Fatalf("second deploy: exit %d\n%s%s", code, out, errOut)
	}
	st = statusOf(t, flags)
	if st.CanaryVersion != "green" || st.PreviousVersion != "" {
		t.Errorf("while green is the canary: canary %q, previous %q; want green and none", st.CanaryVersion, st.PreviousVersion)
	}
	_, text, _ = run(t, append([]string{"status", "web"}, flags...)...)
	if strings.Contains(text, "kept for rollback") {
		t.Errorf("status shows a version kept for rollback while it is the canary:\n%s", text)
	}
}

// lockedWriter is a bytes.Buffer safe to read while a command writes it.
type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestWatchHeartbeat: status --watch without a terminal prints a line at
// least every heartbeat, even when nothing changes.
func TestWatchHeartbeat(t *testing.T) {
	c, _ := startServerClient(t)
	out := &lockedWriter{}
	e := &env{stdout: out, stderr: out, getenv: func(string) string { return "" }, output: "text", heartbeat: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.watch(ctx, c, "web", 0, 0) }()
	// Three lines that say the same (after their time stamp): printed
	// although nothing changed.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		last, same := lines[len(lines)-1], 0
		for _, l := range lines {
			if _, a, _ := strings.Cut(l, " "); strings.HasSuffix(last, " "+a) && a != "" {
				same++
			}
		}
		return same >= 3
	}, "three lines of an unchanging service")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
}

// startServerClient is startServer with a client.
func startServerClient(t *testing.T) (*admin.Client, []string) {
	t.Helper()
	doc := strings.NewReplacer("LISTEN", testenv.FreeAddr(t), "BLUE", backend(t, "blue"), "GREEN", backend(t, "green")).Replace(cliService)
	return startDoc(t, doc)
}
