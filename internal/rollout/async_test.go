package rollout

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// asyncWorld is a machine whose rollout of green runs the given steps
// between its health gate and its switch (hooks and named gates have no
// spec surface yet, so the plan is set directly on the state).
type asyncWorld struct {
	t   *testing.T
	m   *Machine
	s   State
	now time.Time
}

func newAsyncWorld(t *testing.T, steps ...Step) *asyncWorld {
	t.Helper()
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Strategy: spec.Strategy{BlueGreen: &spec.BlueGreen{}},
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
	w.s.Rollout.Steps = append(append([]Step{{Kind: StepHealthGate}}, steps...), Step{Kind: StepSwitch})
	return w
}

func (w *asyncWorld) step(e Event) []Action {
	w.t.Helper()
	next, acts, err := w.m.Step(w.s, e, w.now)
	if err != nil {
		w.t.Fatalf("Step(%s): %v", EventName(e), err)
	}
	if err := next.Validate(); err != nil {
		w.t.Fatalf("after %s: invalid state: %v", EventName(e), err)
	}
	w.s = next
	return acts
}

func only[A Action](acts []Action) []A {
	var out []A
	for _, a := range acts {
		if x, ok := a.(A); ok {
			out = append(out, x)
		}
	}
	return out
}

func TestHookStep(t *testing.T) {
	hook := Step{Kind: StepHook, Name: "validateService", Timeout: 30 * time.Second}
	t.Run("success advances", func(t *testing.T) {
		w := newAsyncWorld(t, hook)
		runs := only[RunHook](w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1}))
		if len(runs) != 1 || runs[0].Name != "validateService" || runs[0].Attempt != 1 || !runs[0].Deadline.Equal(w.now.Add(30*time.Second)) {
			t.Fatalf("RunHook actions = %+v, want one for validateService, attempt 1, deadline in 30s", runs)
		}
		w.now = w.now.Add(time.Second)
		if again := only[RunHook](w.step(Tick{})); len(again) != 0 {
			t.Fatalf("a tick started the hook again: %+v", again)
		}
		// A result for another attempt or step is stale.
		w.step(HookDone{Rollout: runs[0].Rollout, Step: runs[0].Step, Attempt: 2, Name: "validateService"})
		if w.s.Rollout.StepIndex != 1 {
			t.Fatalf("a stale HookDone moved the rollout to step %d", w.s.Rollout.StepIndex)
		}
		if d := w.s.Describe(w.now); !strings.Contains(d, "hook validateService (running, 29s left)") {
			t.Errorf("Describe = %q, want the hook running with 29s left", d)
		}
		w.step(HookDone{Rollout: runs[0].Rollout, Step: runs[0].Step, Attempt: 1, Name: "validateService", Output: "ok"})
		if w.s.Rollout != nil || w.s.Last.Result != ResultPromoted || w.s.Stable != "green" {
			t.Fatalf("after the hook succeeded: rollout %+v, last %+v; want green promoted", w.s.Rollout, w.s.Last)
		}
	})
	t.Run("failure rolls back", func(t *testing.T) {
		w := newAsyncWorld(t, hook)
		run := only[RunHook](w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1}))[0]
		w.step(HookDone{Rollout: run.Rollout, Step: run.Step, Attempt: run.Attempt, Name: run.Name, Err: "exit status 3"})
		if w.s.Last == nil || w.s.Last.Result != ResultRolledBack || !strings.Contains(w.s.Last.Reason, "hook validateService failed: exit status 3") {
			t.Fatalf("last rollout %+v, want rolled back naming the hook and its error", w.s.Last)
		}
	})
	t.Run("timeout rolls back even while paused", func(t *testing.T) {
		w := newAsyncWorld(t, hook)
		w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1})
		w.step(Pause{By: "test"})
		if next := w.s.Next(w.now); !next.Equal(w.now.Add(30 * time.Second)) {
			t.Errorf("Next = %v, want the hook's deadline", next)
		}
		w.now = w.now.Add(30 * time.Second)
		w.step(Tick{})
		if w.s.Last == nil || w.s.Last.Result != ResultRolledBack || !strings.Contains(w.s.Last.Reason, "did not finish within 30s") {
			t.Fatalf("last rollout %+v, want rolled back for the hook's timeout", w.s.Last)
		}
	})
	t.Run("restart runs it again, once", func(t *testing.T) {
		w := newAsyncWorld(t, hook)
		run := only[RunHook](w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1}))[0]
		restored, acts := w.m.Reconcile(w.s, w.now)
		again := only[RunHook](acts)
		if len(again) != 1 || !reflect.DeepEqual(again[0], run) {
			t.Fatalf("Reconcile's RunHook = %+v, want the same action %+v again", again, run)
		}
		w.s = restored
		w.step(HookDone{Rollout: run.Rollout, Step: run.Step, Attempt: run.Attempt, Name: run.Name})
		if w.s.Last == nil || w.s.Last.Result != ResultPromoted {
			t.Fatalf("last rollout %+v, want promoted", w.s.Last)
		}
		if _, acts := w.m.Reconcile(w.s, w.now); len(only[RunHook](acts)) != 0 {
			t.Fatal("Reconcile after the rollout ended started the hook again")
		}
	})
	t.Run("abort makes a late result stale", func(t *testing.T) {
		w := newAsyncWorld(t, hook)
		run := only[RunHook](w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1}))[0]
		w.step(Abort{By: "test"})
		w.step(HookDone{Rollout: run.Rollout, Step: run.Step, Attempt: run.Attempt, Name: run.Name, Err: "late"})
		if w.s.Last.Result != ResultAborted {
			t.Fatalf("a late HookDone changed the aborted rollout: %+v", w.s.Last)
		}
	})
	t.Run("promote cannot skip a hook", func(t *testing.T) {
		w := newAsyncWorld(t, hook)
		w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1})
		if _, _, err := w.m.Step(w.s, Promote{By: "test"}, w.now); err == nil || !strings.Contains(err.Error(), "runs hook validateService") {
			t.Fatalf("promote at a hook: %v, want a refusal naming the hook", err)
		}
	})
}

func TestNamedGateStep(t *testing.T) {
	gate := Step{Kind: StepGate, Name: "confirm-promotion", Timeout: time.Minute}
	t.Run("opens", func(t *testing.T) {
		w := newAsyncWorld(t, gate)
		opens := only[OpenGate](w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1}))
		if len(opens) != 1 || opens[0].Name != "confirm-promotion" {
			t.Fatalf("OpenGate actions = %+v, want one for confirm-promotion", opens)
		}
		o := opens[0]
		w.step(GateAnswered{Rollout: o.Rollout, Step: o.Step, Attempt: o.Attempt, Name: o.Name, Open: true})
		if w.s.Last == nil || w.s.Last.Result != ResultPromoted {
			t.Fatalf("after the gate opened: last %+v, want promoted", w.s.Last)
		}
	})
	t.Run("refused rolls back", func(t *testing.T) {
		w := newAsyncWorld(t, gate)
		o := only[OpenGate](w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1}))[0]
		w.step(GateAnswered{Rollout: o.Rollout, Step: o.Step, Attempt: o.Attempt, Name: o.Name, Message: "change freeze"})
		if w.s.Last == nil || w.s.Last.Result != ResultRolledBack || !strings.Contains(w.s.Last.Reason, "change freeze") {
			t.Fatalf("last %+v, want rolled back saying why", w.s.Last)
		}
	})
	t.Run("a person opens it", func(t *testing.T) {
		w := newAsyncWorld(t, gate)
		w.step(HealthChanged{Version: "green", Healthy: 1, Total: 1})
		w.step(Promote{By: "alice"})
		if w.s.Last == nil || w.s.Last.Result != ResultPromoted {
			t.Fatalf("after promote at a named gate: last %+v, want promoted", w.s.Last)
		}
		if w.s.Last.Pending != nil {
			t.Errorf("the gate's poll is still pending after a person opened it: %+v", w.s.Last.Pending)
		}
	})
}
