// Package rollout is Switchyard's rollout engine: a pure state machine. It
// does no I/O, starts no goroutines, reads no clock and logs nothing. Time
// arrives as an argument; the caller (the runner in internal/daemon, or the
// Kubernetes controller) persists the returned State before executing the
// returned Actions, and feeds their results back as Events.
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
)

// VerdictRecord is the latest verdict of one check, kept in State.
type VerdictRecord struct {
	Metric  string        `json:"metric"`
	Result  VerdictResult `json:"result"`
	Value   float64       `json:"value"`
	Samples int64         `json:"samples"`
	Reason  string        `json:"reason,omitempty"`
	At      time.Time     `json:"at"`
}

// HistoryEntry is one line of a rollout's timeline.
type HistoryEntry struct {
	At      time.Time      `json:"at"`
	Rollout uint64         `json:"rollout"`
	Kind    string         `json:"kind"` // e.g. "deploy", "step", "weights", "verdict", "promoted", "rolled-back", "aborted", "paused", "resumed"
	By      string         `json:"by,omitempty"`
	Step    int            `json:"step,omitempty"`
	Weights Weights        `json:"weights,omitempty"`
	Verdict *VerdictRecord `json:"verdict,omitempty"`
	Message string         `json:"message,omitempty"`
}
