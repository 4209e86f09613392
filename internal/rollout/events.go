package rollout

import (
	"encoding/json"
	"time"
)

// Event is an input to Machine.Step. Commands (Deploy … Rollback) come from
// users through the admin API; the rest come from the runner.
type Event interface{ eventName() string }

// Deploy starts a rollout of Version. Targets, when set, define (or redefine)
// the version's targets. Strategy, when set, overrides the spec's. Force
// aborts a running rollout first instead of refusing.
type Deploy struct {
	Version  string       `json:"version"`
	Targets  []string     `json:"targets,omitempty"`
	Strategy StrategyKind `json:"strategy,omitempty"`
	Force    bool         `json:"force,omitempty"`
	By       string       `json:"by,omitempty"`
}

// Promote advances past the current step; Full skips every remaining step,
// gate and analysis and sends all traffic to the new version.
type Promote struct {
	Full bool   `json:"full,omitempty"`
	By   string `json:"by,omitempty"`
}

// Pause stops a rollout where it is (weights unchanged) until Resume.
type Pause struct {
	By string `json:"by,omitempty"`
}

// Resume continues a paused rollout.
type Resume struct {
	By string `json:"by,omitempty"`
}

// Abort sends all traffic to the stable version now and ends the rollout.
type Abort struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// Retry restarts the last aborted or rolled-back rollout from its first step.
type Retry struct {
	By string `json:"by,omitempty"`
}

// Rollback returns to the previous version after a finished rollout, while
// that version is still kept (scaleDownDelay).
type Rollback struct {
	By string `json:"by,omitempty"`
}

// RemoveVersion forgets a version added by a deploy (--targets) that
// nothing uses: its targets drain and stop being probed. The stable
// version, the versions of a running rollout, the previous version while it
// is kept and a version the spec lists are refused.
type RemoveVersion struct {
	Version string `json:"version"`
	By      string `json:"by,omitempty"`
}

// Tick lets time-driven transitions happen (pause ends, deadlines, bake
// windows, scale-down). The runner sends one at least every second.
type Tick struct{}

// HealthChanged reports the health of one version's targets.
type HealthChanged struct {
	Version string `json:"version"`
	Healthy int    `json:"healthy"`
	Total   int    `json:"total"`
}

// Verdict is the result of one analysis check of the canary.
type Verdict struct {
	Metric  string        `json:"metric"`
	Result  VerdictResult `json:"result"`
	Value   float64       `json:"value"`
	Samples int64         `json:"samples"`
	Reason  string        `json:"reason,omitempty"`
	// Window is how long the measurement lasted, ending when the verdict
	// arrives; it decides which step the verdict counts for.
	Window time.Duration `json:"window,omitempty"`
	// Breaker marks a hard-signal verdict (analysis.breaker): a failed one
	// rolls back at once, whatever the threshold.
	Breaker bool `json:"breaker,omitempty"`
	// Promote marks the sequential judge's decision to promote (a passed
	// verdict): the rollout goes to 100% at once, past any weight step,
	// timed pause or bake; a manual pause still waits for a person.
	Promote bool `json:"promote,omitempty"`
	// Hold marks the judge's "no decision after maxDuration": the rollout
	// pauses for a person.
	Hold bool `json:"hold,omitempty"`
	// Evidence is the judge's statistics, recorded in the history.
	Evidence *Evidence `json:"evidence,omitempty"`
	// Checkpoint is the judge's state to resume from, kept in the run.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// RouterApplied confirms that the weights of a SetWeights action are in force.
type RouterApplied struct {
	Weights Weights `json:"weights"`
}

// RouterFailed reports that a SetWeights action could not be applied.
type RouterFailed struct {
	Weights Weights `json:"weights"`
	Error   string  `json:"error"`
}

// HookDone reports the end of a RunHook action. Err is empty when the hook
// succeeded; Output is what it printed (bounded by the executor).
type HookDone struct {
	Rollout uint64 `json:"rollout"`
	Step    int    `json:"step"`
	Attempt int    `json:"attempt"`
	Name    string `json:"name"`
	Err     string `json:"err,omitempty"`
	Output  string `json:"output,omitempty"`
}

// GateAnswered reports that an OpenGate action's gate opened (Open) or was
// refused for good (!Open, with Message saying why).
type GateAnswered struct {
	Rollout uint64 `json:"rollout"`
	Step    int    `json:"step"`
	Attempt int    `json:"attempt"`
	Name    string `json:"name"`
	Open    bool   `json:"open"`
	Message string `json:"message,omitempty"`
}

func (Deploy) eventName() string        { return "deploy" }
func (Promote) eventName() string       { return "promote" }
func (Pause) eventName() string         { return "pause" }
func (Resume) eventName() string        { return "resume" }
func (Abort) eventName() string         { return "abort" }
func (Retry) eventName() string         { return "retry" }
func (Rollback) eventName() string      { return "rollback" }
func (Tick) eventName() string          { return "tick" }
func (RemoveVersion) eventName() string { return "remove-version" }
func (HealthChanged) eventName() string { return "health" }
func (Verdict) eventName() string       { return "verdict" }
func (RouterApplied) eventName() string { return "router-applied" }
func (RouterFailed) eventName() string  { return "router-failed" }
func (HookDone) eventName() string      { return "hook-done" }
func (GateAnswered) eventName() string  { return "gate-answered" }

// EventName is the short name of an event, for logs and history.
func EventName(e Event) string { return e.eventName() }
