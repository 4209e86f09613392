package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
)

// TestBlueGreenSwitchesAndBack is the first acceptance point: a
// blue-green deploy exits 0 and every new request reaches the new version;
// deploying the old one switches back.
func TestBlueGreenSwitchesAndBack(t *testing.T) {
	blue1, blue2, green := startBackend(t, "blue"), startBackend(t, "blue"), startBackend(t, "green")
	d := newDaemon(t, serviceConfig("web", map[string][]string{
		"blue":  {blue1.addr, blue2.addr},
		"green": {green.addr},
	}, "blue", `  strategy:
    blueGreen: {scaleDownDelay: 1m}
`))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 2 })
	if got := d.get(50); got["blue"] != 50 {
		t.Fatalf("before the deploy: answers %v, want all 50 from blue", got)
	}

	d.mustRun(0, "deploy", "web", "--version", "green", "--strategy", "blue-green", "--wait", "--timeout", "1m")
	if got := d.get(100); got["green"] != 100 {
		t.Fatalf("after deploying green: answers %v, want all 100 from green", got)
	}
	st := d.status("web")
	if st.StableVersion != "green" || st.Phase != rollout.PhaseStable || st.LastRollout == nil || st.LastRollout.Result != rollout.ResultPromoted {
		t.Fatalf("after deploying green: status %+v", st)
	}
	if st.Weights["green"] != 100 {
		t.Fatalf("weights = %v, want green 100", st.Weights)
	}

	d.mustRun(0, "deploy", "web", "--version", "blue", "--strategy", "blue-green", "--wait", "--timeout", "1m")
	if got := d.get(100); got["blue"] != 100 {
		t.Fatalf("after deploying blue again: answers %v, want all 100 from blue", got)
	}
}

// TestCanaryStepsPromoteAbort walks canary steps, stops at `pause: {}` until
// promote, and checks that abort puts all traffic back on stable at once.
func TestCanaryStepsPromoteAbort(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	d := newDaemon(t, serviceConfig("web", map[string][]string{
		"blue":  {blue.addr},
		"green": {green.addr},
	}, "blue", `  routing:
    rules:
      - header: {name: x-canary, value: "true"}
        to: canary
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {duration: 1s}
        - setWeight: 30
        - pause: {}
        - setWeight: 60
        - pause: {}
`))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })

	d.mustRun(0, "deploy", "web", "--version", "green")
	st := d.waitStatus("web", 20*time.Second, "the first indefinite pause", func(st admin.ServiceStatus) bool {
		return st.Weights["green"] == 30 && st.Step.Kind == string(rollout.StepPause)
	})
	// A pause without duration waits for promote: shown Paused, as Argo Rollouts does.
	if st.Phase != rollout.PhasePaused || st.CanaryVersion != "green" || st.Weights["blue"] != 70 {
		t.Fatalf("at the pause: %+v", st)
	}
	// The pause holds: the step does not move on without a promote.
	idx := st.Step.Index
	time.Sleep(1500 * time.Millisecond) // the absence of progress can only be observed over time
	if st2 := d.status("web"); st2.Step.Index != idx || st2.Weights["green"] != 30 {
		t.Fatalf("pause {} moved on by itself: step %d → %d, weights %v", idx, st2.Step.Index, st2.Weights)
	}
	split := d.get(1000)
	if split["green"] < 240 || split["green"] > 360 {
		t.Fatalf("at 30%%: %v, want about 300 green answers of 1000", split)
	}
	if got := d.get(20, "x-canary", "true"); got["green"] != 20 {
		t.Fatalf("x-canary: true answers %v, want all from green", got)
	}

	d.mustRun(0, "promote", "web")
	d.waitStatus("web", 10*time.Second, "the second pause at 60%", func(st admin.ServiceStatus) bool {
		return st.Weights["green"] == 60 && st.Step.Index > idx
	})

	d.mustRun(0, "abort", "web", "--reason", "e2e")
	st = d.status("web")
	if st.Weights["blue"] != 100 || st.StableVersion != "blue" || st.LastRollout == nil || st.LastRollout.Result != rollout.ResultAborted {
		t.Fatalf("after abort: %+v", st)
	}
	if got := d.get(100); got["blue"] != 100 {
		t.Fatalf("right after abort: answers %v, want all 100 from blue", got)
	}

	// retry restarts the aborted rollout; promote --full finishes it.
	d.mustRun(0, "retry", "web")
	d.waitStatus("web", 10*time.Second, "the retried rollout", func(st admin.ServiceStatus) bool {
		return st.Rollout != nil && st.Weights["green"] > 0
	})
	d.mustRun(0, "promote", "web", "--full")
	d.waitStatus("web", 10*time.Second, "green promoted", func(st admin.ServiceStatus) bool {
		return st.StableVersion == "green" && st.Weights["green"] == 100 && st.Rollout == nil
	})
	// rollback returns to blue while it is kept.
	d.mustRun(0, "rollback", "web")
	if got := d.get(50); got["blue"] != 50 {
		t.Fatalf("after rollback: answers %v, want all 50 from blue", got)
	}
	hist := d.mustRun(0, "history", "web")
	for _, want := range []string{"aborted", "promoted"} {
		if !strings.Contains(hist, want) {
			t.Errorf("history lacks %q:\n%s", want, hist)
		}
	}
}

// TestResumesAfterKill9 kills serve in the middle of a canary and starts it
// again: the rollout continues from the same step and weights.
func TestResumesAfterKill9(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	d := newDaemon(t, serviceConfig("web", map[string][]string{
		"blue":  {blue.addr},
		"green": {green.addr},
	}, "blue", `  strategy:
    canary:
      steps:
        - setWeight: 25
        - pause: {}
        - setWeight: 50
        - pause: {}
`))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })
	d.mustRun(0, "deploy", "web", "--version", "green")
	before := d.waitStatus("web", 20*time.Second, "the pause at 25%", func(st admin.ServiceStatus) bool {
		return st.Weights["green"] == 25 && st.Step.Kind == string(rollout.StepPause)
	})

	d.kill(syscall.SIGKILL)
	d.start()
	after := d.status("web")
	if after.Step.Index != before.Step.Index || after.Weights["green"] != 25 || after.Weights["blue"] != 75 ||
		after.CanaryVersion != "green" || after.Rollout == nil || after.Rollout.ID != before.Rollout.ID {
		t.Fatalf("after kill -9 and restart:\n got step %d weights %v canary %q rollout %+v\nwant step %d weights %v canary green rollout #%d",
			after.Step.Index, after.Weights, after.CanaryVersion, after.Rollout, before.Step.Index, before.Weights, before.Rollout.ID)
	}
	d.waitStatus("web", 10*time.Second, "green healthy again", func(st admin.ServiceStatus) bool { return healthy(st, "green") == 1 })
	split := d.get(400)
	if split["green"] < 60 || split["green"] > 140 {
		t.Fatalf("after restart at 25%%: %v, want about 100 green answers of 400", split)
	}
	d.mustRun(0, "promote", "web")
	d.waitStatus("web", 10*time.Second, "the pause at 50%", func(st admin.ServiceStatus) bool { return st.Weights["green"] == 50 })
	d.mustRun(0, "promote", "web")
	d.waitStatus("web", 10*time.Second, "green promoted", func(st admin.ServiceStatus) bool {
		return st.StableVersion == "green" && st.LastRollout != nil && st.LastRollout.Result == rollout.ResultPromoted
	})
}

// TestUnhealthyVersionRolledBack deploys a version whose targets never pass
// their health checks: deploy --wait exits 1 and says why.
func TestUnhealthyVersionRolledBack(t *testing.T) {
	blue := startBackend(t, "blue")
	d := newDaemon(t, serviceConfig("web", map[string][]string{
		"blue": {blue.addr},
		"red":  {"127.0.0.1:1"}, // nothing listens there
	}, "blue", `  progressDeadline: 2s
  strategy:
    canary: {preset: "canary 20%/1s"}
`))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })
	out := d.mustRun(1, "deploy", "web", "--version", "red", "--wait", "--timeout", "1m")
	if !strings.Contains(out, "rolled-back") || !strings.Contains(out, "red") {
		t.Fatalf("deploy --wait output does not say the rollout was rolled back and why:\n%s", out)
	}
	if got := d.get(50); got["blue"] != 50 {
		t.Fatalf("after the rollback: answers %v, want all 50 from blue", got)
	}
}

// TestDeployWhileRunningRefused checks that a second deploy is refused
// unless --force.
func TestDeployWhileRunningRefused(t *testing.T) {
	blue, green, red := startBackend(t, "blue"), startBackend(t, "green"), startBackend(t, "red")
	d := newDaemon(t, serviceConfig("web", map[string][]string{
		"blue": {blue.addr}, "green": {green.addr}, "red": {red.addr},
	}, "blue", `  strategy:
    canary:
      steps: [{setWeight: 10}, {pause: {}}]
`))
	d.start()
	d.mustRun(0, "deploy", "web", "--version", "green")
	out := d.mustRun(1, "deploy", "web", "--version", "red")
	if !strings.Contains(out, "--force") && !strings.Contains(out, "in progress") {
		t.Fatalf("refusal does not explain itself:\n%s", out)
	}
	d.mustRun(0, "deploy", "web", "--version", "red", "--force")
	st := d.status("web")
	if st.CanaryVersion != "red" {
		t.Fatalf("after --force: canary %q, want red", st.CanaryVersion)
	}
}

func healthy(st admin.ServiceStatus, version string) int {
	n := 0
	for _, t := range st.Targets {
		if t.Version == version && t.Healthy {
			n++
		}
	}
	return n
}

// TestDeployWithTargetsSurvivesRestart deploys a version the file does not
// list, by --targets, then restarts serve: the version and its traffic stay.
func TestDeployWithTargetsSurvivesRestart(t *testing.T) {
	blue, red := startBackend(t, "blue"), startBackend(t, "red")
	d := newDaemon(t, serviceConfig("web", map[string][]string{"blue": {blue.addr}}, "blue", ""))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })
	d.mustRun(0, "deploy", "web", "--version", "red", "--targets", red.addr, "--strategy", "blue-green", "--wait", "--timeout", "1m")
	if got := d.get(20); got["red"] != 20 {
		t.Fatalf("after deploying red by --targets: %v, want all 20 from red", got)
	}
	d.kill(syscall.SIGTERM)
	d.start()
	st := d.waitStatus("web", 10*time.Second, "red healthy after the restart", func(st admin.ServiceStatus) bool { return healthy(st, "red") == 1 })
	if st.StableVersion != "red" {
		t.Fatalf("after restart: stable %q, want red", st.StableVersion)
	}
	if got := d.get(20); got["red"] != 20 {
		t.Fatalf("after restart: %v, want all 20 from red", got)
	}
	d.mustRun(0, "rollback", "web")
	if got := d.get(20); got["blue"] != 20 {
		t.Fatalf("after rollback: %v, want all 20 from blue", got)
	}
}
