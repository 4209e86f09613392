package rollout

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// Errors returned by Step for commands that do not fit the current state.
// The state is unchanged when Step returns an error.
var (
	ErrNoRollout       = errors.New("no rollout in progress")
	ErrRolloutRunning  = errors.New("a rollout is already in progress")
	ErrUnknownVersion  = errors.New("unknown version")
	ErrNothingToRetry  = errors.New("no aborted or rolled-back rollout to retry")
	ErrNothingToRevert = errors.New("no previous version is kept to roll back to")
	ErrAlreadyStable   = errors.New("version is already the stable version")
	// ErrCannotPromote is returned by a Promote without Full while the
	// rollout waits for something a human cannot vouch for step by step:
	// healthy targets (HealthGate) or passing analysis (Switch).
	ErrCannotPromote = errors.New("the current step cannot be promoted")
	// ErrUnknownStrategy is returned for a Deploy with a strategy other than
	// canary or blue-green.
	ErrUnknownStrategy = errors.New("unknown strategy")
)

// DefaultCanarySteps are the canary steps used when a service without a
// canary block is deployed with strategy canary: 10%, wait a minute, 50%,
// wait a minute, then switch.
func DefaultCanarySteps() []spec.Step {
	w10, w50 := 10, 50
	minute := &spec.Pause{Duration: spec.D(time.Minute)}
	return []spec.Step{{SetWeight: &w10}, {Pause: minute}, {SetWeight: &w50}, {Pause: minute}}
}

// Machine steps the rollouts of one service. It holds only the service's
// spec, compiled; it is immutable and safe for concurrent use.
type Machine struct {
	svc *spec.Service

	name            string
	stable          string
	specVersions    []spec.Version
	defaultStrategy StrategyKind
	canary          []Step
	blueGreen       []Step
	analysis        bool
	judge           bool // analysis.judge: sequential
	metrics         []string
	bounds          map[string]spec.ThresholdRange
	threshold       int
	errorLimit      int
	progress        time.Duration
	scaleDownDelay  time.Duration
}

// New compiles a defaulted, validated service spec into a Machine.
//
// Both strategies are compiled up front, because a Deploy may override the
// spec's strategy: a service without a canary block deployed as a canary uses
// DefaultCanarySteps; one without a blueGreen block deployed as blue-green
// switches as soon as the new version is healthy (autoPromote, no preview,
// no bake). The spec's strategy is canary when it has a canary block and
// blue-green otherwise.
func New(svc *spec.Service) (*Machine, error) {
	if svc == nil {
		return nil, errors.New("rollout: nil service spec")
	}
	sp := &svc.Spec
	if sp.Stable == "" {
		return nil, fmt.Errorf("service %q: spec.stable is empty; name the version that takes traffic", svc.Metadata.Name)
	}
	m := &Machine{
		svc:             svc,
		name:            svc.Metadata.Name,
		stable:          sp.Stable,
		specVersions:    sp.Versions,
		defaultStrategy: StrategyBlueGreen,
		progress:        sp.ProgressDeadline.Duration,
		scaleDownDelay:  spec.DefaultScaleDownDelay,
		threshold:       1,
	}
	steps := DefaultCanarySteps()
	if c := sp.Strategy.Canary; c != nil {
		m.defaultStrategy = StrategyCanary
		var err error
		if steps, err = c.ExpandSteps(); err != nil {
			return nil, fmt.Errorf("service %q: spec.strategy.canary: %w", m.name, err)
		}
	}
	canary, err := compileCanary(steps)
	if err != nil {
		return nil, fmt.Errorf("service %q: spec.strategy.canary: %w", m.name, err)
	}
	if c := sp.Strategy.Canary; c != nil && c.BakeDuration.Duration > 0 {
		// After 100% the previous version stays warm and analysis keeps
		// watching: a failure switches back (Flagger is blind after its
		// last step).
		canary = append(canary, Step{Kind: StepBake, Duration: c.BakeDuration.Duration})
	}
	m.canary = withWebhooks(withHooks(canary, sp.Hooks), sp)
	bg := sp.Strategy.BlueGreen
	m.blueGreen = withWebhooks(withHooks(compileBlueGreen(bg), sp.Hooks), sp)
	if bg != nil && bg.ScaleDownDelay.Duration > 0 {
		m.scaleDownDelay = bg.ScaleDownDelay.Duration
	}
	if a := sp.Analysis; a != nil && (len(a.Metrics) > 0 || a.Judge == spec.JudgeSequential) {
		m.analysis = true
		m.judge = a.Judge == spec.JudgeSequential
		m.bounds = make(map[string]spec.ThresholdRange, len(a.Metrics))
		for _, mt := range a.Metrics {
			m.metrics = append(m.metrics, mt.Name)
			m.bounds[mt.Name] = mt.ThresholdRange
		}
		if m.judge {
			m.metrics = append(m.metrics, JudgeMetric)
		}
		if a.Threshold > 0 {
			m.threshold = a.Threshold
		}
		m.errorLimit = a.ConsecutiveErrorLimit
	}
	return m, nil
}

// compileCanary turns expanded canary steps into [HealthGate, steps...,
// Switch]. An empty list (AllAtOnce) gives [HealthGate, Switch].
func compileCanary(in []spec.Step) ([]Step, error) {
	out := []Step{{Kind: StepHealthGate}}
	for i, s := range in {
		switch {
		case s.SetWeight != nil:
			w := *s.SetWeight
			if w < 0 || w > 100 {
				return nil, fmt.Errorf("steps[%d].setWeight is %d; must be 0-100", i, w)
			}
			out = append(out, Step{Kind: StepSetWeight, Weight: w})
		case s.Pause != nil:
			if s.Pause.Duration.Duration < 0 {
				return nil, fmt.Errorf("steps[%d].pause.duration is %s; must not be negative", i, s.Pause.Duration)
			}
			out = append(out, Step{Kind: StepPause, Duration: s.Pause.Duration.Duration})
		default:
			return nil, fmt.Errorf("steps[%d] is empty; set setWeight or pause", i)
		}
	}
	return append(out, Step{Kind: StepSwitch}), nil
}

// compileBlueGreen turns a blue-green block (nil: the defaults) into
// [HealthGate, Pause preview?, Gate?, Switch, Bake?].
func compileBlueGreen(bg *spec.BlueGreen) []Step {
	out := []Step{{Kind: StepHealthGate}}
	if bg == nil {
		return append(out, Step{Kind: StepSwitch})
	}
	if d := bg.PreviewDuration.Duration; d > 0 {
		out = append(out, Step{Kind: StepPause, Duration: d})
	}
	if bg.AutoPromote != nil && !*bg.AutoPromote {
		out = append(out, Step{Kind: StepGate})
	}
	out = append(out, Step{Kind: StepSwitch})
	if d := bg.BakeDuration.Duration; d > 0 {
		out = append(out, Step{Kind: StepBake, Duration: d})
	}
	return out
}

// withHooks places the set lifecycle hooks into compiled steps, in
// CodeDeploy's order:
//
//   - beforeInstall, afterInstall, applicationStart, validateService right
//     after the health gate: the new version runs (its targets answer their
//     health checks) but takes no traffic yet;
//   - beforeAllowTraffic right before the first step that sends the new
//     version traffic (a canary's first setWeight above 0, otherwise the
//     switch), after a blue-green's preview and approval gate;
//   - afterAllowTraffic right after the switch, before a bake;
//   - afterPromotion last, so the rollout is promoted only once it passed:
//     its failure rolls back while the previous version is still kept,
//     which makes it the one place a cleanup can still be undone.
func withHooks(steps []Step, h *spec.Hooks) []Step {
	if h == nil {
		return steps
	}
	hook := func(name string) []Step {
		if k := h.Hook(name); k != nil {
			return []Step{{Kind: StepHook, Name: name, Timeout: k.Timeout.Duration}}
		}
		return nil
	}
	var out []Step
	allowed := false // beforeAllowTraffic placed
	for _, st := range steps {
		if !allowed && (st.Kind == StepSwitch || st.Kind == StepSetWeight && st.Weight > 0) {
			out = append(out, hook(spec.HookBeforeAllowTraffic)...)
			allowed = true
		}
		out = append(out, st)
		switch st.Kind {
		case StepHealthGate:
			for _, name := range []string{spec.HookBeforeInstall, spec.HookAfterInstall, spec.HookApplicationStart, spec.HookValidateService} {
				out = append(out, hook(name)...)
			}
		case StepSwitch:
			out = append(out, hook(spec.HookAfterAllowTraffic)...)
		}
	}
	return append(out, hook(spec.HookAfterPromotion)...)
}

// Steps returns the compiled steps of a strategy, as a new rollout of that
// strategy would run them.
func (m *Machine) Steps(kind StrategyKind) ([]Step, error) {
	switch kind {
	case StrategyCanary:
		return slices.Clone(m.canary), nil
	case StrategyBlueGreen:
		return slices.Clone(m.blueGreen), nil
	}
	return nil, fmt.Errorf("%w %q; want %q or %q", ErrUnknownStrategy, kind, StrategyCanary, StrategyBlueGreen)
}

// Reconcile brings a state (zero for a new service, or restored from the
// store) in line with the spec after a start or a config reload: it merges
// the spec's versions, and returns RegisterVersion for every version and a
// SetWeights for the weights in force, so the data plane matches the state.
// It never changes the progress of a rollout.
//
// The spec's targets win for the versions the spec lists. A version added
// by Deploy (--targets) stays while it is in use: the stable version, the
// rollout's canary and the version it started from, and the previous
// version while it is kept for rollback; any other version the spec does
// not list is dropped and retired, so a reload with files that no longer
// list it stops probing it. The spec's stable only seeds a new state: after
// that, the stable version is whatever the last rollout left.
func (m *Machine) Reconcile(s State, now time.Time) (State, []Action) {
	t := m.begin(s, now)
	if t.s.Service == "" {
		t.s.Service = m.name
	}
	if t.s.Stable == "" {
		t.s.Stable = m.stable
		t.s.Phase = PhaseStable
	}
	for _, v := range m.specVersions {
		t.setTargets(v.Name, v.Targets, false)
	}
	retired := t.dropUnused()
	if len(t.s.Weights) == 0 {
		t.s.Weights = t.effective(t.planned())
	}
	if t.s.Phase == "" {
		t.s.Phase = t.phase(t.planned())
	}
	names := make([]string, 0, len(t.s.Versions))
	for v := range t.s.Versions {
		names = append(names, v)
	}
	slices.Sort(names)
	for _, v := range names {
		t.emit(RegisterVersion{Version: v, Targets: slices.Clone(t.s.Versions[v])})
	}
	t.emit(SetWeights{Routing: t.s.routing()})
	for _, v := range retired {
		t.emit(RetireVersion{Version: v})
	}
	if r := t.s.Rollout; r != nil && r.Analysis {
		t.emit(StartAnalysis{Rollout: r.ID, Canary: r.Version, Stable: r.From, Weight: r.Weight, Checkpoint: r.JudgeCheckpoint, Phases: JudgePhases(r.Steps)})
	}
	// A hook or gate that was running when the process stopped runs again
	// (hooks must be idempotent); the runner skips one it still runs.
	if r := t.s.Rollout; r != nil && r.Pending != nil && !r.Pending.Done {
		t.emitPending(r)
	}
	return t.s, t.acts
}

// dropUnused removes the versions that neither the spec lists nor anything
// uses (see Reconcile) and returns their names, sorted.
func (t *txn) dropUnused() []string {
	listed := map[string]bool{}
	for _, v := range t.m.specVersions {
		listed[v.Name] = true
	}
	s := &t.s
	inUse := func(v string) bool {
		if listed[v] || v == s.Stable || (v == s.Previous && t.now.Before(s.PreviousUntil)) {
			return true
		}
		r := s.Rollout
		return r != nil && (v == r.Version || v == r.From)
	}
	var drop []string
	for v := range s.Versions {
		if !inUse(v) {
			drop = append(drop, v)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	slices.Sort(drop)
	t.own()
	for _, v := range drop {
		delete(s.Versions, v)
		delete(s.Health, v)
		if s.Previous == v {
			s.Previous, s.PreviousUntil = "", time.Time{}
		}
	}
	return drop
}

// Step applies one event at time now and returns the next state and the
// actions to execute, in order, after that state is persisted.
//
// The event is applied first; then time-driven checks run (progress
// deadline, retiring the previous version), then the rollout advances as far
// as it can, and finally the weights in force are derived from the plan and
// the health of the versions in play.
func (m *Machine) Step(s State, e Event, now time.Time) (State, []Action, error) {
	t := m.begin(s, now)
	if err := t.apply(e); err != nil {
		return s, nil, err
	}
	t.timers()
	t.advance()
	t.settle()
	return t.s, append(t.acts, t.retires...), nil
}
