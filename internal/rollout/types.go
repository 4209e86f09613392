// Package rollout is Switchyard's rollout engine: a pure state machine. It
// does no I/O, starts no goroutines, reads no clock and logs nothing. Time
// arrives as an argument; the caller (internal/runner, or the
// Kubernetes controller) persists the returned State before executing the
// returned Actions, and feeds their results back as Events.
//
// Every strategy compiles, when a rollout starts, to a list of steps frozen
// in Run.Steps: a canary to [HealthGate, SetWeight/Pause..., Switch, Bake?],
// a blue-green to [HealthGate, Pause preview?, Gate?, Switch, Bake?], with
// the spec's lifecycle hooks as Hook steps in CodeDeploy's order. A step
// completes when its condition holds: every target of the new version
// healthy; a pause's time (or a Promote); a Promote for a gate; the bake's
// time. With analysis, a canary does not pass a Pause or Switch unless every
// configured check's latest verdict passed since the rollout started, and a
// bake does not end unless each passed since the switch; inconclusive
// verdicts make the rollout wait, never promote. Only Promote{Full}
// overrides analysis. Threshold failed verdicts, a new version losing every
// healthy target, or the progress deadline passing in the health gate roll
// back, even while paused.
//
// The weights in force are derived after every event from the plan (the
// rollout's weight) and health: weight planned for a version with no
// healthy target moves to a healthy version in play (stable, canary, kept
// previous), and the phase is Degraded until it can move back. A rollout
// does not advance while the router reports a failure; every Tick asks the
// router again. A rollback stays in phase RollingBack until a RouterApplied
// confirms its weights.
package rollout

import (
	"context"
	"time"
)

// Phase is the coarse state of a service, as shown by `switchyard status`.
type Phase string

// Phases.
const (
	PhaseStable      Phase = "Stable"
	PhaseProgressing Phase = "Progressing"
	PhasePaused      Phase = "Paused"
	PhaseRollingBack Phase = "RollingBack"
	PhaseDegraded    Phase = "Degraded"
)

// Result is how a rollout ended.
type Result string

// Results.
const (
	ResultPromoted   Result = "promoted"
	ResultRolledBack Result = "rolled-back"
	ResultAborted    Result = "aborted"
)

// StrategyKind names a strategy.
type StrategyKind string

// Strategies.
const (
	StrategyCanary    StrategyKind = "canary"
	StrategyBlueGreen StrategyKind = "blue-green"
)

// Weights maps version name to percent of traffic. Entries sum to 100.
type Weights map[string]int

// Routing is what a TrafficRouter is asked to put in force: the weights and
// which version plays which role (routing rules such as `x-canary: true`
// reach the canary even while its weight is 0, e.g. in a blue-green preview).
type Routing struct {
	Stable  string  `json:"stable"`
	Canary  string  `json:"canary,omitempty"`
	Weights Weights `json:"weights"`
}

// TrafficRouter moves traffic: the built-in proxy, nginx or Kubernetes.
type TrafficRouter interface {
	Route(ctx context.Context, service string, r Routing) error
}

// VerdictResult is the outcome of one analysis check.
type VerdictResult string

// Verdict results. Inconclusive (no data, source down) makes the rollout
// wait; it never counts towards promotion.
const (
	VerdictPassed       VerdictResult = "passed"
	VerdictFailed       VerdictResult = "failed"
	VerdictInconclusive VerdictResult = "inconclusive"
	// VerdictError: the check could not be evaluated (a source that is
	// down, a query that returns several series). Like inconclusive, it
	// holds the rollout and never promotes.
	VerdictError VerdictResult = "error"
)

// VerdictRecord is the latest verdict of one check, kept in State.
type VerdictRecord struct {
	Metric  string        `json:"metric"`
	Result  VerdictResult `json:"result"`
	Value   float64       `json:"value"`
	Samples int64         `json:"samples"`
	Reason  string        `json:"reason,omitempty"`
	At      time.Time     `json:"at"`
	// From is when the verdict's window began (zero when not known).
	From time.Time `json:"from,omitempty"`
	// Evidence is the sequential judge's statistics at this verdict.
	Evidence *Evidence `json:"evidence,omitempty"`
}

// JudgeMetric is the name of the sequential judge's verdicts.
const JudgeMetric = "judge"

// Evidence is the sequential judge's statistics at one verdict: the
// ledger of its tests over time.
type Evidence struct {
	// Seconds is how long the judge has watched canary traffic.
	Seconds        int64 `json:"seconds"`
	CanaryRequests int64 `json:"canaryRequests"`
	CanaryErrors   int64 `json:"canaryErrors"`
	StableRequests int64 `json:"stableRequests"`
	StableErrors   int64 `json:"stableErrors"`
	// ErrorEvidence and LatencyEvidence are the e-values of the error and
	// latency tests (a rollback at 1/α and 2/α).
	ErrorEvidence   float64 `json:"errorEvidence"`
	LatencyEvidence float64 `json:"latencyEvidence"`
	// The promotion bounds, in percent: the canary's upper bounds against
	// stable's lower bounds of the error rate and the slow-request rate.
	CanaryErrorUpper float64 `json:"canaryErrorUpper,omitempty"`
	StableErrorLower float64 `json:"stableErrorLower,omitempty"`
	CanarySlowUpper  float64 `json:"canarySlowUpper,omitempty"`
	StableSlowLower  float64 `json:"stableSlowLower,omitempty"`
	// Decision is "rollback", "promote" or "hold" when a test fired.
	Decision string `json:"decision,omitempty"`
	// Test is the test that fired.
	Test string `json:"test,omitempty"`
}

// HistoryEntry is one line of a rollout's timeline.
type HistoryEntry struct {
	At      time.Time `json:"at"`
	Rollout uint64    `json:"rollout"`
	// Kind is one of "deploy" (a rollout started, by Deploy or Retry),
	// "step", "switched", "weights", "verdict", "promote", "paused",
	// "resumed", "promoted", "rolled-back", "aborted", "rollback" (manual),
	// "retired", "router-failed", "degraded", "recovered", "judge-promote"
	// (the sequential judge decided to promote).
	Kind    string         `json:"kind"`
	By      string         `json:"by,omitempty"`
	Step    int            `json:"step,omitempty"`
	Weights Weights        `json:"weights,omitempty"`
	Verdict *VerdictRecord `json:"verdict,omitempty"`
	Message string         `json:"message,omitempty"`
}
