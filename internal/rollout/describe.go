package rollout

import (
	"fmt"
	"strconv"
	"time"
)

// StepDescription names a step for people: "health gate", "setWeight 25",
// "pause 30s", "pause (wait for promote)", "gate (wait for promote)",
// "switch", "bake 10m0s".
func StepDescription(st Step) string {
	switch st.Kind {
	case StepHealthGate:
		return "health gate"
	case StepSetWeight:
		return "setWeight " + strconv.Itoa(st.Weight)
	case StepPause:
		if st.Duration == 0 {
			return "pause (wait for promote)"
		}
		return "pause " + st.Duration.String()
	case StepGate:
		if st.Name != "" {
			return "gate " + st.Name
		}
		return "gate (wait for promote)"
	case StepHook:
		return "hook " + st.Name
	case StepSwitch:
		return "switch"
	case StepBake:
		return "bake " + st.Duration.String()
	}
	return string(st.Kind)
}

// Describe says where the rollout in progress is and what it waits for, at
// time now: "step 3/6: pause 1m0s (12s left)". It is empty when no rollout
// runs.
func (s State) Describe(now time.Time) string {
	r := s.Rollout
	if r == nil {
		return ""
	}
	if r.StepIndex >= len(r.Steps) {
		return fmt.Sprintf("step %d/%d: done", r.StepIndex, len(r.Steps))
	}
	st := r.Steps[r.StepIndex]
	d := fmt.Sprintf("step %d/%d: %s", r.StepIndex+1, len(r.Steps), StepDescription(st))
	at := now
	if r.Paused {
		at = r.PausedAt
	}
	var wait string
	switch st.Kind {
	case StepHealthGate:
		h := s.Health[r.Version]
		wait = fmt.Sprintf("%d/%d healthy", h.Healthy, h.Total)
		if !r.Deadline.IsZero() {
			wait += fmt.Sprintf(", deadline in %s", max(r.Deadline.Sub(now), 0).Round(time.Second))
		}
	case StepPause, StepBake:
		switch left := r.StepStartedAt.Add(st.Duration).Sub(at); {
		case r.StepPromoted || (st.Duration > 0 && left <= 0):
			if r.Analysis {
				wait = "waiting for analysis"
			}
		case st.Duration > 0:
			wait = left.Round(time.Second).String() + " left"
		}
	case StepGate, StepHook:
		switch p := r.Pending; {
		case r.StepPromoted && r.Analysis, p != nil && p.Done && p.OK && r.Analysis:
			wait = "waiting for analysis"
		case p != nil && !p.Done && !p.Deadline.IsZero():
			wait = "running, " + max(p.Deadline.Sub(now), 0).Round(time.Second).String() + " left"
		case p != nil && !p.Done:
			wait = "running"
		}
	case StepSwitch:
		if r.Analysis {
			wait = "waiting for analysis"
		}
	}
	if wait != "" {
		d += " (" + wait + ")"
	}
	if r.Paused {
		d += ", paused"
	}
	return d
}

// ShownPhase is the phase to show people. It is Phase, except that a
// rollout waiting at a pause without a duration or a gate without a webhook
// (both wait for `promote`) shows as Paused, as Argo Rollouts does: it will
// not move by itself. The stored Phase stays Progressing, since nothing but
// the step holds it.
func (s State) ShownPhase() Phase {
	if s.WaitsForPromote() {
		return PhasePaused
	}
	return s.Phase
}

// WaitsForPromote reports whether the rollout in progress waits for a
// person to promote it: at a pause without a duration or a gate without a
// webhook, not yet promoted.
func (s State) WaitsForPromote() bool {
	r := s.Rollout
	if s.Phase != PhaseProgressing || r == nil || r.StepIndex >= len(r.Steps) || r.StepPromoted {
		return false
	}
	switch st := r.Steps[r.StepIndex]; st.Kind {
	case StepPause:
		return st.Duration == 0
	case StepGate:
		return st.Name == ""
	}
	return false
}

// KeptPrevious is the version kept routable for `rollback` at now, or ""
// when none is. A kept version that is being deployed again is the canary,
// not a way back, and is not reported.
func (s State) KeptPrevious(now time.Time) string {
	if s.Previous == "" || !now.Before(s.PreviousUntil) {
		return ""
	}
	if s.Rollout != nil && s.Rollout.Version == s.Previous {
		return ""
	}
	return s.Previous
}

// Next is when the next time-driven transition of s after now is due (a
// pause or bake ending, a progress deadline, the previous version's
// retirement), or the zero time when none is. A runner may sleep until then,
// though it should still tick at least every second to retry a failed router.
func (s State) Next(now time.Time) time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if r := s.Rollout; r != nil && r.StepIndex < len(r.Steps) {
		st := r.Steps[r.StepIndex]
		switch {
		case st.Kind == StepHealthGate:
			earliest(r.Deadline)
		case r.Paused:
		case (st.Kind == StepPause || st.Kind == StepBake) && st.Duration > 0:
			earliest(r.StepStartedAt.Add(st.Duration))
		}
	}
	if r := s.Rollout; r != nil && r.Pending != nil && !r.Pending.Done {
		earliest(r.Pending.Deadline)
	}
	if s.Previous != "" {
		earliest(s.PreviousUntil)
	}
	return next
}
