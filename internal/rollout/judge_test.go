package rollout

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// judgeWorld is a machine with a canary of green judged by the sequential
// judge, steps [setWeight 5, pause 30s, setWeight 20, extra..., pause
// 30s], at its first pause; bake adds a canary bake.
func judgeWorld(t *testing.T, extra []spec.Step, bake time.Duration) *asyncWorld {
	t.Helper()
	w5, w20 := 5, 20
	half := &spec.Pause{Duration: spec.D(30 * time.Second)}
	steps := append([]spec.Step{{SetWeight: &w5}, {Pause: half}, {SetWeight: &w20}}, extra...)
	steps = append(steps, spec.Step{Pause: half})
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Strategy: spec.Strategy{Canary: &spec.Canary{Steps: steps, BakeDuration: spec.D(bake)}},
		Analysis: &spec.Analysis{Judge: spec.JudgeSequential},
	}}
	w, acts := deployed(t, svc)
	if !hasStartAnalysis(acts) {
		t.Fatalf("deploy with judge: sequential and no metrics started no analysis: %v", acts)
	}
	if r := w.s.Rollout; r == nil || r.Weight != 5 || !r.Judge {
		t.Fatalf("setup: rollout %+v, want judged, at 5%%", r)
	}
	return w
}

// deployed defaults svc (stable blue, a version green), makes both healthy
// and deploys green; it returns the world and the deploy's actions.
func deployed(t *testing.T, svc *spec.Service) (*asyncWorld, []Action) {
	t.Helper()
	svc.Default()
	m, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	w := &asyncWorld{t: t, m: m, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	w.s, _ = m.Reconcile(State{}, w.now)
	w.step(HealthChanged{Version: "blue", Healthy: 1, Total: 1})
	acts := w.step(Deploy{Version: "green", By: "test"})
	w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1})
	return w, acts
}

func hasStartAnalysis(acts []Action) bool {
	for _, a := range acts {
		if _, ok := a.(StartAnalysis); ok {
			return true
		}
	}
	return false
}

func watching(window time.Duration) Verdict {
	return Verdict{Metric: JudgeMetric, Result: VerdictPassed, Samples: 100, Window: window,
		Checkpoint: json.RawMessage(`{"n":1}`)}
}

// TestJudgeRampFollowsSchedule: while the judge watches (passed verdicts,
// no decision), the weight rises on schedule; at the end of the steps the
// rollout holds at its last weight instead of switching.
func TestJudgeRampFollowsSchedule(t *testing.T) {
	w := judgeWorld(t, nil, 0)
	w.now = w.now.Add(15 * time.Second)
	w.step(watching(10 * time.Second))
	w.now = w.now.Add(16 * time.Second)
	w.step(Tick{})
	if r := w.s.Rollout; r.Weight != 20 {
		t.Fatalf("after the 30s pause with the judge watching: weight %d, want 20", r.Weight)
	}
	w.now = w.now.Add(31 * time.Second)
	w.step(watching(10 * time.Second))
	w.step(Tick{})
	r := w.s.Rollout
	if r == nil || r.Weight != 20 || r.Steps[r.StepIndex].Kind != StepSwitch {
		t.Fatalf("steps ran out without the judge's promotion: rollout %+v, want held at the switch at 20%%", r)
	}
	if string(r.JudgeCheckpoint) != `{"n":1}` {
		t.Errorf("checkpoint kept in the run: %q", r.JudgeCheckpoint)
	}
	if d := w.s.Describe(w.now); d == "" {
		t.Error("no description of the held rollout")
	}
	// A person may still promote --full.
	w.step(Promote{By: "alice", Full: true})
	if w.s.Rollout != nil || w.s.Last.Result != ResultPromoted {
		t.Fatalf("promote --full: %+v", w.s.Last)
	}
}

// TestJudgePromotesAtOnce: the judge's promotion at the first pause skips
// the remaining weight steps and timed pauses and the bake.
func TestJudgePromotesAtOnce(t *testing.T) {
	w := judgeWorld(t, nil, 5*time.Minute)
	w.now = w.now.Add(10 * time.Second)
	v := watching(10 * time.Second)
	v.Promote, v.Reason = true, "after 1000 canary requests the canary is within the margins"
	acts := w.step(v)
	if w.s.Rollout != nil || w.s.Last.Result != ResultPromoted {
		t.Fatalf("after the judge's promotion: rollout %+v last %+v, want promoted at once", w.s.Rollout, w.s.Last)
	}
	if !strings.Contains(w.s.Last.Reason, "the sequential judge promoted it: after 1000 canary requests") {
		t.Errorf("reason %q does not say the judge promoted it, and why", w.s.Last.Reason)
	}
	if w.s.Stable != "green" || w.s.Weights["green"] != 100 {
		t.Errorf("after promotion: stable %s weights %v", w.s.Stable, w.s.Weights)
	}
	var kinds []string
	for _, a := range acts {
		if h, ok := a.(RecordHistory); ok {
			kinds = append(kinds, h.Entry.Kind)
		}
	}
	if !strings.Contains(strings.Join(kinds, " "), "judge-promote") {
		t.Errorf("history kinds %v, want a judge-promote entry", kinds)
	}
}

// TestJudgePromotionWaitsForPerson: a manual pause still waits for a
// person after the judge promoted; resuming it finishes the promotion.
func TestJudgePromotionWaitsForPerson(t *testing.T) {
	w := judgeWorld(t, []spec.Step{{Pause: &spec.Pause{}}}, 0)
	v := watching(10 * time.Second)
	v.Promote = true
	w.step(v)
	r := w.s.Rollout
	if r == nil || r.Steps[r.StepIndex].Kind != StepPause || r.Steps[r.StepIndex].Duration != 0 {
		t.Fatalf("after the judge's promotion: rollout %+v, want waiting at the manual pause", r)
	}
	w.step(Promote{By: "alice"})
	if w.s.Rollout != nil || w.s.Last.Result != ResultPromoted {
		t.Fatalf("after alice promoted the manual pause: rollout %+v, want promoted", w.s.Rollout)
	}
}

// TestJudgeRollbackAndHold: a failed judge verdict rolls back at once,
// whatever the threshold, with the judge's sentence; a hold pauses.
func TestJudgeRollbackAndHold(t *testing.T) {
	w := judgeWorld(t, nil, 0)
	w.step(Verdict{Metric: JudgeMetric, Result: VerdictInconclusive, Hold: true, Reason: "no decision after 30m0s (maxDuration)"})
	if r := w.s.Rollout; r == nil || !r.Paused {
		t.Fatalf("after a hold: %+v, want paused", r)
	}
	w.step(Resume{By: "alice"})
	w.step(Verdict{Metric: JudgeMetric, Result: VerdictFailed, Breaker: true, Reason: "3 of 3 errors came from the canary"})
	if w.s.Rollout != nil || w.s.Last.Result != ResultRolledBack {
		t.Fatalf("after the judge's rollback: %+v", w.s.Last)
	}
	if want := "the sequential judge at step 3/6 (green 5%): 3 of 3 errors came from the canary"; w.s.Last.Reason != want {
		t.Errorf("reason %q, want %q", w.s.Last.Reason, want)
	}
}

// TestJudgeBlueGreenBake: a blue-green switch is not held by the judge;
// its bake ends on the judge's promotion, not on the clock.
func TestJudgeBlueGreenBake(t *testing.T) {
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Strategy: spec.Strategy{BlueGreen: &spec.BlueGreen{BakeDuration: spec.D(time.Minute)}},
		Analysis: &spec.Analysis{Judge: spec.JudgeSequential},
	}}
	w, _ := deployed(t, svc)
	r := w.s.Rollout
	if r == nil || !r.Switched || r.Steps[r.StepIndex].Kind != StepBake {
		t.Fatalf("rollout %+v, want switched and baking", r)
	}
	w.now = w.now.Add(2 * time.Minute)
	w.step(watching(10 * time.Second))
	w.step(Tick{})
	if w.s.Rollout == nil {
		t.Fatal("the bake ended on the clock without the judge's promotion")
	}
	v := watching(10 * time.Second)
	v.Promote = true
	w.step(v)
	if w.s.Rollout != nil || w.s.Last.Result != ResultPromoted || w.s.Stable != "green" {
		t.Fatalf("after the judge's promotion in the bake: %+v", w.s.Last)
	}
}

// TestAppliedWeights: the weights the router confirmed stay apart from
// the weights asked of it while it fails to apply them.
func TestAppliedWeights(t *testing.T) {
	w := judgeWorld(t, nil, 0)
	w.step(RouterApplied{Weights: w.s.Weights})
	if w.s.Applied["green"] != 5 {
		t.Fatalf("applied %v after the router confirmed 5%%", w.s.Applied)
	}
	w.now = w.now.Add(31 * time.Second)
	w.step(watching(10 * time.Second))
	w.step(Tick{})
	if w.s.Weights["green"] != 20 {
		t.Fatalf("weights %v, want the 20%% step", w.s.Weights)
	}
	w.step(RouterFailed{Weights: w.s.Weights, Error: "nginx: [emerg] unexpected end of file"})
	if w.s.Applied["green"] != 5 || w.s.RouterError == "" {
		t.Fatalf("after the router failed: applied %v, error %q; want 5%% still in force", w.s.Applied, w.s.RouterError)
	}
}
