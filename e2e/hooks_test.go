package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/testenv"
)

// TestHookRerunAfterKill9: a hook running when serve is killed with SIGKILL
// is run again after the restart (hooks must be idempotent), and its
// success then lets the rollout go on.
func TestHookRerunAfterKill9(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	dir := t.TempDir()
	runs, release := filepath.Join(dir, "runs"), filepath.Join(dir, "release")
	script := filepath.Join(dir, "validate.sh")
	// Each run appends a line, then waits until the test releases it.
	body := "#!/bin/sh\necho run >> " + runs + "\nwhile [ ! -e " + release + " ]; do sleep 0.05; done\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, serviceConfig("web", map[string][]string{"blue": {blue.addr}, "green": {green.addr}}, "blue", `  strategy:
    canary:
      steps: [{setWeight: 25}, {pause: {duration: 1s}}]
  hooks:
    validateService: {command: ["`+script+`"], timeout: 2m}
`))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })
	d.mustRun(0, "deploy", "web", "--version", "green")
	countRuns := func() int {
		b, _ := os.ReadFile(runs)
		return strings.Count(string(b), "run")
	}
	if !testenv.Poll(20*time.Second, func() bool { return countRuns() == 1 }) {
		t.Fatalf("the hook did not start: %d runs", countRuns())
	}
	d.kill(syscall.SIGKILL)
	d.start()
	if !testenv.Poll(20*time.Second, func() bool { return countRuns() == 2 }) {
		t.Fatalf("after kill -9 and restart the hook ran %d times in all, want 2", countRuns())
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st := d.waitStatus("web", 30*time.Second, "the rollout's end", func(st admin.ServiceStatus) bool { return st.LastRollout != nil })
	if st.LastRollout.Result != rollout.ResultPromoted {
		t.Fatalf("after the rerun hook succeeded: %+v, want promoted", st.LastRollout)
	}
	if n := countRuns(); n != 2 {
		t.Errorf("hook ran %d times, want 2 (once, and again after the crash)", n)
	}
}
