package rollout

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// apply applies one event to t.s. On error the caller discards t.
func (t *txn) apply(e Event) error {
	switch e := e.(type) {
	case Deploy:
		return t.deploy(e)
	case *Deploy:
		return t.deploy(*e)
	case Promote:
		return t.promote(e)
	case *Promote:
		return t.promote(*e)
	case Pause:
		return t.pause(e.By)
	case *Pause:
		return t.pause(e.By)
	case Resume:
		return t.resume(e.By)
	case *Resume:
		return t.resume(e.By)
	case Abort:
		return t.abort(e)
	case *Abort:
		return t.abort(*e)
	case Retry:
		return t.retry(e.By)
	case *Retry:
		return t.retry(e.By)
	case Rollback:
		return t.rollback(e.By)
	case *Rollback:
		return t.rollback(e.By)
	case RemoveVersion:
		return t.removeVersion(e)
	case *RemoveVersion:
		return t.removeVersion(*e)
	case Tick, *Tick:
		// A router that failed is asked again on every tick.
		if t.s.RouterError != "" {
			t.forceRoute = true
		}
		return nil
	case HealthChanged:
		t.health(e)
		return nil
	case *HealthChanged:
		t.health(*e)
		return nil
	case Verdict:
		t.verdict(e)
		return nil
	case *Verdict:
		t.verdict(*e)
		return nil
	case RouterApplied:
		t.routerApplied(e.Weights)
		return nil
	case *RouterApplied:
		t.routerApplied(e.Weights)
		return nil
	case RouterFailed:
		t.routerFailed(e)
		return nil
	case *RouterFailed:
		t.routerFailed(*e)
		return nil
	case HookDone:
		t.hookDone(e)
		return nil
	case *HookDone:
		t.hookDone(*e)
		return nil
	case GateAnswered:
		t.gateAnswered(e)
		return nil
	case *GateAnswered:
		t.gateAnswered(*e)
		return nil
	}
	return fmt.Errorf("rollout: unknown event %T", e)
}

func (t *txn) deploy(e Deploy) error {
	s := &t.s
	v := e.Version
	if v == "" {
		return fmt.Errorf("deploy: %w: no version given", ErrUnknownVersion)
	}
	kind := e.Strategy
	if kind == "" {
		kind = t.m.defaultStrategy
	}
	if _, err := t.m.Steps(kind); err != nil {
		return fmt.Errorf("deploy %q: %w", v, err)
	}
	if _, ok := s.Versions[v]; !ok && len(e.Targets) == 0 {
		return fmt.Errorf("deploy %q: %w: give its targets (--targets HOST:PORT,...) or list it in spec.versions of service %q",
			v, ErrUnknownVersion, s.Service)
	}
	if r := s.Rollout; r != nil {
		if !e.Force {
			return fmt.Errorf("deploy %q: %w: rollout #%d of %q is at step %d/%d; abort it or deploy with --force",
				v, ErrRolloutRunning, r.ID, r.Version, r.StepIndex+1, len(r.Steps))
		}
		t.end(ResultAborted, fmt.Sprintf("superseded by a forced deploy of %s", v), e.By)
	}
	if v == s.Stable {
		return fmt.Errorf("deploy %q: %w", v, ErrAlreadyStable)
	}
	if len(e.Targets) > 0 {
		t.setTargets(v, e.Targets, true)
	}
	return t.start(v, kind, e.By, "deploy")
}

func (t *txn) promote(e Promote) error {
	r := t.s.Rollout
	if r == nil {
		return fmt.Errorf("promote: %w", ErrNoRollout)
	}
	if e.Full {
		t.resumeRun(r, e.By)
		t.record("promote", e.By, "promote --full: skipping every remaining step, gate and analysis", true)
		t.end(ResultPromoted, "promoted fully by "+by(e.By), e.By)
		return nil
	}
	st := r.Steps[min(r.StepIndex, len(r.Steps)-1)]
	switch st.Kind {
	case StepPause, StepGate, StepBake:
		// A promote that would change nothing is refused rather than
		// answered "done": say what holds the step and what overrides it.
		if why := t.analysisHold(r, st.Kind == StepBake); why != "" {
			return fmt.Errorf("promote: %w: step %d/%d (%s) waits for analysis: %s; promote --full skips the remaining steps and checks",
				ErrCannotPromote, r.StepIndex+1, len(r.Steps), StepDescription(st), why)
		}
	case StepHook:
		return fmt.Errorf("promote: %w: step %d/%d runs hook %s; use promote --full to skip it",
			ErrCannotPromote, r.StepIndex+1, len(r.Steps), st.Name)
	case StepHealthGate:
		h := t.s.Health[r.Version]
		return fmt.Errorf("promote: %w: step %d/%d waits for every target of %s to be healthy (%d/%d); use promote --full to override",
			ErrCannotPromote, r.StepIndex+1, len(r.Steps), r.Version, h.Healthy, h.Total)
	default:
		return fmt.Errorf("promote: %w: step %d/%d (%s) waits for analysis to pass; use promote --full to override",
			ErrCannotPromote, r.StepIndex+1, len(r.Steps), StepDescription(st))
	}
	t.resumeRun(r, e.By)
	r.StepPromoted = true
	t.record("promote", e.By, fmt.Sprintf("promote: step %d/%d (%s) ends", r.StepIndex+1, len(r.Steps), StepDescription(st)), true)
	return nil
}

func (t *txn) pause(who string) error {
	r := t.s.Rollout
	if r == nil {
		return fmt.Errorf("pause: %w", ErrNoRollout)
	}
	if r.Paused {
		return nil
	}
	r.Paused, r.PausedAt = true, t.now
	t.record("paused", who, fmt.Sprintf("rollout #%d paused by %s at step %d/%d", r.ID, by(who), r.StepIndex+1, len(r.Steps)), true)
	return nil
}

func (t *txn) resume(who string) error {
	r := t.s.Rollout
	if r == nil {
		return fmt.Errorf("resume: %w", ErrNoRollout)
	}
	t.resumeRun(r, who)
	return nil
}

// resumeRun unpauses r; the current step's timer is pushed back by the
// paused time, so a pause step keeps its remaining time.
func (t *txn) resumeRun(r *Run, who string) {
	if !r.Paused {
		return
	}
	r.Unjudged = nil // a person chose to keep waiting: count afresh
	r.StepStartedAt = r.StepStartedAt.Add(t.now.Sub(r.PausedAt))
	r.Paused, r.PausedAt = false, time.Time{}
	t.record("resumed", who, fmt.Sprintf("rollout #%d resumed by %s", r.ID, by(who)), true)
}

func (t *txn) abort(e Abort) error {
	if t.s.Rollout == nil {
		return fmt.Errorf("abort: %w", ErrNoRollout)
	}
	reason := "aborted by " + by(e.By)
	if e.Reason != "" {
		reason += ": " + e.Reason
	}
	t.end(ResultAborted, reason, e.By)
	return nil
}

func (t *txn) retry(who string) error {
	s := &t.s
	if r := s.Rollout; r != nil {
		return fmt.Errorf("retry: %w (rollout #%d of %q)", ErrRolloutRunning, r.ID, r.Version)
	}
	last := s.Last
	if last == nil || (last.Result != ResultAborted && last.Result != ResultRolledBack) {
		return fmt.Errorf("retry: %w", ErrNothingToRetry)
	}
	if last.Version == s.Stable {
		return fmt.Errorf("retry %q: %w", last.Version, ErrAlreadyStable)
	}
	if _, ok := s.Versions[last.Version]; !ok {
		return fmt.Errorf("retry %q: %w", last.Version, ErrUnknownVersion)
	}
	kind := last.Strategy
	if kind == "" {
		kind = t.m.defaultStrategy
	}
	return t.start(last.Version, kind, who, fmt.Sprintf("retry of rollout #%d", last.ID))
}

// rollback returns to the kept previous version after a promotion. It is
// recorded as a run of its own (the promoted run stays promoted), with
// result rolled-back, so that Retry can try the left version again. Like any
// rolled-back run, its Version is the one left and its From the one traffic
// went back to.
func (t *txn) rollback(who string) error {
	s := &t.s
	if r := s.Rollout; r != nil {
		return fmt.Errorf("rollback: %w (rollout #%d of %q); use abort", ErrRolloutRunning, r.ID, r.Version)
	}
	if s.Previous == "" || !t.now.Before(s.PreviousUntil) {
		return fmt.Errorf("rollback: %w", ErrNothingToRevert)
	}
	left, to := s.Stable, s.Previous
	id := max(s.NextRollout, 1)
	s.NextRollout = id + 1
	kind := t.m.defaultStrategy
	if s.Last != nil && s.Last.Strategy != "" {
		kind = s.Last.Strategy
	}
	reason := fmt.Sprintf("manual rollback by %s: traffic back to %s", by(who), to)
	s.Last = &Run{ID: id, Version: left, From: to, Strategy: kind, By: who, StartedAt: t.now,
		StepStartedAt: t.now, Result: ResultRolledBack, Reason: reason, FinishedAt: t.now}
	s.Stable, s.Previous = to, left
	s.PreviousUntil = t.now.Add(t.m.scaleDownDelay)
	s.Phase = PhaseRollingBack
	t.forceRoute = true
	t.ended = id
	t.recordRun(id, 0, "rollback", who, reason, true)
	t.emit(Finished{Rollout: id, Version: left, Result: ResultRolledBack, Reason: reason})
	return nil
}

// ErrVersionInUse is returned by RemoveVersion for a version that is
// stable, in a rollout, kept for rollback or listed in the spec.
var ErrVersionInUse = errors.New("version is in use")

func (t *txn) removeVersion(e RemoveVersion) error {
	s := &t.s
	v := e.Version
	if _, ok := s.Versions[v]; !ok {
		return fmt.Errorf("remove version %q: %w", v, ErrUnknownVersion)
	}
	for _, sv := range t.m.specVersions {
		if sv.Name == v {
			return fmt.Errorf("remove version %q: %w: it is listed in spec.versions; remove it from the service file and apply", v, ErrVersionInUse)
		}
	}
	switch r := s.Rollout; {
	case v == s.Stable:
		return fmt.Errorf("remove version %q: %w: it is the stable version; deploy another version first", v, ErrVersionInUse)
	case r != nil && (v == r.Version || v == r.From):
		return fmt.Errorf("remove version %q: %w: rollout #%d of %s from %s uses it; abort it first", v, ErrVersionInUse, r.ID, r.Version, r.From)
	case v == s.Previous && t.now.Before(s.PreviousUntil):
		return fmt.Errorf("remove version %q: %w: it is kept for rollback until %s; it is retired then", v, ErrVersionInUse, s.PreviousUntil.Format(time.RFC3339))
	}
	t.own()
	delete(s.Versions, v)
	delete(s.Health, v)
	t.retires = append(t.retires, RetireVersion{Version: v})
	t.record("removed", e.By, fmt.Sprintf("version %s removed by %s", v, by(e.By)), true)
	return nil
}

func (t *txn) health(e HealthChanged) {
	s := &t.s
	if _, ok := s.Versions[e.Version]; !ok {
		return // not ours (or retired and forgotten): nothing routes to it
	}
	if h, ok := s.Health[e.Version]; ok && h == (VersionHealth{Healthy: e.Healthy, Total: e.Total}) {
		return
	}
	t.own()
	s.Health[e.Version] = VersionHealth{Healthy: e.Healthy, Total: e.Total}
	if r := s.Rollout; r != nil && r.Version == e.Version && r.StepIndex > 0 && e.Healthy == 0 {
		t.end(ResultRolledBack, fmt.Sprintf("version %s lost all healthy targets (%d/%d)", e.Version, e.Healthy, e.Total), "")
	}
}

func (t *txn) verdict(e Verdict) {
	r := t.s.Rollout
	if r == nil || !r.Analysis {
		return
	}
	rec := VerdictRecord{Metric: e.Metric, Result: e.Result, Value: e.Value, Samples: e.Samples, Reason: e.Reason, At: t.now, Evidence: e.Evidence}
	if e.Checkpoint != nil {
		r.JudgeCheckpoint = e.Checkpoint
	}
	if e.Window > 0 {
		rec.From = t.now.Add(-e.Window)
	}
	r.Verdicts = maps.Clone(r.Verdicts)
	if r.Verdicts == nil {
		r.Verdicts = make(map[string]VerdictRecord)
	}
	r.Verdicts[e.Metric] = rec
	msg := fmt.Sprintf("%s %s: %s (%d samples)", e.Metric, e.Result, formatFloat(e.Value), e.Samples)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	t.emit(RecordHistory{Entry: HistoryEntry{At: t.now, Rollout: r.ID, Kind: "verdict", Step: r.StepIndex,
		Weights: t.planned(), Verdict: &rec, Message: msg}})
	t.countUnjudged(r, e, msg)
	switch {
	case e.Promote && e.Result == VerdictPassed && !r.JudgePromoted:
		r.JudgePromoted = true
		t.record("judge-promote", "", fmt.Sprintf("the sequential judge promotes %s at step %d/%d (%d%%): %s",
			r.Version, r.StepIndex+1, len(r.Steps), r.Weight, e.Reason), true)
		return
	case e.Hold && !r.Paused:
		r.Paused, r.PausedAt = true, t.now
		t.record("paused", "", fmt.Sprintf("rollout #%d paused at step %d/%d: the sequential judge has %s. Promote --full, resume to keep waiting, or abort",
			r.ID, r.StepIndex+1, len(r.Steps), e.Reason), true)
		return
	}
	if e.Result != VerdictFailed {
		return
	}
	if e.Breaker && e.Metric == JudgeMetric {
		t.end(ResultRolledBack, fmt.Sprintf("the sequential judge at step %d/%d (%s %d%%): %s",
			r.StepIndex+1, len(r.Steps), r.Version, t.planned()[r.Version], e.Reason), "")
		return
	}
	if e.Breaker {
		t.end(ResultRolledBack, "breaker: "+e.Reason, "")
		return
	}
	r.FailedChecks++
	t.emit(Notify{Kind: "analysis-failed", Message: fmt.Sprintf("%s (failed checks %d/%d)", msg, r.FailedChecks, r.Threshold)})
	if r.FailedChecks >= r.Threshold {
		// One sentence with the numbers behind the decision, for history
		// and `deploy --wait`: where, what was measured, against what.
		what := e.Reason
		if what == "" {
			what = fmt.Sprintf("%s was %s%s", e.Metric, formatFloat(e.Value), t.m.boundsText(e.Metric))
		}
		t.end(ResultRolledBack, fmt.Sprintf("analysis at step %d/%d (%s %d%%): %s; failed check %d of %d",
			r.StepIndex+1, len(r.Steps), r.Version, t.planned()[r.Version], what, r.FailedChecks, r.Threshold), "")
	}
}

// countUnjudged counts a check's inconclusive and error verdicts in a row;
// at the rollout's errorLimit it pauses the rollout and says why: a canary
// with too little traffic, or a metrics source that stays down, must not
// wait in silence for ever. It never promotes on them.
func (t *txn) countUnjudged(r *Run, e Verdict, msg string) {
	r.Unjudged = maps.Clone(r.Unjudged)
	if e.Result != VerdictInconclusive && e.Result != VerdictError {
		delete(r.Unjudged, e.Metric)
		return
	}
	if r.Unjudged == nil {
		r.Unjudged = make(map[string]int)
	}
	r.Unjudged[e.Metric]++
	n := r.Unjudged[e.Metric]
	if r.ErrorLimit <= 0 || n < r.ErrorLimit || r.Paused {
		return
	}
	if r.Strategy != StrategyCanary && !r.Switched {
		// Before a blue-green switch the new version takes no weighted
		// traffic (a preview reaches it by rules only): no data is what
		// is expected, and analysisHold does not wait for it either.
		return
	}
	r.Paused, r.PausedAt = true, t.now
	t.record("paused", "", fmt.Sprintf("rollout #%d paused at step %d/%d: %d checks of %s in a row without a verdict (consecutiveErrorLimit %d); last: %s. "+
		"Resume to keep waiting, promote --full to override, or abort",
		r.ID, r.StepIndex+1, len(r.Steps), n, e.Metric, r.ErrorLimit, msg), true)
}

func (m *Machine) boundsText(metric string) string {
	b, ok := m.bounds[metric]
	if !ok {
		return ""
	}
	var parts []string
	if b.Min != nil {
		parts = append(parts, "min "+formatFloat(*b.Min))
	}
	if b.Max != nil {
		parts = append(parts, "max "+formatFloat(*b.Max))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (t *txn) routerApplied(w Weights) {
	if !maps.Equal(w, t.s.Weights) {
		return // an older SetWeights; a newer one is on its way
	}
	t.s.Applied = maps.Clone(w)
	t.s.RouterError = ""
	if t.s.Phase == PhaseRollingBack {
		t.s.Phase = PhaseStable
	}
}

func (t *txn) routerFailed(e RouterFailed) {
	if !maps.Equal(e.Weights, t.s.Weights) {
		return
	}
	first := t.s.RouterError == ""
	t.s.RouterError = e.Error
	if first {
		t.record("router-failed", "", "router failed to apply "+FormatWeights(e.Weights)+": "+e.Error, true)
	}
}

// current returns the pending action that a result names, or nil when the
// result is stale: for another rollout, step or attempt, or already in.
func (t *txn) current(id uint64, step, attempt int) *Pending {
	r := t.s.Rollout
	if r == nil || r.ID != id || r.Pending == nil {
		return nil
	}
	if p := r.Pending; p.Step == step && p.Attempt == attempt && !p.Done {
		return p
	}
	return nil
}

// finishPending records the result of r's pending action (copied: the
// caller's State shares the old one).
func (t *txn) finishPending(ok bool) {
	r := t.s.Rollout
	p := *r.Pending
	p.Done, p.OK = true, ok
	r.Pending = &p
}

func (t *txn) hookDone(e HookDone) {
	p := t.current(e.Rollout, e.Step, e.Attempt)
	if p == nil || p.Kind != StepHook {
		return // stale: the rollout, step or attempt it ran for is over
	}
	t.finishPending(e.Err == "")
	msg := fmt.Sprintf("hook %s succeeded", p.Name)
	if e.Err != "" {
		msg = fmt.Sprintf("hook %s failed: %s", p.Name, e.Err)
	}
	if e.Output != "" {
		msg += "; output: " + e.Output
	}
	t.record("hook", "", msg, true)
	if e.Err != "" {
		t.end(ResultRolledBack, fmt.Sprintf("hook %s failed: %s", p.Name, e.Err), "")
	}
}

func (t *txn) gateAnswered(e GateAnswered) {
	p := t.current(e.Rollout, e.Step, e.Attempt)
	if p == nil || p.Kind != StepGate {
		return
	}
	t.finishPending(e.Open)
	msg := fmt.Sprintf("gate %s opened", p.Name)
	if !e.Open {
		msg = fmt.Sprintf("gate %s refused", p.Name)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	t.record("gate", "", msg, true)
	if !e.Open {
		t.end(ResultRolledBack, msg, "")
	}
}

func by(who string) string {
	if who == "" {
		return "switchyard"
	}
	return who
}
