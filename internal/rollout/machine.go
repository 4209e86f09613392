package rollout

import (
	"errors"
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
)

// Machine steps the rollouts of one service. It holds only the service's
// spec, compiled; it is immutable and safe for concurrent use.
type Machine struct {
	svc *spec.Service
}

// New compiles a defaulted, validated service spec into a Machine.
func New(svc *spec.Service) (*Machine, error) {
	return &Machine{svc: svc}, nil
}

// Reconcile brings a state (zero for a new service, or restored from the
// store) in line with the spec after a start or a config reload: it merges
// the spec's versions, and returns RegisterVersion for every version and a
// SetWeights for the weights in force, so the data plane matches the state.
// It never changes the progress of a rollout.
func (m *Machine) Reconcile(s State, now time.Time) (State, []Action) {
	panic("not implemented")
}

// Step applies one event at time now and returns the next state and the
// actions to execute, in order, after that state is persisted.
func (m *Machine) Step(s State, e Event, now time.Time) (State, []Action, error) {
	panic("not implemented")
}
