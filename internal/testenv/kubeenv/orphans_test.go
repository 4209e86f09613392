package kubeenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestKillOrphans records a child as if a test binary that has exited had
// started it, and checks that the sweep kills it and drops the record, and
// that a record whose pid now names another process kills nothing.
func TestKillOrphans(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // os.TempDir(): a private orphanDir

	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })

	procs, err := children(os.Getpid(), []string{"sleep"})
	if err != nil || len(procs) != 1 || procs[0].pid != sleeper.Process.Pid {
		t.Fatalf("children(self, sleep) = %v, %v; want pid %d", procs, err, sleeper.Process.Pid)
	}

	// The owner: a process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatalf("run true: %v", err)
	}
	if err := os.MkdirAll(orphanDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(orphanDir(), strconv.Itoa(gone.Process.Pid))
	stale := fmt.Sprintf("%d %s\n%d 1\n", procs[0].pid, procs[0].start, os.Getpid()) // the second: our pid with a wrong start time
	if err := os.WriteFile(record, []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}

	killOrphans()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("the recorded orphan %d still runs after killOrphans", sleeper.Process.Pid)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Fatalf("record %s still there after the sweep (%v)", record, err)
	}
	// We are alive: the entry with a wrong start time was not taken for us.
}
