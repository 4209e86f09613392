package rollout

import (
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// TestSteps checks how every strategy shape compiles to steps.
func TestSteps(t *testing.T) {
	no, yes := false, true
	hg, sw := Step{Kind: StepHealthGate}, Step{Kind: StepSwitch}
	w := func(n int) Step { return Step{Kind: StepSetWeight, Weight: n} }
	p := func(d time.Duration) Step { return Step{Kind: StepPause, Duration: d} }
	tests := []struct {
		name     string
		strategy spec.Strategy
		kind     StrategyKind
		want     []Step
	}{
		{"preset Canary10Percent5Minutes", spec.Strategy{Canary: &spec.Canary{Preset: "Canary10Percent5Minutes"}}, StrategyCanary,
			[]Step{hg, w(10), p(5 * time.Minute), sw}},
		{"preset AllAtOnce", spec.Strategy{Canary: &spec.Canary{Preset: "AllAtOnce"}}, StrategyCanary, []Step{hg, sw}},
		{"flagger stepWeight", spec.Strategy{Canary: &spec.Canary{StepWeight: 30, MaxWeight: 50, Interval: spec.D(time.Minute)}}, StrategyCanary,
			[]Step{hg, w(30), p(time.Minute), w(50), p(time.Minute), sw}},
		{"no canary block deployed as canary", spec.Strategy{BlueGreen: &spec.BlueGreen{}}, StrategyCanary,
			[]Step{hg, w(10), p(time.Minute), w(50), p(time.Minute), sw}},
		{"blue-green defaults", spec.Strategy{BlueGreen: &spec.BlueGreen{AutoPromote: &yes}}, StrategyBlueGreen, []Step{hg, sw}},
		{"blue-green everything", spec.Strategy{BlueGreen: &spec.BlueGreen{AutoPromote: &no, PreviewDuration: spec.D(time.Minute),
			BakeDuration: spec.D(5 * time.Minute)}}, StrategyBlueGreen,
			[]Step{hg, p(time.Minute), {Kind: StepGate}, sw, {Kind: StepBake, Duration: 5 * time.Minute}}},
		{"canary block deployed as blue-green", spec.Strategy{Canary: &spec.Canary{Preset: "AllAtOnce"}}, StrategyBlueGreen, []Step{hg, sw}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{Stable: "blue", Strategy: tt.strategy}}
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
				t.Errorf("Steps(%s) = %v, want %v", tt.kind, got, tt.want)
			}
		})
	}
}

// TestStepDescription checks the names people see for steps.
func TestStepDescription(t *testing.T) {
	tests := []struct {
		step Step
		want string
	}{
		{Step{Kind: StepHealthGate}, "health gate"},
		{Step{Kind: StepSetWeight, Weight: 25}, "setWeight 25"},
		{Step{Kind: StepPause, Duration: 30 * time.Second}, "pause 30s"},
		{Step{Kind: StepPause}, "pause (wait for promote)"},
		{Step{Kind: StepGate}, "gate (wait for promote)"},
		{Step{Kind: StepSwitch}, "switch"},
		{Step{Kind: StepBake, Duration: 10 * time.Minute}, "bake 10m0s"},
	}
	for _, tt := range tests {
		if got := StepDescription(tt.step); got != tt.want {
			t.Errorf("StepDescription(%+v) = %q, want %q", tt.step, got, tt.want)
		}
	}
}
