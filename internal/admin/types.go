// Package admin is Switchyard's admin API: JSON under /api/v1/, a
// server-sent-events stream of rollout events, /healthz, /readyz and
// /metrics, behind a bearer token; and the Go client the CLI uses.
package admin

import (
	"context"
	"errors"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// Errors a Controller returns; the server maps them to HTTP status codes
// (404, 409, 400) and the client maps them back.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Controller is what the admin API needs from the daemon.
type Controller interface {
	// Services lists every service's status, sorted by name.
	Services(ctx context.Context) ([]ServiceStatus, error)
	// Service returns one service's status, or an error wrapping ErrNotFound.
	Service(ctx context.Context, name string) (ServiceStatus, error)
	// Command submits a rollout command (rollout.Deploy, Promote, Pause,
	// Resume, Abort, Retry, Rollback) and returns the status after it was
	// applied and persisted. Refusals wrap ErrConflict or ErrInvalid.
	Command(ctx context.Context, name string, cmd rollout.Event) (ServiceStatus, error)
	// History returns a service's rollout timeline, newest last; limit <= 0 means all.
	History(ctx context.Context, name string, limit int) ([]rollout.HistoryEntry, error)
	// Apply validates YAML service documents fully and swaps them in
	// (upsert by name); on any error nothing changes. Errors wrap ErrInvalid.
	Apply(ctx context.Context, yaml []byte) ([]string, error)
	// Subscribe streams rollout events until ctx ends or cancel is called.
	Subscribe(ctx context.Context) (events <-chan StreamEvent, cancel func())
}

// ServiceStatus is what `switchyard status -o json` prints for one service.
type ServiceStatus struct {
	Name            string               `json:"name"`
	Listen          string               `json:"listen,omitempty"`
	Phase           rollout.Phase        `json:"phase"`
	StableVersion   string               `json:"stableVersion"`
	CanaryVersion   string               `json:"canaryVersion,omitempty"`
	PreviousVersion string               `json:"previousVersion,omitempty"`
	PreviousUntil   *time.Time           `json:"previousUntil,omitempty"`
	Strategy        rollout.StrategyKind `json:"strategy,omitempty"`
	Weights         rollout.Weights      `json:"weights"`
	// AppliedWeights are the weights the router last confirmed (in force);
	// they differ from Weights while a change is pending or failed.
	AppliedWeights rollout.Weights         `json:"appliedWeights,omitempty"`
	Step           StepStatus              `json:"step"`
	Paused         bool                    `json:"paused,omitempty"`
	Targets        []TargetStatus          `json:"targets"`
	LastVerdicts   []rollout.VerdictRecord `json:"lastVerdicts,omitempty"`
	FailedChecks   int                     `json:"failedChecks,omitempty"`
	Threshold      int                     `json:"threshold,omitempty"`
	Rollout        *RolloutStatus          `json:"rollout,omitempty"`
	LastRollout    *RolloutStatus          `json:"lastRollout,omitempty"`
	Message        string                  `json:"message,omitempty"`
}

// StepStatus is the current step of a rollout (Index is 0-based; Total is
// 0 when no rollout runs).
type StepStatus struct {
	Index       int    `json:"index"`
	Total       int    `json:"total"`
	Kind        string `json:"kind,omitempty"`
	Description string `json:"description,omitempty"`
}

// TargetStatus is the health of one target.
type TargetStatus struct {
	Version string `json:"version"`
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	// Ejected is set while passive health checks keep the target out.
	Ejected   bool   `json:"ejected,omitempty"`
	LastError string `json:"lastError,omitempty"`
}

// RolloutStatus describes a rollout in progress or the last finished one.
type RolloutStatus struct {
	ID         uint64               `json:"id"`
	Version    string               `json:"version"`
	From       string               `json:"from,omitempty"`
	Strategy   rollout.StrategyKind `json:"strategy,omitempty"`
	By         string               `json:"by,omitempty"`
	StartedAt  time.Time            `json:"startedAt"`
	FinishedAt *time.Time           `json:"finishedAt,omitempty"`
	Result     rollout.Result       `json:"result,omitempty"`
	Reason     string               `json:"reason,omitempty"`
}

// StreamEvent is one server-sent event on /api/v1/events.
type StreamEvent struct {
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Service string          `json:"service"`
	Kind    string          `json:"kind"`
	Message string          `json:"message,omitempty"`
	Rollout uint64          `json:"rollout,omitempty"`
	Phase   rollout.Phase   `json:"phase,omitempty"`
	Weights rollout.Weights `json:"weights,omitempty"`
	Result  rollout.Result  `json:"result,omitempty"`
}

// DeployRequest is the body of POST /api/v1/services/{name}/deploy.
type DeployRequest struct {
	Version  string               `json:"version"`
	Targets  []string             `json:"targets,omitempty"`
	Strategy rollout.StrategyKind `json:"strategy,omitempty"`
	Force    bool                 `json:"force,omitempty"`
}

// PromoteRequest is the body of POST /api/v1/services/{name}/promote.
type PromoteRequest struct {
	Full bool `json:"full,omitempty"`
}

// AbortRequest is the body of POST /api/v1/services/{name}/abort.
type AbortRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ErrorResponse is the body of every non-2xx API answer.
type ErrorResponse struct {
	Error string `json:"error"`
	// Code is "not_found", "conflict", "invalid", "unauthorized", "forbidden" or "internal".
	Code string `json:"code"`
}
