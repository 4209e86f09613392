package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// canaryWorld is a machine with an analysed canary of green at
// [setWeight 5, pause 1m, setWeight 50, pause 1m], at its first pause.
func canaryWorld(t *testing.T, threshold int) *asyncWorld {
	t.Helper()
	w5, w50 := 5, 50
	minute := &spec.Pause{Duration: spec.D(time.Minute)}
	min := 99.0
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Strategy: spec.Strategy{Canary: &spec.Canary{Steps: []spec.Step{{SetWeight: &w5}, {Pause: minute}, {SetWeight: &w50}, {Pause: minute}}}},
		Analysis: &spec.Analysis{Interval: spec.D(10 * time.Second), Threshold: threshold,
			Metrics: []spec.Metric{{Name: spec.MetricRequestSuccessRate, ThresholdRange: spec.ThresholdRange{Min: &min}}}},
	}}
	svc.Default()
	m, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	w := &asyncWorld{t: t, m: m, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	w.s, _ = m.Reconcile(State{}, w.now)
	w.step(HealthChanged{Version: "blue", Healthy: 1, Total: 1})
	w.step(Deploy{Version: "green", By: "test"})
	w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1})
	if r := w.s.Rollout; r == nil || r.Weight != 5 || r.Steps[r.StepIndex].Kind != StepPause {
		t.Fatalf("setup: rollout %+v, want at the 5%% pause", r)
	}
	return w
}

func pass(window time.Duration) Verdict {
	return Verdict{Metric: spec.MetricRequestSuccessRate, Result: VerdictPassed, Value: 100, Samples: 500, Window: window}
}

// TestVerdictCountsForItsWeight: a pass measured at 5% does not end the 50%
// pause; one measured wholly at 50% does.
func TestVerdictCountsForItsWeight(t *testing.T) {
	w := canaryWorld(t, 2)
	w.now = w.now.Add(20 * time.Second)
	w.step(pass(10 * time.Second))
	w.now = w.now.Add(40 * time.Second) // the first pause is over
	w.step(Tick{})
	if r := w.s.Rollout; r.Weight != 50 {
		t.Fatalf("after the first pause with a pass: weight %d, want 50", r.Weight)
	}
	w.now = w.now.Add(61 * time.Second)
	w.step(Tick{})
	if r := w.s.Rollout; r == nil || r.Weight != 50 {
		t.Fatalf("the 5%% pass ended the 50%% pause: rollout %+v", r)
	}
	if d := w.s.Describe(w.now); !strings.Contains(d, "waiting for analysis") {
		t.Errorf("Describe = %q, want it waiting for analysis", d)
	}
	// A window that began before the weight changed does not count either.
	w.step(pass(2 * time.Minute))
	if w.s.Rollout == nil {
		t.Fatal("a pass whose window began at 5% promoted the rollout")
	}
	w.step(pass(10 * time.Second))
	if w.s.Rollout != nil || w.s.Last.Result != ResultPromoted {
		t.Fatalf("after a pass measured at 50%%: rollout %+v, want promoted", w.s.Rollout)
	}
}

// TestPromoteRefusedWhileAnalysisHolds: a promote that would change nothing
// is refused, naming what holds the step and the override.
func TestPromoteRefusedWhileAnalysisHolds(t *testing.T) {
	w := canaryWorld(t, 2)
	_, _, err := w.m.Step(w.s, Promote{By: "alice"}, w.now)
	if !errors.Is(err, ErrCannotPromote) || !strings.Contains(err.Error(), "request-success-rate has no verdict yet") || !strings.Contains(err.Error(), "--full") {
		t.Fatalf("promote with no verdict: %v, want a refusal naming the check and --full", err)
	}
	w.step(Verdict{Metric: spec.MetricRequestSuccessRate, Result: VerdictInconclusive, Samples: 3, Reason: "3 requests", Window: 10 * time.Second})
	if _, _, err := w.m.Step(w.s, Promote{By: "alice"}, w.now); err == nil || !strings.Contains(err.Error(), "is inconclusive") {
		t.Fatalf("promote on an inconclusive check: %v, want a refusal saying so", err)
	}
	w.now = w.now.Add(time.Second)
	w.step(pass(time.Second))
	w.step(Promote{By: "alice"})
	if w.s.Rollout.Weight != 50 {
		t.Fatalf("promote after a pass: weight %d, want the next step's 50", w.s.Rollout.Weight)
	}
}

// TestConsecutiveErrorLimit: checks without a verdict pause the rollout at
// the limit, saying why; it never promotes; resume counts afresh.
func TestConsecutiveErrorLimit(t *testing.T) {
	w := canaryWorld(t, 2)
	unjudged := Verdict{Metric: spec.MetricRequestSuccessRate, Result: VerdictError, Reason: "prometheus: connection refused"}
	for i := 1; i < spec.DefaultConsecutiveErrorLimit; i++ {
		w.step(unjudged)
		if w.s.Rollout.Paused {
			t.Fatalf("paused after %d unjudged checks, want %d", i, spec.DefaultConsecutiveErrorLimit)
		}
	}
	acts := w.step(unjudged)
	if !w.s.Rollout.Paused || w.s.Phase != PhasePaused {
		t.Fatalf("after %d unjudged checks: paused %v, phase %s; want paused", spec.DefaultConsecutiveErrorLimit, w.s.Rollout.Paused, w.s.Phase)
	}
	notes := only[Notify](acts)
	if len(notes) == 0 || !strings.Contains(notes[len(notes)-1].Message, "connection refused") || !strings.Contains(notes[len(notes)-1].Message, "consecutiveErrorLimit") {
		t.Fatalf("notifications %+v, want one saying why it paused", notes)
	}
	w.now = w.now.Add(10 * time.Minute)
	w.step(Tick{})
	if w.s.Rollout == nil || w.s.Rollout.Weight != 5 {
		t.Fatal("a paused rollout advanced")
	}
	w.step(Resume{By: "alice"})
	w.step(unjudged)
	if w.s.Rollout.Paused {
		t.Fatal("one unjudged check after resume paused again; the count should restart")
	}
}

// TestBreakerRollsBackAtOnce: a failed breaker verdict rolls back without
// waiting for threshold failed checks.
func TestBreakerRollsBackAtOnce(t *testing.T) {
	w := canaryWorld(t, 5)
	w.step(Verdict{Metric: "breaker", Result: VerdictFailed, Value: 80, Samples: 50, Breaker: true, Reason: "40 of 50 requests failed"})
	if w.s.Rollout != nil || w.s.Last.Result != ResultRolledBack || !strings.Contains(w.s.Last.Reason, "breaker: 40 of 50") {
		t.Fatalf("after a tripped breaker: last %+v, want rolled back at once", w.s.Last)
	}
}

// TestCanaryBake: with bakeDuration, a canary at 100% keeps its analysis;
// failed checks in the bake switch back to the previous version at once.
func TestCanaryBake(t *testing.T) {
	min := 99.0
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Strategy: spec.Strategy{Canary: &spec.Canary{Preset: "AllAtOnce", BakeDuration: spec.D(5 * time.Minute)}},
		Analysis: &spec.Analysis{Interval: spec.D(10 * time.Second), Threshold: 2,
			Metrics: []spec.Metric{{Name: spec.MetricRequestSuccessRate, ThresholdRange: spec.ThresholdRange{Min: &min}}}},
	}}
	svc.Default()
	m, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	w := &asyncWorld{t: t, m: m, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	w.s, _ = m.Reconcile(State{}, w.now)
	w.step(HealthChanged{Version: "blue", Healthy: 1, Total: 1})
	w.step(Deploy{Version: "green", By: "test"})
	w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1})
	w.now = w.now.Add(10 * time.Second)
	w.step(pass(10 * time.Second)) // the switch needs a pass
	if r := w.s.Rollout; r == nil || !r.Switched || r.Steps[r.StepIndex].Kind != StepBake || w.s.Weights["green"] != 100 {
		t.Fatalf("after the switch: rollout %+v, weights %v; want baking at green 100%%", r, w.s.Weights)
	}
	failed := Verdict{Metric: spec.MetricRequestSuccessRate, Result: VerdictFailed, Value: 90, Samples: 500, Window: 10 * time.Second}
	w.now = w.now.Add(10 * time.Second)
	w.step(failed)
	w.now = w.now.Add(10 * time.Second)
	w.step(failed)
	if w.s.Last == nil || w.s.Last.Result != ResultRolledBack || w.s.Stable != "blue" || w.s.Weights["blue"] != 100 {
		t.Fatalf("after failed checks in the bake: last %+v, stable %s, weights %v; want switched back to blue", w.s.Last, w.s.Stable, w.s.Weights)
	}
}

// TestRemoveVersion: a version added by a deploy can be removed once
// nothing uses it; the stable one, one in a rollout and one the spec lists
// are refused, saying why.
func TestRemoveVersion(t *testing.T) {
	w := newAsyncWorld(t)
	w.step(Abort{By: "test"})
	w.step(Deploy{Version: "purple", Targets: []string{"p:1"}, By: "test"})
	for _, tc := range []struct{ version, want string }{
		{"blue", "listed in spec.versions"},
		{"purple", "rollout #2 of purple"},
		{"nope", "unknown version"},
	} {
		if _, _, err := w.m.Step(w.s, RemoveVersion{Version: tc.version, By: "alice"}, w.now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RemoveVersion(%s) = %v, want an error saying %q", tc.version, err, tc.want)
		}
	}
	w.step(Abort{By: "test"})
	acts := w.step(RemoveVersion{Version: "purple", By: "alice"})
	if _, ok := w.s.Versions["purple"]; ok {
		t.Fatal("purple is still a version after RemoveVersion")
	}
	if r := only[RetireVersion](acts); len(r) != 1 || r[0].Version != "purple" {
		t.Fatalf("RetireVersion actions %+v, want purple retired", r)
	}
}

// TestPreviewWithoutTrafficDoesNotPause: before a blue-green switch the new
// version takes no weighted traffic, so checks without data do not pause
// the preview; after the switch they do.
func TestPreviewWithoutTrafficDoesNotPause(t *testing.T) {
	min := 99.0
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Strategy: spec.Strategy{BlueGreen: &spec.BlueGreen{PreviewDuration: spec.D(10 * time.Minute), BakeDuration: spec.D(10 * time.Minute)}},
		Analysis: &spec.Analysis{Interval: spec.D(10 * time.Second),
			Metrics: []spec.Metric{{Name: spec.MetricRequestSuccessRate, ThresholdRange: spec.ThresholdRange{Min: &min}}}},
	}}
	w, _ := deployed(t, svc)
	none := Verdict{Metric: spec.MetricRequestSuccessRate, Result: VerdictInconclusive, Reason: "0 requests"}
	for range 2 * spec.DefaultConsecutiveErrorLimit {
		w.now = w.now.Add(10 * time.Second)
		w.step(none)
	}
	if r := w.s.Rollout; r == nil || r.Paused || r.Switched {
		t.Fatalf("preview without traffic: rollout %+v, want previewing, not paused", r)
	}
	w.now = w.now.Add(10 * time.Minute)
	w.step(Tick{})
	if r := w.s.Rollout; r == nil || !r.Switched {
		t.Fatalf("after the preview: %+v, want switched (baking)", r)
	}
	for range spec.DefaultConsecutiveErrorLimit {
		w.now = w.now.Add(10 * time.Second)
		w.step(none)
	}
	if r := w.s.Rollout; r == nil || !r.Paused {
		t.Fatalf("a bake without data: %+v, want paused after consecutiveErrorLimit", r)
	}
}
