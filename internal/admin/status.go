package admin

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// StatusOf renders the engine state st of the service name as the API
// shows it, at now. What only a mode knows — where it listens, its
// targets' health — is left for the caller to fill in (Targets is empty,
// not nil).
func StatusOf(name string, st rollout.State, now time.Time) ServiceStatus {
	out := ServiceStatus{
		Name:           name,
		Phase:          st.ShownPhase(),
		StableVersion:  st.Stable,
		Weights:        st.Weights,
		AppliedWeights: st.Applied,
		Targets:        []TargetStatus{},
		Message:        st.RouterError,
	}
	if out.Weights == nil {
		out.Weights = rollout.Weights{}
	}
	if prev := st.KeptPrevious(now); prev != "" {
		out.PreviousVersion = prev
		until := st.PreviousUntil
		out.PreviousUntil = &until
	}
	if run := st.Rollout; run != nil {
		out.CanaryVersion = run.Version
		out.Strategy = run.Strategy
		out.Paused = run.Paused
		out.FailedChecks = run.FailedChecks
		out.Threshold = run.Threshold
		out.Rollout = runStatus(run)
		out.Step = StepStatus{Index: run.StepIndex, Total: len(run.Steps)}
		if run.StepIndex < len(run.Steps) {
			out.Step.Kind = string(run.Steps[run.StepIndex].Kind)
			// Describe reads "step 3/6: pause 1m0s (12s left)"; the step
			// number is in Index and Total already.
			_, out.Step.Description, _ = strings.Cut(st.Describe(now), ": ")
		}
		out.LastVerdicts = sortedVerdicts(run.Verdicts)
	}
	if st.Last != nil {
		out.LastRollout = runStatus(st.Last)
		if st.Rollout == nil {
			out.LastVerdicts = sortedVerdicts(st.Last.Verdicts)
		}
	}
	return out
}

func runStatus(run *rollout.Run) *RolloutStatus {
	rs := &RolloutStatus{
		ID: run.ID, Version: run.Version, From: run.From, Strategy: run.Strategy, By: run.By,
		StartedAt: run.StartedAt, Result: run.Result, Reason: run.Reason,
	}
	if !run.FinishedAt.IsZero() {
		t := run.FinishedAt
		rs.FinishedAt = &t
	}
	return rs
}

func sortedVerdicts(m map[string]rollout.VerdictRecord) []rollout.VerdictRecord {
	return slices.SortedFunc(maps.Values(m), func(a, b rollout.VerdictRecord) int { return cmp.Compare(a.Metric, b.Metric) })
}
