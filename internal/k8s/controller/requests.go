package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
)

// A command for a Rollout's running rollout (the CLI's promote, pause,
// resume, abort, retry through a kubeconfig) is a Request in the
// switchyard.dev/request annotation. The controller applies a request
// whose id is not status.lastRequest.id to the Rollout's runner, once,
// and answers in status.lastRequest: done, or refused with the engine's
// reason. The answer of a request that changes the engine state goes in
// the same status write as the change (StatusStore.pending), so a
// controller that stops between the two cannot apply it twice; a write
// that fails leaves the request unanswered, and it is applied on the next
// reconcile.

// unanswered returns the request in ro's annotation when its id is not
// answered's (the id of the last answered request), and the parse error
// of a value that is not a request. A value without a readable id is
// known by its hash.
func unanswered(ro *v1alpha1.Rollout, answered string) (req v1alpha1.Request, perr error, ok bool) {
	raw, found := ro.Annotations[v1alpha1.AnnotationRequest]
	if !found {
		return v1alpha1.Request{}, nil, false
	}
	req, perr = v1alpha1.ParseRequest(raw)
	if perr != nil {
		sum := sha256.Sum256([]byte(raw))
		req = v1alpha1.Request{ID: "invalid-" + hex.EncodeToString(sum[:6])}
	}
	return req, perr, req.ID != answered
}

// requestEvent is the engine command of req.
func requestEvent(req v1alpha1.Request) (rollout.Event, error) {
	switch req.Command {
	case v1alpha1.CommandPromote:
		return rollout.Promote{Full: req.Full, By: req.By}, nil
	case v1alpha1.CommandPause:
		return rollout.Pause{By: req.By}, nil
	case v1alpha1.CommandResume:
		return rollout.Resume{By: req.By}, nil
	case v1alpha1.CommandAbort:
		return rollout.Abort{Reason: req.Reason, By: req.By}, nil
	case v1alpha1.CommandRetry:
		return rollout.Retry{By: req.By}, nil
	case v1alpha1.CommandRollback:
		return nil, errors.New("rollback is not a command on a cluster: the Rollout's spec is the version to run; " +
			"set spec.template (or the workloadRef Deployment) back to the previous version, or abort a rollout in progress")
	}
	return nil, fmt.Errorf("command %q is not one of promote, pause, resume, abort, retry", req.Command)
}

// handleRequest applies the unanswered request of ro, if any, to the
// running Rollout e. It returns an error (and the request stays
// unanswered, for the next reconcile) only when the command could not be
// applied for a reason of the moment: a failed status write, a runner
// that stopped, another writer.
func (c *Controller) handleRequest(ctx context.Context, ro *v1alpha1.Rollout, e *entry) error {
	req, perr, ok := unanswered(ro, e.store.LastRequestID())
	if !ok {
		return nil
	}
	answer := &v1alpha1.RequestStatus{ID: req.ID, Command: req.Command, Result: v1alpha1.RequestDone}
	if req.By == "" {
		req.By = "kubectl"
	}
	ev, err := requestEvent(req)
	if perr != nil {
		err = perr
	}
	if err != nil {
		return c.answer(ctx, ro, e.store, answer, err)
	}
	failures := e.store.failures.Load()
	e.store.expect(answer, req.By)
	err = e.runner.Submit(ctx, ev)
	consumed := e.store.unexpect(answer)
	if err != nil {
		if e.store.failures.Load() != failures || e.store.Stale() || isDone(e.runner) || ctx.Err() != nil {
			return fmt.Errorf("rollout %s: apply request %s (%s): %w", ro.Name, req.ID, req.Command, err)
		}
		return c.answer(ctx, ro, e.store, answer, err)
	}
	c.log.Info("request applied", "rollout", ro.Namespace+"/"+ro.Name, "request", req.ID, "command", req.Command, "by", req.By)
	if consumed {
		return nil
	}
	// A command without an entry of its own in the history (none of the
	// engine's do that today): answered by a write of its own.
	return c.answer(ctx, ro, e.store, answer, nil)
}

// refuseRequest answers ro's unanswered request, if any, refused because
// the Rollout cannot take commands now (why).
func (c *Controller) refuseRequest(ctx context.Context, ro *v1alpha1.Rollout, store *StatusStore, why error) error {
	req, _, ok := unanswered(ro, store.LastRequestID())
	if !ok {
		return nil
	}
	return c.answer(ctx, ro, store, &v1alpha1.RequestStatus{ID: req.ID, Command: req.Command}, why)
}

// answer writes a request's answer: done, or refused with err.
func (c *Controller) answer(ctx context.Context, ro *v1alpha1.Rollout, store *StatusStore, a *v1alpha1.RequestStatus, err error) error {
	a.Result, a.Message = v1alpha1.RequestDone, ""
	if err != nil {
		a.Result, a.Message = v1alpha1.RequestRefused, truncate(err.Error(), 4000)
		c.recorder.Eventf(ro, nil, corev1.EventTypeWarning, "RequestRefused", "Request", "%s (request %s): %s", a.Command, a.ID, truncate(err.Error(), 1000))
	}
	return store.Answer(ctx, a)
}

// LastRequestID is the id of the request the status last answered, as
// last read or written.
func (s *StatusStore) LastRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obj == nil || s.obj.Status.LastRequest == nil {
		return ""
	}
	return s.obj.Status.LastRequest.ID
}

// expect makes a the answer carried by the next save whose history has an
// entry by by.
func (s *StatusStore) expect(a *v1alpha1.RequestStatus, by string) {
	s.mu.Lock()
	a.At = metav1.NewTime(time.Now())
	s.pending, s.pendingBy = a, by
	s.mu.Unlock()
}

// unexpect withdraws a, and reports whether a save carried it.
func (s *StatusStore) unexpect(a *v1alpha1.RequestStatus) (carried bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == a {
		s.pending, s.pendingBy = nil, ""
		return false
	}
	return s.obj != nil && s.obj.Status.LastRequest != nil && s.obj.Status.LastRequest.ID == a.ID
}

// Answer records a request's answer in status.lastRequest.
func (s *StatusStore) Answer(ctx context.Context, a *v1alpha1.RequestStatus) error {
	if a.At.IsZero() {
		a.At = metav1.NewTime(time.Now())
	}
	return s.update(ctx, func(status *v1alpha1.RolloutStatus, _ int64) error {
		status.LastRequest = a.DeepCopy()
		return nil
	})
}
