package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/runner"
)

// ErrStateChanged is returned by a status write when the engine state in
// the Rollout's status is no longer the one this controller last read or
// wrote: another writer (a second controller that believes it leads)
// changed it. The write is not retried: the state there is not
// overwritten, and the Rollout's runner is restarted from it.
var ErrStateChanged = errors.New("status.engineState was changed by another writer")

// StatusStore is the runner.Store of one Rollout: its status. Every write
// goes through the status subresource with the resourceVersion last read,
// so it is conditional. A conflict is re-read: when only the spec or
// metadata changed in between (a user's edit also bumps the
// resourceVersion), the write is repeated on the fresh object; when the
// engine state itself changed, it is ErrStateChanged and nothing is
// written.
type StatusStore struct {
	c      client.Client // writes
	reader client.Reader // fresh reads (not the cache)
	key    types.NamespacedName

	mu  sync.Mutex
	obj *v1alpha1.Rollout // as last read or written
	raw []byte            // its status.engineState
	gen int64             // the spec generation the runner runs
	// state is the engine state last read or written; saved is called
	// after each write, once state is the written one.
	state    rollout.State
	hasState bool
	saved    func()

	// pending is the answer to a request being applied: the status write
	// of its effect — the first whose history has an entry by pending's
	// requester — carries it too, so that a command is applied once even
	// when the controller stops right after (see requests.go).
	pending   *v1alpha1.RequestStatus
	pendingBy string

	writes   atomic.Int64
	failures atomic.Int64
	stale    atomic.Bool
}

var _ runner.Store = (*StatusStore)(nil)

// NewStatusStore returns the store of the Rollout key; reader should read
// the API server directly (a manager's APIReader), not a cache.
func NewStatusStore(c client.Client, reader client.Reader, key types.NamespacedName) *StatusStore {
	return &StatusStore{c: c, reader: reader, key: key}
}

// Writes is how many status writes succeeded.
func (s *StatusStore) Writes() int64 { return s.writes.Load() }

// Stale reports whether a write found the engine state changed by
// another writer.
func (s *StatusStore) Stale() bool { return s.stale.Load() }

// SetGeneration records the spec generation the runner now runs, written
// as observedGeneration (and the conditions') with the next save.
func (s *StatusStore) SetGeneration(gen int64) {
	s.mu.Lock()
	s.gen = gen
	s.mu.Unlock()
}

// Object returns a copy of the Rollout as last read or written (nil
// before the first Load), for events.
func (s *StatusStore) Object() *v1alpha1.Rollout {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obj == nil {
		return nil
	}
	return s.obj.DeepCopy()
}

// Load reads the Rollout from the API server and returns the engine
// state in its status (false when none was saved yet).
func (s *StatusStore) Load(ctx context.Context, _ string) (rollout.State, bool, error) {
	var ro v1alpha1.Rollout
	if err := s.reader.Get(ctx, s.key, &ro); err != nil {
		return rollout.State{}, false, fmt.Errorf("read rollout %s: %w", s.key, err)
	}
	st, ok, err := ro.Status.LoadEngineState()
	if err != nil {
		return rollout.State{}, false, fmt.Errorf("rollout %s: %w", s.key, err)
	}
	s.mu.Lock()
	s.obj, s.raw = &ro, engineRaw(&ro)
	s.state, s.hasState = st, ok
	s.mu.Unlock()
	return st, ok, nil
}

// Save writes st into the status (SetEngineState, the conditions and
// observedGeneration) with history appended to status.history (bounded:
// RolloutStatus.AppendHistory). A state and generation equal to the last
// written are not written again: the runner saves after every tick.
func (s *StatusStore) Save(ctx context.Context, _ string, st rollout.State, history ...rollout.HistoryEntry) error {
	var answered *v1alpha1.RequestStatus
	err := s.update(ctx, func(status *v1alpha1.RolloutStatus, gen int64) error {
		if err := status.SetEngineState(st); err != nil {
			return err
		}
		status.ObservedGeneration = gen
		setConditions(status, st, gen)
		status.AppendHistory(history...)
		answered = nil
		if s.pending != nil && byRequester(history, s.pendingBy) {
			answered = s.pending
			status.LastRequest = answered
		}
		return nil
	})
	if err != nil {
		s.failures.Add(1)
		return err
	}
	s.mu.Lock()
	if answered != nil && s.pending == answered {
		s.pending = nil
	}
	s.state, s.hasState = st, true
	saved := s.saved
	s.mu.Unlock()
	if saved != nil {
		saved()
	}
	return nil
}

// State is the engine state last read or written: what the status holds
// as far as this store knows (the runner makes a state its own only after
// Save returns, so a reconcile woken by the write reads it here).
func (s *StatusStore) State() (rollout.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.hasState
}

// SetInvalid records a spec that cannot run (Valid False with every
// problem) without touching the engine state.
func (s *StatusStore) SetInvalid(ctx context.Context, gen int64, reason, msg string) error {
	return s.update(ctx, func(status *v1alpha1.RolloutStatus, _ int64) error {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: v1alpha1.ConditionValid, Status: metav1.ConditionFalse, ObservedGeneration: gen,
			Reason: reason, Message: truncate(msg, 32000),
		})
		return nil
	})
}

// update applies mutate to the last read status and writes it,
// conditionally, by the rule of StatusStore.
func (s *StatusStore) update(ctx context.Context, mutate func(*v1alpha1.RolloutStatus, int64) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obj == nil {
		return fmt.Errorf("rollout %s: status written before it was read", s.key)
	}
	for attempt := 0; ; attempt++ {
		obj := s.obj.DeepCopy()
		if err := mutate(&obj.Status, s.gen); err != nil {
			return err
		}
		if equalStatus(&s.obj.Status, &obj.Status) {
			return nil
		}
		err := s.c.Status().Update(ctx, obj)
		if err == nil {
			s.writes.Add(1)
			s.obj, s.raw = obj, engineRaw(obj)
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= 4 {
			return fmt.Errorf("write status of rollout %s: %w", s.key, err)
		}
		var fresh v1alpha1.Rollout
		if gerr := s.reader.Get(ctx, s.key, &fresh); gerr != nil {
			return fmt.Errorf("write status of rollout %s: %w; re-read: %w", s.key, err, gerr)
		}
		if !bytes.Equal(engineRaw(&fresh), s.raw) {
			s.stale.Store(true)
			return fmt.Errorf("write status of rollout %s at resourceVersion %s (now %s): %w",
				s.key, obj.ResourceVersion, fresh.ResourceVersion, ErrStateChanged)
		}
		s.obj = &fresh
	}
}

func engineRaw(ro *v1alpha1.Rollout) []byte {
	if ro.Status.EngineState == nil {
		return nil
	}
	return ro.Status.EngineState.Raw
}

// equalStatus compares two statuses, ignoring the conditions'
// lastTransitionTime (SetStatusCondition keeps it when nothing changed).
func equalStatus(a, b *v1alpha1.RolloutStatus) bool {
	return bytes.Equal(mustJSON(a), mustJSON(b))
}

// setConditions derives Valid, Progressing and Available from st.
func setConditions(status *v1alpha1.RolloutStatus, st rollout.State, gen int64) {
	set := func(typ string, ok bool, reason, msg string) {
		cs := metav1.ConditionFalse
		if ok {
			cs = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{
			Type: typ, Status: cs, ObservedGeneration: gen, Reason: reason, Message: truncate(msg, 32000),
		})
	}
	// A newer spec found invalid (SetInvalid) stays so until a valid one
	// runs: the runner keeps saving under its last valid generation.
	if c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionValid); c == nil || c.Status == metav1.ConditionTrue || c.ObservedGeneration <= gen {
		set(v1alpha1.ConditionValid, true, "Valid", "the spec compiles into a rollout plan")
	}
	switch r := st.Rollout; {
	case r != nil:
		msg := fmt.Sprintf("rollout #%d of revision %s replacing %s", r.ID, r.Version, r.From)
		if r.StepIndex < len(r.Steps) {
			msg += fmt.Sprintf(": step %d/%d %s", r.StepIndex+1, len(r.Steps), r.Steps[r.StepIndex].Kind)
		}
		set(v1alpha1.ConditionProgressing, true, reason(string(st.Phase)), msg)
	case st.Last != nil:
		set(v1alpha1.ConditionProgressing, false, reason(string(st.Last.Result)),
			fmt.Sprintf("rollout #%d of revision %s %s: %s", st.Last.ID, st.Last.Version, st.Last.Result, st.Last.Reason))
	default:
		set(v1alpha1.ConditionProgressing, false, "Stable", "no rollout has run yet")
	}
	h := st.Health[st.Stable]
	avail, why := h.Healthy > 0 && st.Applied[st.Stable] > 0, "StableReady"
	if !avail {
		why = "StableNotServing"
	}
	set(v1alpha1.ConditionAvailable, avail, why,
		fmt.Sprintf("stable revision %s: %d/%d pods ready, %d%% of traffic", st.Stable, h.Healthy, h.Total, st.Applied[st.Stable]))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // a RolloutStatus always encodes
	}
	return b
}

// reason turns "rolled-back" into "RolledBack", a condition reason.
func reason(s string) string {
	var b strings.Builder
	up := true
	for _, r := range s {
		switch {
		case r == '-' || r == ' ' || r == '_':
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "Unknown"
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// byRequester reports whether history holds an entry by by: the effect of
// a request from by.
func byRequester(history []rollout.HistoryEntry, by string) bool {
	for _, h := range history {
		if h.By == by {
			return true
		}
	}
	return false
}
