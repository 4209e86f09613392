package rollout

import (
	"encoding/json"
	"time"
)

// State is everything the machine knows about one service. It is a plain
// value: the store serialises it as JSON, and restoring it and stepping again
// gives the same result as never having stopped.
type State struct {
	Service string `json:"service"`
	Phase   Phase  `json:"phase"`
	// Stable is the version that takes traffic when no rollout runs.
	Stable string `json:"stable"`
	// Weights are the weights last asked of the router.
	Weights Weights `json:"weights"`
	// Applied are the weights the router last confirmed: the weights in
	// force. They differ from Weights while the router has not applied
	// (or failed to apply) the newest ones; nil until the first.
	Applied Weights `json:"applied,omitempty"`
	// Versions holds the targets of every version the machine has been told
	// about (from the spec and from Deploy events).
	Versions map[string][]string `json:"versions,omitempty"`
	// Health is the latest known health of each version.
	Health map[string]VersionHealth `json:"health,omitempty"`
	// Rollout is the rollout in progress, or nil.
	Rollout *Run `json:"rollout,omitempty"`
	// Last is the most recent finished rollout, kept for status, retry and rollback.
	Last *Run `json:"last,omitempty"`
	// Previous is the version replaced by the last promotion, still routable
	// (for an instant rollback) until PreviousUntil.
	Previous      string    `json:"previous,omitempty"`
	PreviousUntil time.Time `json:"previousUntil,omitempty"`
	// NextRollout numbers rollouts; IDs are never reused.
	NextRollout uint64 `json:"nextRollout"`
	// RouterError is the last router failure, cleared on RouterApplied.
	RouterError string `json:"routerError,omitempty"`
}

// VersionHealth counts a version's healthy targets.
type VersionHealth struct {
	Healthy int `json:"healthy"`
	Total   int `json:"total"`
}

// Run is one rollout: the new version, its compiled steps and its progress.
type Run struct {
	ID       uint64       `json:"id"`
	Version  string       `json:"version"`
	From     string       `json:"from"` // the stable version when it started
	Strategy StrategyKind `json:"strategy"`
	By       string       `json:"by,omitempty"`
	// Steps are compiled when the rollout starts, so a later config change
	// cannot alter a rollout in flight and a restore replays the same plan.
	Steps     []Step    `json:"steps"`
	StepIndex int       `json:"stepIndex"`
	StartedAt time.Time `json:"startedAt"`
	// StepStartedAt is when the current step began.
	StepStartedAt time.Time `json:"stepStartedAt"`
	// Deadline is when the rollout is rolled back if the new version has not
	// become healthy (progressDeadline).
	Deadline time.Time `json:"deadline,omitempty"`
	// Paused is set by a Pause command; PausedAt is when.
	Paused   bool      `json:"paused,omitempty"`
	PausedAt time.Time `json:"pausedAt,omitempty"`
	// FailedChecks counts failed verdicts; Threshold failed checks roll back.
	FailedChecks int `json:"failedChecks"`
	Threshold    int `json:"threshold"`
	// Unjudged counts, per check, the inconclusive or error verdicts in a
	// row; ErrorLimit of them pause the rollout.
	Unjudged   map[string]int           `json:"unjudged,omitempty"`
	ErrorLimit int                      `json:"errorLimit,omitempty"`
	Verdicts   map[string]VerdictRecord `json:"verdicts,omitempty"`
	Analysis   bool                     `json:"analysis,omitempty"`
	// Metrics are the analysis checks configured when the rollout started;
	// each must have passed before the rollout advances past a pause,
	// switch or bake step.
	Metrics []string `json:"metrics,omitempty"`
	// Weight is the planned percent of traffic for Version before the switch;
	// WeightSince is when it took that weight.
	Weight      int       `json:"weight"`
	WeightSince time.Time `json:"weightSince,omitempty"`
	// Switched is set once the Switch step has made Version the stable one;
	// SwitchedAt is when.
	Switched   bool      `json:"switched,omitempty"`
	SwitchedAt time.Time `json:"switchedAt,omitempty"`
	// StepPromoted records a Promote for the current Pause, Gate or Bake
	// step: its wait is over, but analysis may still hold it.
	StepPromoted bool `json:"stepPromoted,omitempty"`
	// Judge is set when the sequential judge watches this rollout
	// (analysis.judge: sequential); JudgePromoted once it decided to
	// promote: the remaining weight steps, timed pauses and bake are
	// skipped, and the switch (which waits for it) may happen.
	Judge         bool `json:"judge,omitempty"`
	JudgePromoted bool `json:"judgePromoted,omitempty"`
	// JudgeCheckpoint is the judge's last saved state (its own format), so
	// that a restarted process resumes the same tests.
	JudgeCheckpoint json.RawMessage `json:"judgeCheckpoint,omitempty"`
	// Pending is the asynchronous action of the current step, if any.
	Pending *Pending `json:"pending,omitempty"`
	// Attempts counts the asynchronous actions started in this rollout, so
	// every one has its own attempt number.
	Attempts int `json:"attempts,omitempty"`
	// Result and Reason are set when the rollout ends.
	Result     Result    `json:"result,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitempty"`
}

// StepKind names a compiled step.
type StepKind string

// Step kinds. Every strategy compiles to a list of these.
const (
	// StepHealthGate waits until every target of the new version is healthy.
	StepHealthGate StepKind = "HealthGate"
	// StepSetWeight sends Weight percent to the new version.
	StepSetWeight StepKind = "SetWeight"
	// StepPause waits Duration, or for Promote when Duration is zero.
	StepPause StepKind = "Pause"
	// StepGate waits for Promote (blue-green manual approval) or, when
	// Name is set, for the named gate (a confirm-* webhook) to open.
	StepGate StepKind = "Gate"
	// StepHook runs the named hook and waits for it to succeed within
	// Timeout; a failure or a timeout rolls back.
	StepHook StepKind = "Hook"
	// StepSwitch sends 100% to the new version atomically.
	StepSwitch StepKind = "Switch"
	// StepBake watches the new version at 100% for Duration; failed analysis switches back.
	StepBake StepKind = "Bake"
)

// stepKinds are the kinds this version knows; a stored state with any other
// is refused at load (State.Validate), never skipped.
var stepKinds = []StepKind{StepHealthGate, StepSetWeight, StepPause, StepGate, StepHook, StepSwitch, StepBake}

// Step is one compiled step.
type Step struct {
	Kind     StepKind      `json:"kind"`
	Weight   int           `json:"weight,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Name is the hook of a Hook step, or the gate of a Gate step that
	// waits for something other than a person.
	Name string `json:"name,omitempty"`
	// Timeout bounds a Hook step's run, or a named Gate's wait.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Pending is an asynchronous action the current step started (a hook, a
// gate's poll): the runner executes it outside the machine and reports its
// result as an event naming the same rollout, step and attempt. Its
// deadline is in the state, so a crash mid-action is resumed from the store
// (the runner starts it again) and a hang is caught by a Tick.
type Pending struct {
	Kind      StepKind  `json:"kind"`
	Name      string    `json:"name"`
	Step      int       `json:"step"`
	Attempt   int       `json:"attempt"`
	StartedAt time.Time `json:"startedAt"`
	Deadline  time.Time `json:"deadline,omitempty"`
	// Done is set once the result arrived; OK says whether it succeeded.
	Done bool `json:"done,omitempty"`
	OK   bool `json:"ok,omitempty"`
}
