package sim

import (
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Entry is one step of a rollout's timeline, as `switchyard plan` shows it.
type Entry struct {
	// At is when the step starts if nothing holds the rollout (hooks,
	// gates and manual pauses passing at once, checks passing).
	At time.Duration `json:"at"`
	// Kind is the step's kind; Weight the canary's share during it.
	Kind   rollout.StepKind `json:"kind"`
	Weight int              `json:"weight"`
	// What says what the step does, Waits what it waits for ("" when
	// it only takes time).
	What  string `json:"what"`
	Waits string `json:"waits,omitempty"`
}

// Timeline is the nominal schedule of p's steps: each with its start and
// the canary weight, and what the judge does where it changes the steps.
func Timeline(p Policy) []Entry {
	var out []Entry
	var at time.Duration
	w := 0
	canary := p.Strategy == rollout.StrategyCanary
	seq := p.Judge == JudgeSequential
	for i, st := range p.Steps {
		if st.Kind == rollout.StepSetWeight && i+1 < len(p.Steps) && p.Steps[i+1].Kind == rollout.StepPause {
			// The pause's line says the weight.
			w = st.Weight
			continue
		}
		e := Entry{At: at, Kind: st.Kind, Weight: w}
		switch st.Kind {
		case rollout.StepHealthGate:
			e.What, e.Waits = "health gate", "every target of the new version to be healthy"
		case rollout.StepHook:
			e.What, e.Waits = "hook "+st.Name, "the hook to succeed"
			if st.Timeout > 0 {
				e.Waits += fmt.Sprintf(" (timeout %s)", st.Timeout)
			}
		case rollout.StepGate:
			if st.Name != "" {
				e.What, e.Waits = "gate "+st.Name, "the webhook to approve"
			} else {
				e.What, e.Waits = "gate", "`switchyard promote`"
			}
		case rollout.StepSetWeight:
			w = st.Weight
			e.Weight = w
			e.What = fmt.Sprintf("%d%% to the new version", w)
		case rollout.StepPause:
			if st.Duration == 0 {
				e.What, e.Waits = fmt.Sprintf("pause at %d%%", w), "`switchyard promote`"
				break
			}
			e.What = fmt.Sprintf("%d%% for %s", w, st.Duration)
			if w == 0 {
				e.What = fmt.Sprintf("preview for %s: the new version reached only through routing rules", st.Duration)
			}
			if !seq && p.Gated && canary {
				e.Waits = fmt.Sprintf("every check to pass at %d%% (after the pause)", w)
			}
			at += st.Duration
		case rollout.StepSwitch:
			switch {
			case canary && seq:
				e.What = fmt.Sprintf("hold at %d%% until the judge decides", w)
				if p.Sequential.MaxDuration > 0 {
					e.Waits = fmt.Sprintf("a promotion (then 100%%) or a rollback; at most until %s after the first traffic step (maxDuration), then a person", p.Sequential.MaxDuration)
				}
			case canary && !seq && p.Gated:
				e.What, e.Waits = "switch: 100% to the new version", "every check to pass at the last weight"
			default:
				e.What = "switch: 100% to the new version"
			}
			w = 100
		case rollout.StepBake:
			e.Weight = 100
			e.What = fmt.Sprintf("bake for %s at 100%%: analysis watches, a failure switches back", st.Duration)
			at += st.Duration
		default:
			e.What = string(st.Kind)
		}
		out = append(out, e)
	}
	return out
}

// PlanCases are the cases `switchyard plan` simulates for a service: a
// bad canary (5% errors), a subtle one (0.6%), a slow one (its slowest
// 2% take 200 ms more) and a good one.
func PlanCases(svc Service) []Scenario {
	cases := []Scenario{Bad(svc), Subtle(svc), Slow(svc), Good(svc)}
	for i, prefix := range []string{"bad", "subtle", "slow", "good"} {
		cases[i].Name = prefix + ": " + cases[i].Name
	}
	return cases
}

// CaseResult is what the simulation says of one case.
type CaseResult struct {
	Case string `json:"case"`
	Bad  bool   `json:"bad"`
	// Latency says the case slows requests (Summary.Slowed counts them).
	Latency bool    `json:"latency"`
	Summary Summary `json:"summary"`
}

// Plan simulates every case under p, runs times each.
func Plan(p Policy, cases []Scenario, runs int, seed uint64) ([]CaseResult, error) {
	var out []CaseResult
	for _, sc := range cases {
		res, err := Runs(sc, p, runs, seed)
		if err != nil {
			return nil, err
		}
		out = append(out, CaseResult{Case: sc.Name, Bad: sc.Bad, Latency: sc.Canary.SlowAdd > 0, Summary: Summarize(res)})
	}
	return out, nil
}
