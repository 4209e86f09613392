package v1alpha1

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/switchyard/switchyard/internal/rollout"
)

// SetEngineState records the rollout engine's state in the status: the
// state itself (EngineState, what the controller's runner.Store saves and
// loads through the status subresource) and the fields people read, all
// derived from it (phase, revisions, weights asked and in force, step,
// verdicts), so the two
// never disagree. Conditions and ObservedGeneration are the controller's.
func (s *RolloutStatus) SetEngineState(st rollout.State) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode engine state of %q: %w", st.Service, err)
	}
	s.EngineState = &runtime.RawExtension{Raw: raw}
	s.Phase = Phase(st.Phase)
	s.StableRevision = st.Stable
	s.CanaryRevision, s.CanaryWeight, s.CurrentStep, s.Verdicts, s.Message = "", 0, nil, nil, ""
	s.Weights, s.AppliedWeights = weights32(st.Weights), weights32(st.Applied)
	run := st.Rollout
	if run == nil {
		if st.Last != nil && st.Last.Reason != "" {
			s.Message = string(st.Last.Result) + ": " + st.Last.Reason
		}
		return nil
	}
	s.CanaryRevision = run.Version
	s.CanaryWeight = int32(st.Weights[run.Version])
	if st.Applied != nil {
		s.CanaryWeight = int32(st.Applied[run.Version])
	}
	if run.StepIndex < len(run.Steps) {
		step := run.Steps[run.StepIndex]
		s.CurrentStep = &StepStatus{
			Index: int32(run.StepIndex), Count: int32(len(run.Steps)),
			Kind: string(step.Kind), Weight: int32(step.Weight), Name: step.Name,
		}
		if !run.StepStartedAt.IsZero() {
			t := metav1.NewTime(run.StepStartedAt)
			s.CurrentStep.StartedAt = &t
		}
	}
	for _, name := range slices.Sorted(maps.Keys(run.Verdicts)) {
		v := verdictOf(run.Verdicts[name])
		v.Metric = name
		s.Verdicts = append(s.Verdicts, v)
	}
	if run.Paused {
		s.Message = "paused"
	}
	if st.RouterError != "" {
		s.Message = "router: " + st.RouterError
	}
	return nil
}

// LoadEngineState returns the engine's state saved in the status, validated
// as the standalone store validates what it loads; ok is false when none
// was saved yet (a new Rollout). A state that does not decode or validate
// is an error: the controller must not start a Rollout from damaged values.
func (s *RolloutStatus) LoadEngineState() (st rollout.State, ok bool, err error) {
	if s.EngineState == nil || len(s.EngineState.Raw) == 0 {
		return rollout.State{}, false, nil
	}
	if err := json.Unmarshal(s.EngineState.Raw, &st); err != nil {
		return rollout.State{}, false, fmt.Errorf("decode status.engineState: %w", err)
	}
	if err := st.Validate(); err != nil {
		return rollout.State{}, false, fmt.Errorf("status.engineState: %w", err)
	}
	return st, true, nil
}

func weights32(w rollout.Weights) map[string]int32 {
	if len(w) == 0 {
		return nil
	}
	out := make(map[string]int32, len(w))
	for v, p := range w {
		out[v] = int32(p)
	}
	return out
}
