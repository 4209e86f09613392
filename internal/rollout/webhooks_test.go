package rollout

import (
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// TestWebhookPlacement checks where each step-type webhook lands, beside
// the lifecycle hooks, in each strategy.
func TestWebhookPlacement(t *testing.T) {
	const deadline = 10 * time.Minute // spec.DefaultProgressDeadline
	no := false
	retries := 1
	hg, sw := Step{Kind: StepHealthGate}, Step{Kind: StepSwitch}
	w := func(n int) Step { return Step{Kind: StepSetWeight, Weight: n} }
	p := func(d time.Duration) Step { return Step{Kind: StepPause, Duration: d} }
	gate := func(name string) Step { return Step{Kind: StepGate, Name: "webhook:" + name, Timeout: deadline} }
	// pre-rollout: two tries of 5s and a 1s backoff.
	pre := Step{Kind: StepHook, Name: "webhook:pre", Timeout: 11 * time.Second}
	bat := Step{Kind: StepHook, Name: spec.HookBeforeAllowTraffic, Timeout: spec.DefaultHookTimeout}
	webhooks := []spec.Webhook{
		{Name: "go", Type: spec.WebhookConfirmRollout, URL: "http://x.test/"},
		{Name: "pre", Type: spec.WebhookPreRollout, URL: "http://x.test/", Timeout: spec.D(5 * time.Second), Retries: &retries},
		{Name: "more", Type: spec.WebhookConfirmTrafficIncrease, URL: "http://x.test/"},
		{Name: "ship", Type: spec.WebhookConfirmPromotion, URL: "http://x.test/"},
		{Name: "tell", Type: spec.WebhookEvent, URL: "http://x.test/"},
		{Name: "done", Type: spec.WebhookPostRollout, URL: "http://x.test/"},
	}
	allow := &spec.Hooks{BeforeAllowTraffic: &spec.Hook{Command: []string{"true"}}}
	steps := func(parts ...[]Step) []Step { return slices.Concat(parts...) }
	start := []Step{hg, gate("go"), pre}
	tests := []struct {
		name     string
		strategy spec.Strategy
		hooks    *spec.Hooks
		kind     StrategyKind
		want     []Step
	}{
		{"canary: a gate before every increase, none for the same weight", spec.Strategy{Canary: &spec.Canary{Steps: []spec.Step{
			{SetWeight: new(0)}, {SetWeight: new(10)}, {Pause: &spec.Pause{}}, {SetWeight: new(10)}, {SetWeight: new(50)}}}}, allow, StrategyCanary,
			steps(start, []Step{w(0), gate("more"), bat, w(10), p(0), w(10), gate("more"), w(50), gate("ship"), sw})},
		{"canary AllAtOnce: confirm-promotion before beforeAllowTraffic", spec.Strategy{Canary: &spec.Canary{Preset: "AllAtOnce"}}, allow, StrategyCanary,
			steps(start, []Step{gate("ship"), bat, sw})},
		{"blue-green: approval, then confirm-promotion", spec.Strategy{BlueGreen: &spec.BlueGreen{AutoPromote: &no}}, nil, StrategyBlueGreen,
			steps(start, []Step{{Kind: StepGate}, gate("ship"), sw})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{Stable: "blue", Strategy: tt.strategy, Hooks: tt.hooks, Webhooks: webhooks}}
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
