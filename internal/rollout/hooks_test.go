package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// allHooks sets every lifecycle hook, each with its own timeout so a test
// can tell them apart.
func allHooks() *spec.Hooks {
	h := func(sec int) *spec.Hook {
		return &spec.Hook{Command: []string{"true"}, Timeout: spec.D(time.Duration(sec) * time.Second)}
	}
	return &spec.Hooks{
		BeforeInstall: h(1), AfterInstall: h(2), ApplicationStart: h(3), ValidateService: h(4),
		BeforeAllowTraffic: h(5), AfterAllowTraffic: h(6), AfterPromotion: h(7),
	}
}

// TestHookPlacement checks where each lifecycle hook lands in each strategy.
func TestHookPlacement(t *testing.T) {
	no := false
	hg, sw := Step{Kind: StepHealthGate}, Step{Kind: StepSwitch}
	w := func(n int) Step { return Step{Kind: StepSetWeight, Weight: n} }
	p := func(d time.Duration) Step { return Step{Kind: StepPause, Duration: d} }
	hk := func(name string, sec int) Step {
		return Step{Kind: StepHook, Name: name, Timeout: time.Duration(sec) * time.Second}
	}
	install := []Step{hg, hk("beforeInstall", 1), hk("afterInstall", 2), hk("applicationStart", 3), hk("validateService", 4)}
	steps := func(parts ...[]Step) []Step { return slices.Concat(parts...) }
	zero := 0
	tests := []struct {
		name     string
		strategy spec.Strategy
		hooks    *spec.Hooks
		kind     StrategyKind
		want     []Step
	}{
		{"canary", spec.Strategy{Canary: &spec.Canary{Preset: "Canary10Percent5Minutes"}}, allHooks(), StrategyCanary,
			steps(install, []Step{hk("beforeAllowTraffic", 5), w(10), p(5 * time.Minute), sw, hk("afterAllowTraffic", 6), hk("afterPromotion", 7)})},
		{"canary starting at weight 0", spec.Strategy{Canary: &spec.Canary{Steps: []spec.Step{{SetWeight: &zero}, {Pause: &spec.Pause{}}, {SetWeight: new(20)}}}},
			allHooks(), StrategyCanary,
			steps(install, []Step{w(0), p(0), hk("beforeAllowTraffic", 5), w(20), sw, hk("afterAllowTraffic", 6), hk("afterPromotion", 7)})},
		{"canary AllAtOnce", spec.Strategy{Canary: &spec.Canary{Preset: "AllAtOnce"}}, allHooks(), StrategyCanary,
			steps(install, []Step{hk("beforeAllowTraffic", 5), sw, hk("afterAllowTraffic", 6), hk("afterPromotion", 7)})},
		{"blue-green with preview, approval and bake", spec.Strategy{BlueGreen: &spec.BlueGreen{AutoPromote: &no,
			PreviewDuration: spec.D(time.Minute), BakeDuration: spec.D(5 * time.Minute)}}, allHooks(), StrategyBlueGreen,
			steps(install, []Step{p(time.Minute), {Kind: StepGate}, hk("beforeAllowTraffic", 5), sw, hk("afterAllowTraffic", 6),
				{Kind: StepBake, Duration: 5 * time.Minute}, hk("afterPromotion", 7)})},
		{"blue-green, validateService only", spec.Strategy{BlueGreen: &spec.BlueGreen{}},
			&spec.Hooks{ValidateService: &spec.Hook{Command: []string{"true"}}}, StrategyBlueGreen,
			[]Step{hg, {Kind: StepHook, Name: "validateService", Timeout: spec.DefaultHookTimeout}, sw}},
		{"no hooks", spec.Strategy{BlueGreen: &spec.BlueGreen{}}, nil, StrategyBlueGreen, []Step{hg, sw}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{Stable: "blue", Strategy: tt.strategy, Hooks: tt.hooks}}
			svc.Default()
			m, err := New(svc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Steps(tt.kind)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Steps(%s) =\n  %v\nwant\n  %v", tt.kind, got, tt.want)
			}
		})
	}
}

// hookWorld is a blue-green machine with the given hooks, green deployed
// and healthy.
func hookWorld(t *testing.T, hooks *spec.Hooks) (*asyncWorld, []Action) {
	t.Helper()
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1", "g:2"}}},
		Strategy: spec.Strategy{BlueGreen: &spec.BlueGreen{}},
		Hooks:    hooks,
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
	return w, w.step(HealthChanged{Version: "green", Healthy: 2, Total: 2})
}

// TestHooksRun walks a blue-green rollout through its hooks: each RunHook
// tells the hook about the rollout, and a failure after the switch
// switches back.
func TestHooksRun(t *testing.T) {
	hooks := &spec.Hooks{
		ValidateService: &spec.Hook{Command: []string{"true"}},
		AfterPromotion:  &spec.Hook{Command: []string{"true"}},
	}
	done := func(w *asyncWorld, r RunHook, err string) []Action {
		return w.step(HookDone{Rollout: r.Rollout, Step: r.Step, Attempt: r.Attempt, Name: r.Name, Err: err})
	}
	t.Run("promoted after every hook passed", func(t *testing.T) {
		w, acts := hookWorld(t, hooks)
		runs := only[RunHook](acts)
		if len(runs) != 1 {
			t.Fatalf("RunHook actions = %+v, want one for validateService", runs)
		}
		r := runs[0]
		if r.Name != "validateService" || r.Service != "web" || r.Version != "green" || r.From != "blue" ||
			!slices.Equal(r.Targets, []string{"g:1", "g:2"}) || !slices.Equal(r.FromTargets, []string{"b:1"}) ||
			r.Weight != 0 || r.Strategy != StrategyBlueGreen {
			t.Fatalf("RunHook = %+v, want validateService of web, green (g:1,g:2) from blue (b:1) at weight 0", r)
		}
		runs = only[RunHook](done(w, r, ""))
		if len(runs) != 1 || runs[0].Name != "afterPromotion" || runs[0].Weight != 100 {
			t.Fatalf("after validateService: RunHook = %+v, want afterPromotion at weight 100", runs)
		}
		if w.s.Rollout == nil || w.s.Stable != "green" {
			t.Fatalf("during afterPromotion: rollout %+v, stable %q; want green switched, rollout not yet promoted", w.s.Rollout, w.s.Stable)
		}
		done(w, runs[0], "")
		if w.s.Last == nil || w.s.Last.Result != ResultPromoted {
			t.Fatalf("last = %+v, want promoted", w.s.Last)
		}
	})
	t.Run("afterPromotion failure switches back", func(t *testing.T) {
		w, acts := hookWorld(t, hooks)
		runs := only[RunHook](done(w, only[RunHook](acts)[0], ""))
		done(w, runs[0], "exit status 1")
		if w.s.Last == nil || w.s.Last.Result != ResultRolledBack || w.s.Stable != "blue" ||
			!strings.Contains(w.s.Last.Reason, "hook afterPromotion failed: exit status 1") {
			t.Fatalf("last = %+v, stable %q; want rolled back to blue naming afterPromotion", w.s.Last, w.s.Stable)
		}
		if w.s.Weights["blue"] != 100 {
			t.Errorf("weights = %v, want blue 100", w.s.Weights)
		}
	})
}
