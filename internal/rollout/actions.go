package rollout

import (
	"encoding/json"
	"slices"
	"time"
)

// Action is an output of Machine.Step, executed by the runner in order after
// the new State has been persisted.
type Action interface{ actionName() string }

// SetWeights asks the TrafficRouter to put Routing in force. The runner
// answers with RouterApplied or RouterFailed.
type SetWeights struct {
	Routing Routing `json:"routing"`
}

// RegisterVersion tells the data plane (and health checker) about a version's
// targets, before any traffic is sent to it.
type RegisterVersion struct {
	Version string   `json:"version"`
	Targets []string `json:"targets"`
}

// RetireVersion tells the data plane a version is no longer kept: its
// targets drain and stop being health-checked unless the spec lists them.
// Step emits it after every other action, so traffic has moved off first.
type RetireVersion struct {
	Version string `json:"version"`
}

// StartAnalysis asks the runner to evaluate the analysis checks of Canary
// against Stable every interval and feed Verdict events.
type StartAnalysis struct {
	// Rollout is the rollout's ID: a judge that spans the weights of one
	// rollout keeps its evidence across the StartAnalysis of each weight.
	Rollout uint64 `json:"rollout,omitempty"`
	Canary  string `json:"canary"`
	Stable  string `json:"stable"`
	// Weight is the canary's weight the analysis measures; a new weight
	// starts a new analysis.
	Weight int `json:"weight,omitempty"`
	// Checkpoint is the sequential judge's last saved state (Reconcile
	// after a restart, or a new weight).
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	// Phases are the weights the rollout's steps give the canary
	// (JudgePhases): the judge splits its promotion comparison over them.
	Phases []int `json:"phases,omitempty"`
}

// StopAnalysis stops the analysis started by StartAnalysis.
type StopAnalysis struct{}

// Notify tells people (logs, SSE stream, webhooks) what happened.
type Notify struct {
	Kind    string  `json:"kind"`
	Message string  `json:"message"`
	Weights Weights `json:"weights,omitempty"`
}

// RecordHistory appends to the rollout's timeline in the store. The runner
// persists it in the same transaction as the new State.
type RecordHistory struct {
	Entry HistoryEntry `json:"entry"`
}

// Finished reports that a rollout ended, with its result (for metrics such
// as switchyard_rollouts_total and for `deploy --wait`).
type Finished struct {
	Rollout uint64 `json:"rollout"`
	Version string `json:"version"`
	Result  Result `json:"result"`
	Reason  string `json:"reason,omitempty"`
}

// RunHook asks the runner to run a hook asynchronously and answer with a
// HookDone naming the same Rollout, Step and Attempt. Deadline is when the
// machine gives up on it (the runner should stop it by then).
//
// It carries what the hook is told about the rollout (its environment), as
// the state knew it when the hook started, so an executor needs nothing
// but the action and the service's spec.
type RunHook struct {
	Rollout  uint64    `json:"rollout"`
	Step     int       `json:"step"`
	Attempt  int       `json:"attempt"`
	Name     string    `json:"name"`
	Deadline time.Time `json:"deadline,omitempty"`

	Service  string       `json:"service,omitempty"`
	Strategy StrategyKind `json:"strategy,omitempty"`
	Phase    Phase        `json:"phase,omitempty"`
	// Version and Targets are the new version's; From and FromTargets the
	// version it replaces (the stable one when the rollout started).
	Version     string   `json:"version,omitempty"`
	Targets     []string `json:"targets,omitempty"`
	From        string   `json:"from,omitempty"`
	FromTargets []string `json:"fromTargets,omitempty"`
	// Weight is the percent of traffic planned for Version when the hook
	// started (100 once switched).
	Weight int `json:"weight"`
}

// runHook builds the RunHook of r's pending hook p.
func (t *txn) runHook(r *Run, p *Pending) RunHook {
	w := r.Weight
	if r.Switched {
		w = 100
	}
	return RunHook{
		Rollout: r.ID, Step: p.Step, Attempt: p.Attempt, Name: p.Name, Deadline: p.Deadline,
		Service: t.s.Service, Strategy: r.Strategy, Phase: t.s.Phase,
		Version: r.Version, Targets: slices.Clone(t.s.Versions[r.Version]),
		From: r.From, FromTargets: slices.Clone(t.s.Versions[r.From]),
		Weight: w,
	}
}

// OpenGate asks the runner to wait, asynchronously, for the named gate (a
// confirm-* webhook, polled) and answer with a GateAnswered.
type OpenGate struct {
	Rollout  uint64    `json:"rollout"`
	Step     int       `json:"step"`
	Attempt  int       `json:"attempt"`
	Name     string    `json:"name"`
	Deadline time.Time `json:"deadline,omitempty"`
	// Service and Version name the rollout the gate is asked about.
	Service string `json:"service,omitempty"`
	Version string `json:"version,omitempty"`
}

func (SetWeights) actionName() string      { return "set-weights" }
func (RegisterVersion) actionName() string { return "register-version" }
func (RetireVersion) actionName() string   { return "retire-version" }
func (StartAnalysis) actionName() string   { return "start-analysis" }
func (StopAnalysis) actionName() string    { return "stop-analysis" }
func (Notify) actionName() string          { return "notify" }
func (RecordHistory) actionName() string   { return "record-history" }
func (Finished) actionName() string        { return "finished" }
func (RunHook) actionName() string         { return "run-hook" }
func (OpenGate) actionName() string        { return "open-gate" }

// ActionName is the short name of an action, for logs.
func ActionName(a Action) string { return a.actionName() }
