package rollout

import (
	"testing"
	"time"
)

// BenchmarkStep measures Machine.Step on a typical canary event mix: a
// deploy, health reports, verdicts every few ticks, router confirmations,
// a promote for the pause without duration, until the rollout ends; then
// the next version. Each iteration is one Step.
func BenchmarkStep(b *testing.B) {
	m, err := New(simSpecs()[1]) // canary steps with two analysis checks
	if err != nil {
		b.Fatal(err)
	}
	now := epoch
	s, _ := m.Reconcile(State{}, now)
	versions := []string{"green", "blue"}
	script := func(i int, s State) Event {
		if s.Rollout == nil {
			if i%7 == 0 {
				v := versions[0]
				if s.Stable == v {
					v = versions[1]
				}
				return Deploy{Version: v}
			}
			return HealthChanged{Version: s.Stable, Healthy: 2, Total: 2}
		}
		switch i % 8 {
		case 0:
			return HealthChanged{Version: s.Rollout.Version, Healthy: 1, Total: 1}
		case 1:
			return Verdict{Metric: "request-success-rate", Result: VerdictPassed, Value: 99.9, Samples: 1000}
		case 2:
			return Verdict{Metric: "request-duration", Result: VerdictPassed, Value: 120, Samples: 1000}
		case 3:
			return RouterApplied{Weights: s.Weights}
		case 4:
			return Promote{}
		}
		return Tick{}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now = now.Add(10 * time.Second)
		ns, _, err := m.Step(s, script(i, s), now)
		if err == nil {
			s = ns
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}
