package rollout

import (
	"errors"
	"fmt"
	"slices"
)

var phases = []Phase{PhaseStable, PhaseProgressing, PhasePaused, PhaseRollingBack, PhaseDegraded}

// Validate reports what makes a stored state unusable by this version: an
// unknown phase or step kind, weights that do not add up to 100 over known
// versions, a step index outside its plan. The store refuses such a state
// at load, as it refuses a file it cannot decode: a state that silently
// skipped a step, or routed by damaged weights, is worse than none.
func (s State) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Phase != "" && !slices.Contains(phases, s.Phase) {
		bad("phase is %q; want one of %v", s.Phase, phases)
	}
	if len(s.Weights) > 0 {
		sum := 0
		for v, w := range s.Weights {
			if w < 0 || w > 100 {
				bad("weights[%q] is %d; must be 0-100", v, w)
			}
			if _, ok := s.Versions[v]; !ok {
				bad("weights name version %q, which the state does not know", v)
			}
			sum += w
		}
		if sum != 100 {
			bad("weights %s add up to %d, not 100", FormatWeights(s.Weights), sum)
		}
		if _, ok := s.Versions[s.Stable]; !ok {
			bad("stable version %q is not among the state's versions", s.Stable)
		}
	}
	if r := s.Rollout; r != nil {
		if err := r.validate(); err != nil {
			bad("rollout: %w", err)
		}
	}
	if r := s.Last; r != nil {
		if err := r.validate(); err != nil {
			bad("last rollout: %w", err)
		}
	}
	return errors.Join(errs...)
}

func (r *Run) validate() error {
	var errs []error
	for i, st := range r.Steps {
		if !slices.Contains(stepKinds, st.Kind) {
			errs = append(errs, fmt.Errorf("#%d steps[%d] has kind %q, unknown to this version of Switchyard (known: %v); a newer version wrote it", r.ID, i, st.Kind, stepKinds))
		}
	}
	if r.StepIndex < 0 || r.StepIndex > len(r.Steps) {
		errs = append(errs, fmt.Errorf("#%d is at step %d of a plan of %d", r.ID, r.StepIndex, len(r.Steps)))
	}
	if r.Weight < 0 || r.Weight > 100 {
		errs = append(errs, fmt.Errorf("#%d has weight %d; must be 0-100", r.ID, r.Weight))
	}
	if p := r.Pending; p != nil && (p.Step < 0 || p.Step > r.StepIndex) {
		errs = append(errs, fmt.Errorf("#%d has a pending %s for step %d, past its step %d", r.ID, p.Kind, p.Step, r.StepIndex))
	}
	return errors.Join(errs...)
}
