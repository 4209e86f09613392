package rollout

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// txn is one application of Machine.Step or Machine.Reconcile: a private
// copy of the state, the time, and the actions produced so far.
type txn struct {
	m    *Machine
	s    State
	now  time.Time
	acts []Action
	// before is the routing in force when the step began; settle emits
	// SetWeights when it changes (or when forceRoute is set).
	before     Routing
	forceRoute bool
	phase0     Phase
	// ended is the ID of a rollout that ended in this step, so entries
	// recorded after it (the weights it leaves) belong to its timeline.
	ended uint64
	// owned is set once Versions and Health have been copied for writing.
	owned bool
	// retires are RetireVersion actions, emitted after every other action
	// of the step: traffic moves off a version before it is retired.
	retires []Action
}

func (m *Machine) begin(s State, now time.Time) txn {
	return txn{m: m, s: s.clone(), now: now, before: s.routing(), phase0: s.Phase}
}

func (t *txn) emit(a ...Action) { t.acts = append(t.acts, a...) }

// record appends a history entry and, when notify is set, a notification
// with the same kind and message.
func (t *txn) record(kind, by, msg string, notify bool) {
	var id uint64
	step := 0
	if r := t.s.Rollout; r != nil {
		id, step = r.ID, r.StepIndex
	} else if t.ended != 0 {
		id, step = t.ended, t.s.Last.StepIndex
	}
	t.recordRun(id, step, kind, by, msg, notify)
}

func (t *txn) recordRun(id uint64, step int, kind, by, msg string, notify bool) {
	w := t.planned()
	t.emit(RecordHistory{Entry: HistoryEntry{At: t.now, Rollout: id, Kind: kind, By: by, Step: step, Weights: w, Message: msg}})
	if notify {
		t.emit(Notify{Kind: kind, Message: msg, Weights: maps.Clone(w)})
	}
}

// clone copies what Step may change in place, so the caller's State is
// never mutated. Maps are copied on write instead (see setTargets, health):
// most events change none of them. Weights are always replaced, never
// written in place; slices inside (targets, steps, metrics) likewise.
func (s State) clone() State {
	c := s
	if s.Rollout != nil {
		r := *s.Rollout
		c.Rollout = &r
	}
	// Last is terminal and never written through, so it is shared.
	return c
}

// own makes the maps of t.s private to this step before a write.
func (t *txn) own() {
	if t.owned {
		return
	}
	t.owned = true
	t.s.Versions = cloneOrMake(t.s.Versions)
	t.s.Health = cloneOrMake(t.s.Health)
}

func cloneOrMake[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return make(M)
	}
	return maps.Clone(m)
}

// Routing is the routing the state asks for: its weights, the stable
// version and, while a rollout runs and has not switched, the canary.
func (s State) Routing() Routing {
	rt := s.routing()
	rt.Weights = maps.Clone(rt.Weights)
	return rt
}

func (s State) routing() Routing {
	rt := Routing{Stable: s.Stable, Weights: s.Weights}
	if r := s.Rollout; r != nil && !r.Switched && r.Version != s.Stable {
		rt.Canary = r.Version
	}
	return rt
}

// InPlay lists the versions that may take traffic: the stable one, the
// version being rolled out and the kept previous version, in that order.
func (s State) InPlay() []string {
	out := []string{s.Stable}
	if r := s.Rollout; r != nil && r.Version != s.Stable {
		out = append(out, r.Version)
	}
	if p := s.Previous; p != "" && !slices.Contains(out, p) {
		out = append(out, p)
	}
	return out
}

// up reports whether a version has at least one healthy target.
func (s *State) up(v string) bool { return s.Health[v].Healthy > 0 }

// down reports whether a version is known to have no healthy target.
func (s *State) down(v string) bool {
	h, ok := s.Health[v]
	return ok && h.Healthy == 0
}

// allHealthy reports whether every target of v is healthy.
func (s *State) allHealthy(v string) bool {
	h := s.Health[v]
	return h.Total > 0 && h.Healthy == h.Total
}

// planned is the weights the rollout plan asks for, before health.
func (t *txn) planned() Weights {
	s := &t.s
	if r := s.Rollout; r != nil && !r.Switched && r.Version != s.Stable {
		return Weights{s.Stable: 100 - r.Weight, r.Version: r.Weight}
	}
	return Weights{s.Stable: 100}
}

// effective is planned, except that weight planned for a version with no
// healthy target moves to a healthy version in play, if there is one: the
// healthy version with the most planned weight, else the first healthy one
// of InPlay (stable, canary, previous).
func (t *txn) effective(planned Weights) Weights {
	s := &t.s
	in := s.InPlay()
	if !slices.ContainsFunc(in, s.up) {
		return planned
	}
	moved := 0
	for v, p := range planned {
		if p > 0 && !s.up(v) {
			moved += p
		}
	}
	if moved == 0 {
		return planned
	}
	w := maps.Clone(planned)
	for v, p := range w {
		if p > 0 && !s.up(v) {
			w[v] = 0
		}
	}
	target, best := "", -1
	for _, v := range in {
		if s.up(v) && w[v] > best {
			target, best = v, w[v]
		}
	}
	w[target] += moved
	return w
}

func (t *txn) phase(planned Weights) Phase {
	s := &t.s
	degraded := !maps.Equal(s.Weights, planned) || s.down(s.Stable)
	switch {
	case s.RouterError != "":
		return PhaseDegraded
	case s.Rollout != nil:
		switch {
		case degraded:
			return PhaseDegraded
		case s.Rollout.Paused:
			return PhasePaused
		}
		return PhaseProgressing
	case s.Phase == PhaseRollingBack:
		// Until the router confirms the rollback's weights.
		return PhaseRollingBack
	case degraded:
		return PhaseDegraded
	}
	return PhaseStable
}

// settle derives the weights in force and the phase, emitting SetWeights
// when the routing changed and a notification when the service becomes or
// stops being degraded.
func (t *txn) settle() {
	s := &t.s
	planned := t.planned()
	if w := t.effective(planned); !maps.Equal(w, s.Weights) {
		s.Weights = w
	}
	rt := s.routing()
	if t.forceRoute || !routingEqual(rt, t.before) {
		t.emit(SetWeights{Routing: s.Routing()})
		t.record("weights", "", "weights "+FormatWeights(s.Weights), false)
	}
	s.Phase = t.phase(planned)
	if s.Phase == t.phase0 {
		return
	}
	switch {
	case s.Phase == PhaseDegraded:
		t.record("degraded", "", t.degradedReason(), true)
	case t.phase0 == PhaseDegraded:
		t.record("recovered", "", "service "+string(s.Phase)+" again, weights "+FormatWeights(s.Weights), true)
	}
}

func (t *txn) degradedReason() string {
	s := &t.s
	if s.RouterError != "" {
		return "router failed: " + s.RouterError
	}
	var down []string
	for _, v := range s.InPlay() {
		if !s.up(v) {
			h := s.Health[v]
			down = append(down, fmt.Sprintf("%s %d/%d healthy", v, h.Healthy, h.Total))
		}
	}
	return "unhealthy versions: " + strings.Join(down, ", ") + "; weights " + FormatWeights(s.Weights)
}

func routingEqual(a, b Routing) bool {
	return a.Stable == b.Stable && a.Canary == b.Canary && maps.Equal(a.Weights, b.Weights)
}

// FormatWeights renders weights in a stable order: "blue:90,green:10".
func FormatWeights(w Weights) string {
	var b strings.Builder
	for i, v := range slices.Sorted(maps.Keys(w)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(w[v]))
	}
	return b.String()
}

// setTargets defines a version's targets. With forgetHealth, health
// reported for other targets is forgotten, so a health gate cannot pass on
// stale counts. Reconcile keeps it instead: forgetting would change the
// weights in force (a flip-flop) until the health checker reports again.
func (t *txn) setTargets(v string, targets []string, forgetHealth bool) {
	if old, ok := t.s.Versions[v]; ok && slices.Equal(old, targets) {
		return
	}
	t.own()
	t.s.Versions[v] = slices.Clone(targets)
	if forgetHealth {
		delete(t.s.Health, v)
	}
}

// timers runs the time-driven safety checks: the progress deadline of a
// health gate (even while paused) and the end of scaleDownDelay.
func (t *txn) timers() {
	s := &t.s
	if r := s.Rollout; r != nil && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == StepHealthGate &&
		!r.Deadline.IsZero() && !t.now.Before(r.Deadline) && !s.allHealthy(r.Version) {
		h := s.Health[r.Version]
		t.end(ResultRolledBack, fmt.Sprintf("version %s: %d/%d targets healthy after progressDeadline %s",
			r.Version, h.Healthy, h.Total, t.m.progress), "")
	}
	// A pending hook or gate that outlives its deadline fails, even while
	// the rollout is paused: the hook itself is not paused.
	if r := s.Rollout; r != nil && r.Pending != nil && !r.Pending.Done && !r.Pending.Deadline.IsZero() && !t.now.Before(r.Pending.Deadline) {
		p := r.Pending
		t.end(ResultRolledBack, fmt.Sprintf("%s %s did not finish within %s", pendingWord(p.Kind), p.Name, p.Deadline.Sub(p.StartedAt)), "")
	}
	if s.Previous != "" && !t.now.Before(s.PreviousUntil) {
		// A switched rollout may still need to switch back to Previous.
		if r := s.Rollout; r != nil && r.Switched && r.From == s.Previous {
			return
		}
		// While the stable version has no healthy target, the kept previous
		// version may be what serves the traffic: keep it until stable recovers.
		if s.down(s.Stable) && s.up(s.Previous) {
			return
		}
		t.retirePrevious()
	}
}

// retirePrevious stops keeping the previous version, and retires it unless
// it is in play again (a rollout back to it).
func (t *txn) retirePrevious() {
	s := &t.s
	p := s.Previous
	s.Previous, s.PreviousUntil = "", time.Time{}
	if p == s.Stable || (s.Rollout != nil && s.Rollout.Version == p) {
		return
	}
	t.retires = append(t.retires, RetireVersion{Version: p})
	t.record("retired", "", "version "+p+" retired after scaleDownDelay", true)
}

// advance moves the rollout through every step whose condition holds.
// Nothing advances while paused or while the router has not applied the
// weights asked of it.
func (t *txn) advance() {
	for {
		r := t.s.Rollout
		if r == nil || r.Paused || t.s.RouterError != "" {
			return
		}
		if r.StepIndex >= len(r.Steps) {
			why := "all steps passed"
			if r.JudgePromoted {
				why = "the sequential judge promoted it: " + r.Verdicts[JudgeMetric].Reason
			}
			t.end(ResultPromoted, why, "")
			return
		}
		st := r.Steps[r.StepIndex]
		if !t.try(r, st) {
			return
		}
		t.record("step", "", fmt.Sprintf("step %d/%d done: %s", r.StepIndex+1, len(r.Steps), StepDescription(st)), true)
		r.StepIndex++
		r.StepStartedAt = t.now
		r.StepPromoted = false
		// A gate a person opened may still be polled: it is over too.
		r.Pending = nil
	}
}

// try performs step st if its condition holds and reports whether it is done.
func (t *txn) try(r *Run, st Step) bool {
	switch st.Kind {
	case StepHealthGate:
		return t.s.allHealthy(r.Version)
	case StepSetWeight:
		if r.JudgePromoted {
			return true // the judge promoted: straight to the switch
		}
		if r.Weight != st.Weight {
			r.Weight, r.WeightSince = st.Weight, t.now
			if r.Analysis {
				// A fresh analysis, so its first check measures a whole
				// interval at the new weight.
				t.emit(StartAnalysis{Rollout: r.ID, Canary: r.Version, Stable: r.From, Weight: st.Weight, Checkpoint: r.JudgeCheckpoint, Phases: JudgePhases(r.Steps)})
			}
		}
		return true
	case StepPause:
		// A timed pause is over once the judge promoted; a manual pause
		// (no duration) still waits for a person.
		timed := st.Duration > 0 && (r.JudgePromoted || !t.now.Before(r.StepStartedAt.Add(st.Duration)))
		waited := r.StepPromoted || timed
		return waited && t.analysisOK(r, false)
	case StepGate:
		if r.StepPromoted {
			return t.analysisOK(r, false) // a person may open any gate
		}
		return st.Name != "" && t.async(r, st) && t.analysisOK(r, false)
	case StepHook:
		return t.async(r, st)
	case StepSwitch:
		if !t.analysisOK(r, false) {
			return false
		}
		// With the sequential judge a canary switches only on its
		// promotion: steps that run out hold at the last weight (a person
		// may still promote --full). A blue-green switch is not held: the
		// judge watches the bake after it.
		if r.Judge && r.Strategy == StrategyCanary && !r.JudgePromoted && !r.StepPromoted {
			return false
		}
		t.doSwitch(r)
		return true
	case StepBake:
		if r.Judge {
			// The judge's promotion ends a bake, early or not; without it
			// the bake holds (never a promotion on "no evidence").
			return (r.JudgePromoted || r.StepPromoted) && t.analysisOK(r, true)
		}
		waited := r.StepPromoted || !t.now.Before(r.StepStartedAt.Add(st.Duration))
		return waited && t.analysisOK(r, true)
	}
	// An unknown kind never gets here: State.Validate refuses it at load.
	// Should one slip through, hold rather than skip what it meant to check.
	return false
}

// async starts the asynchronous action of step st (a hook, a named gate)
// once, and reports whether it has finished successfully. Its failure is
// handled when its result arrives (hookDone, gateAnswered), its timeout by
// timers.
func (t *txn) async(r *Run, st Step) bool {
	p := r.Pending
	if p == nil || p.Step != r.StepIndex {
		r.Attempts++
		p = &Pending{Kind: st.Kind, Name: st.Name, Step: r.StepIndex, Attempt: r.Attempts, StartedAt: t.now}
		if st.Timeout > 0 {
			p.Deadline = t.now.Add(st.Timeout)
		}
		r.Pending = p
		t.emitPending(r)
		t.record(pendingWord(p.Kind), "", fmt.Sprintf("%s %s started (step %d/%d)", pendingWord(p.Kind), p.Name, r.StepIndex+1, len(r.Steps)), false)
		return false
	}
	if !p.Done || !p.OK {
		return false
	}
	r.Pending = nil
	return true
}

// emitPending asks the runner to execute r's pending action.
func (t *txn) emitPending(r *Run) {
	p := r.Pending
	switch p.Kind {
	case StepHook:
		t.emit(t.runHook(r, p))
	case StepGate:
		t.emit(OpenGate{Rollout: r.ID, Step: p.Step, Attempt: p.Attempt, Name: p.Name, Deadline: p.Deadline,
			Service: t.s.Service, Version: r.Version})
	}
}

func pendingWord(k StepKind) string {
	if k == StepGate {
		return "gate"
	}
	return "hook"
}

// analysisOK reports whether analysis lets the rollout advance.
func (t *txn) analysisOK(r *Run, bake bool) bool { return t.analysisHold(r, bake) == "" }

// analysisHold says what analysis still waits for before the rollout may
// advance, or "" when nothing:
//   - In a bake, every configured check must have passed since the switch.
//   - In a canary, every configured check must have passed over a window
//     measured entirely at the current weight: a pass measured at 5% does
//     not end a 50% pause. No data (inconclusive, or a source that is down)
//     means wait.
//   - Before a blue-green switch, the new version may see no traffic at all
//     (only routing rules reach it in a preview), so missing or
//     inconclusive verdicts do not hold it; a failed one does.
//
// Every recorded check, configured or not, holds the rollout while its
// latest verdict is failed: a failed verdict never leads to a promotion.
func (t *txn) analysisHold(r *Run, bake bool) string {
	if !r.Analysis {
		return ""
	}
	for _, name := range slices.Sorted(maps.Keys(r.Verdicts)) {
		if v := r.Verdicts[name]; v.Result == VerdictFailed {
			return fmt.Sprintf("%s failed: %s", name, v.Reason)
		}
	}
	since := r.StartedAt
	switch {
	case bake:
		since = r.SwitchedAt
	case r.Strategy != StrategyCanary:
		return ""
	case r.WeightSince.After(since):
		since = r.WeightSince
	}
	for _, name := range r.Metrics {
		if name == JudgeMetric && r.JudgePromoted {
			continue // it decided; it sends no more verdicts
		}
		v, ok := r.Verdicts[name]
		switch {
		case !ok:
			return name + " has no verdict yet"
		case v.Result != VerdictPassed:
			return fmt.Sprintf("%s is %s: %s", name, v.Result, v.Reason)
		case v.measuredFrom().Before(since):
			return fmt.Sprintf("%s has not passed a check measured at %d%% yet", name, r.Weight)
		}
	}
	return ""
}

// measuredFrom is when the window of a verdict began (its arrival for a
// verdict that did not say how long its window was).
func (v VerdictRecord) measuredFrom() time.Time {
	if !v.From.IsZero() {
		return v.From
	}
	return v.At
}

// doSwitch makes the rollout's version the stable one and keeps the old
// stable as Previous for an instant switch back.
func (t *txn) doSwitch(r *Run) {
	s := &t.s
	if s.Previous != "" && s.Previous != r.Version && s.Previous != s.Stable {
		t.retires = append(t.retires, RetireVersion{Version: s.Previous})
		t.record("retired", "", "version "+s.Previous+" retired: replaced as previous by "+s.Stable, true)
	}
	s.Previous = s.Stable
	s.PreviousUntil = t.now.Add(t.m.scaleDownDelay)
	s.Stable = r.Version
	r.Switched = true
	r.SwitchedAt = t.now
	r.Weight = 100
	t.record("switched", "", fmt.Sprintf("all traffic to %s; %s kept for %s", r.Version, s.Previous, t.m.scaleDownDelay), true)
}

// end finishes the running rollout with a result. A rollout that had
// switched and does not end promoted switches back to its From version.
func (t *txn) end(res Result, reason, by string) {
	s := &t.s
	r := s.Rollout
	switch {
	case res == ResultPromoted:
		if !r.Switched {
			t.doSwitch(r)
		}
		// Keep the previous version at least scaleDownDelay after the
		// promotion, not only after the switch (a bake may have been long).
		if until := t.now.Add(t.m.scaleDownDelay); s.Previous != "" && s.PreviousUntil.Before(until) {
			s.PreviousUntil = until
		}
	case r.Switched:
		s.Stable = r.From
		if s.Previous == r.From {
			s.Previous, s.PreviousUntil = "", time.Time{}
		}
	}
	r.Result, r.Reason, r.FinishedAt = res, reason, t.now
	r.Paused, r.PausedAt = false, time.Time{}
	s.Rollout = nil
	s.Last = r
	t.ended = r.ID
	if r.Analysis {
		t.emit(StopAnalysis{})
	}
	t.recordRun(r.ID, r.StepIndex, string(res), by, fmt.Sprintf("rollout #%d of %s %s: %s", r.ID, r.Version, res, reason), true)
	t.emit(Finished{Rollout: r.ID, Version: r.Version, Result: res, Reason: reason})
	if res != ResultPromoted {
		t.forceRoute = true
	}
	if res == ResultRolledBack {
		s.Phase = PhaseRollingBack
	}
}

// start begins a rollout of version v (its targets already known).
func (t *txn) start(v string, kind StrategyKind, by, why string) error {
	steps, err := t.m.Steps(kind)
	if err != nil {
		return err
	}
	s := &t.s
	id := max(s.NextRollout, 1)
	s.NextRollout = id + 1
	r := &Run{
		ID: id, Version: v, From: s.Stable, Strategy: kind, By: by, Steps: steps,
		StartedAt: t.now, StepStartedAt: t.now, Threshold: t.m.threshold, ErrorLimit: t.m.errorLimit,
		Analysis: t.m.analysis, Metrics: t.m.metrics, Judge: t.m.judge,
	}
	if t.m.progress > 0 {
		r.Deadline = t.now.Add(t.m.progress)
	}
	s.Rollout = r
	s.Phase = PhaseProgressing
	t.emit(RegisterVersion{Version: v, Targets: slices.Clone(s.Versions[v])})
	if r.Analysis {
		t.emit(StartAnalysis{Rollout: id, Canary: v, Stable: r.From, Phases: JudgePhases(steps)})
	}
	t.record("deploy", by, fmt.Sprintf("%s: rollout #%d of %s replacing %s, %s, steps %s",
		why, id, v, r.From, kind, describeSteps(steps)), true)
	return nil
}

func describeSteps(steps []Step) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		parts[i] = StepDescription(st)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// JudgePhases are the weights a rollout of steps gives the canary, in
// order: its setWeight steps above 0 (none for a blue-green).
func JudgePhases(steps []Step) []int {
	var out []int
	for _, st := range steps {
		if st.Kind == StepSetWeight && st.Weight > 0 {
			out = append(out, st.Weight)
		}
	}
	return out
}
