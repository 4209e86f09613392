package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// dataPlane is what a runner needs from the thing that moves traffic and
// watches targets (the built-in proxy).
type dataPlane interface {
	rollout.TrafficRouter
	SetVersion(service, version string, targets []string) error
	RemoveVersion(service, version string) error
}

// stateStore persists a service's state and history in one transaction.
type stateStore interface {
	Save(ctx context.Context, service string, st rollout.State, history ...rollout.HistoryEntry) error
}

// runnerDeps are the shell's collaborators shared by every runner.
type runnerDeps struct {
	log      *slog.Logger
	store    stateStore
	plane    dataPlane
	now      func() time.Time
	tick     time.Duration
	publish  func(ev streamEvent)
	finished func(service string, f rollout.Finished)
	// analyze starts the analysis of rollout id, sending verdicts to out.
	analyze func(ctx context.Context, svc *spec.Service, id uint64, a *rollout.StartAnalysis, out chan<- verdict) analysisHandle
	// health returns the data plane's current health counts per version.
	health func(service string) map[string]rollout.VersionHealth
}

// analysisHandle stops an analysis loop started for a rollout.
type analysisHandle interface{ Stop() }

// streamEvent is a notification for the SSE stream and the logs.
type streamEvent struct {
	service string
	kind    string
	message string
	rollout uint64
	phase   rollout.Phase
	weights rollout.Weights
	result  rollout.Result
}

// verdict is an analysis result for one rollout.
type verdict struct {
	rollout uint64
	rollout.Verdict
}

// request is a command submitted to a runner and its answer.
type request struct {
	event rollout.Event
	reply chan error
}

// runner is the shell around one service's rollout machine: it is the only
// goroutine that changes the service's state. Every event goes through step,
// which persists the new state before executing any action.
type runner struct {
	deps runnerDeps
	name string

	requests chan request
	reconfig chan reconfigRequest
	healthCh chan struct{} // signalled when pendingHealth changes
	verdicts chan verdict

	mu            sync.Mutex // guards the fields below, read by status
	svc           *spec.Service
	machine       *rollout.Machine
	state         rollout.State
	pendingHealth map[string]rollout.VersionHealth

	// started is closed once the restored state is reconciled and in force;
	// done when run returns, with err saying why if it failed.
	started chan struct{}
	done    chan struct{}
	err     error

	// owned by the runner goroutine
	registered      map[string]bool
	analysis        analysisHandle
	analysisRollout uint64
}

// reconfigRequest swaps in a new spec and its compiled machine.
type reconfigRequest struct {
	svc     *spec.Service
	machine *rollout.Machine
	reply   chan error
}

func newRunner(deps runnerDeps, svc *spec.Service, m *rollout.Machine, st rollout.State) *runner {
	return &runner{
		deps:          deps,
		name:          svc.Metadata.Name,
		requests:      make(chan request),
		reconfig:      make(chan reconfigRequest),
		started:       make(chan struct{}),
		done:          make(chan struct{}),
		healthCh:      make(chan struct{}, 1),
		verdicts:      make(chan verdict, 16),
		svc:           svc,
		machine:       m,
		state:         st,
		pendingHealth: map[string]rollout.VersionHealth{},
		registered:    map[string]bool{},
	}
}

// snapshot returns the current spec and state for status.
func (r *runner) snapshot() (*spec.Service, rollout.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.svc, r.state
}

// healthChanged records a version's health; the runner picks it up. It
// never blocks, so the health checker is never held up by a busy runner.
func (r *runner) healthChanged(version string, healthy, total int) {
	r.mu.Lock()
	r.pendingHealth[version] = rollout.VersionHealth{Healthy: healthy, Total: total}
	r.mu.Unlock()
	select {
	case r.healthCh <- struct{}{}:
	default:
	}
}

// submit hands a command to the runner and waits until it was applied and
// persisted (or refused).
func (r *runner) submit(ctx context.Context, e rollout.Event) error {
	reply := make(chan error, 1)
	return call(ctx, r, r.requests, request{event: e, reply: reply}, reply)
}

// call hands req to the runner loop on ch and waits for its answer on reply.
func call[R any](ctx context.Context, r *runner, ch chan<- R, req R, reply <-chan error) error {
	select {
	case ch <- req:
	case <-r.done:
		return r.stopped()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopped explains why a runner no longer takes commands.
func (r *runner) stopped() error {
	if r.err != nil {
		return fmt.Errorf("service %q is not running: %w", r.name, r.err)
	}
	return fmt.Errorf("service %q is not running (removed or shutting down)", r.name)
}

// waitStarted waits until the runner has put its restored state in force.
func (r *runner) waitStarted(ctx context.Context) error {
	select {
	case <-r.started:
		return nil
	case <-r.done:
		return r.stopped()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reconfigure swaps in a new spec (already validated and compiled) and
// returns once it is in force, so a command sent after it sees the new spec.
func (r *runner) reconfigure(ctx context.Context, svc *spec.Service, m *rollout.Machine) error {
	reply := make(chan error, 1)
	return call(ctx, r, r.reconfig, reconfigRequest{svc: svc, machine: m, reply: reply}, reply)
}

// run is the runner's loop. It starts by reconciling the restored state with
// the spec, which re-asserts the weights in force: a restart never flip-flops.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	defer r.stopAnalysis()
	r.mu.Lock()
	st, acts := r.machine.Reconcile(r.state, r.deps.now())
	r.mu.Unlock()
	if err := r.commit(ctx, st, acts); err != nil {
		r.err = fmt.Errorf("start: %w", err)
		r.deps.log.Error("runner stopped", "service", r.name, "err", err)
		return
	}
	close(r.started)
	// Health checks may have reported before this runner existed (the proxy
	// starts first); seed the machine with what they reported. Versions not
	// probed yet are left out, so a restored state keeps its last known
	// health instead of flipping to "unhealthy" for a moment.
	if r.deps.health != nil {
		now := r.deps.health(r.name)
		r.mu.Lock()
		for v, h := range now {
			if _, queued := r.pendingHealth[v]; !queued {
				r.pendingHealth[v] = h
			}
		}
		r.mu.Unlock()
		select {
		case r.healthCh <- struct{}{}:
		default:
		}
	}
	ticker := time.NewTicker(r.deps.tick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-r.requests:
			req.reply <- r.step(ctx, req.event)
		case req := <-r.reconfig:
			req.reply <- r.applySpec(ctx, req.svc, req.machine)
		case <-r.healthCh:
			r.mu.Lock()
			pending := r.pendingHealth
			r.pendingHealth = map[string]rollout.VersionHealth{}
			r.mu.Unlock()
			for _, v := range slices.Sorted(maps.Keys(pending)) {
				h := pending[v]
				r.logStepErr(r.step(ctx, rollout.HealthChanged{Version: v, Healthy: h.Healthy, Total: h.Total}))
			}
		case v := <-r.verdicts:
			// A verdict measured for an earlier rollout may still be queued
			// when the next one starts; it says nothing about the new one.
			r.mu.Lock()
			current := rolloutID(r.state)
			r.mu.Unlock()
			if v.rollout != current {
				r.deps.log.Debug("stale verdict dropped", "service", r.name, "rollout", v.rollout, "current", current)
				continue
			}
			r.logStepErr(r.step(ctx, v.Verdict))
		case <-ticker.C:
			r.logStepErr(r.step(ctx, rollout.Tick{}))
		}
	}
}

func (r *runner) logStepErr(err error) {
	if err != nil {
		r.deps.log.Warn("event not applied", "service", r.name, "err", err)
	}
}

func (r *runner) applySpec(ctx context.Context, svc *spec.Service, m *rollout.Machine) error {
	r.mu.Lock()
	r.svc, r.machine = svc, m
	st, acts := m.Reconcile(r.state, r.deps.now())
	r.mu.Unlock()
	return r.commit(ctx, st, acts)
}

// step feeds one event to the machine, then commits the result. Results of
// actions (router applied/failed) are fed back before step returns, so a
// command's reply reflects the state after its effects.
func (r *runner) step(ctx context.Context, e rollout.Event) error {
	queue := []rollout.Event{e}
	for first := true; len(queue) > 0; first = false {
		ev := queue[0]
		queue = queue[1:]
		r.mu.Lock()
		m, cur := r.machine, r.state
		r.mu.Unlock()
		next, acts, err := m.Step(cur, ev, r.deps.now())
		if err != nil {
			if first {
				return err
			}
			r.deps.log.Warn("feedback event refused", "service", r.name, "event", rollout.EventName(ev), "err", err)
			continue
		}
		if err := r.persist(ctx, next, acts); err != nil {
			if first {
				return err
			}
			// The command itself took effect; only the confirmation of its
			// routing was not saved. The next tick re-asserts the routing.
			r.deps.log.Error("feedback event not persisted", "service", r.name, "event", rollout.EventName(ev), "err", err)
			continue
		}
		queue = append(queue, r.execute(ctx, next, acts)...)
	}
	return nil
}

// commit persists a state and executes its actions (used by Reconcile,
// whose results may also produce feedback events).
func (r *runner) commit(ctx context.Context, st rollout.State, acts []rollout.Action) error {
	if err := r.persist(ctx, st, acts); err != nil {
		return err
	}
	for _, ev := range r.execute(ctx, st, acts) {
		if err := r.step(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// persist saves the state and its history in one transaction, then makes it
// the runner's state. Nothing is executed when saving fails: the old state
// stays in force and the command is answered with the error.
func (r *runner) persist(ctx context.Context, st rollout.State, acts []rollout.Action) error {
	var hist []rollout.HistoryEntry
	for _, a := range acts {
		if h, ok := a.(rollout.RecordHistory); ok {
			hist = append(hist, h.Entry)
		}
	}
	if err := r.deps.store.Save(ctx, r.name, st, hist...); err != nil {
		return fmt.Errorf("persist state of service %q: %w", r.name, err)
	}
	r.mu.Lock()
	r.state = st
	r.mu.Unlock()
	return nil
}

func (r *runner) register(version string, targets []string) {
	if err := r.deps.plane.SetVersion(r.name, version, targets); err != nil {
		r.deps.log.Error("register version failed", "service", r.name, "version", version, "err", err)
		return
	}
	r.registered[version] = true
}

// execute runs actions in order and returns the feedback events they produce.
func (r *runner) execute(ctx context.Context, st rollout.State, acts []rollout.Action) []rollout.Event {
	var feedback []rollout.Event
	for _, a := range acts {
		switch a := a.(type) {
		case rollout.RegisterVersion:
			r.register(a.Version, a.Targets)
		case rollout.RetireVersion:
			r.retire(a.Version)
		case rollout.SetWeights:
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := r.deps.plane.Route(rctx, r.name, a.Routing)
			cancel()
			if err != nil {
				r.deps.log.Error("route failed", "service", r.name, "weights", a.Routing.Weights, "err", err)
				feedback = append(feedback, rollout.RouterFailed{Weights: a.Routing.Weights, Error: err.Error()})
				continue
			}
			r.deps.log.Info("weights set", "service", r.name, "stable", a.Routing.Stable, "canary", a.Routing.Canary, "weights", a.Routing.Weights)
			feedback = append(feedback, rollout.RouterApplied{Weights: a.Routing.Weights})
		case rollout.StartAnalysis:
			// A reload reconciles a running rollout again: keep its analysis
			// (and the checks it started with) rather than restart its timers.
			if r.analysis != nil && r.analysisRollout == rolloutID(st) {
				continue
			}
			r.stopAnalysis()
			r.analysisRollout = rolloutID(st)
			if r.deps.analyze != nil {
				r.mu.Lock()
				svc := r.svc
				r.mu.Unlock()
				r.analysis = r.deps.analyze(ctx, svc, rolloutID(st), &a, r.verdicts)
			}
		case rollout.StopAnalysis:
			r.stopAnalysis()
		case rollout.Notify:
			r.deps.log.Info(a.Message, "service", r.name, "kind", a.Kind)
			r.deps.publish(streamEvent{service: r.name, kind: a.Kind, message: a.Message, rollout: rolloutID(st), phase: st.Phase, weights: a.Weights})
		case rollout.Finished:
			r.deps.finished(r.name, a)
			r.deps.publish(streamEvent{service: r.name, kind: "finished", message: a.Reason, rollout: a.Rollout, phase: st.Phase, result: a.Result, weights: st.Weights})
		case rollout.RecordHistory:
			// Persisted with the state.
		default:
			r.deps.log.Warn("unknown action", "service", r.name, "action", rollout.ActionName(a))
		}
	}
	return feedback
}

// retire removes a version from the data plane unless the spec still lists
// it: spec versions stay health-checked so a later deploy never waits.
func (r *runner) retire(version string) {
	r.mu.Lock()
	svc := r.svc
	r.mu.Unlock()
	for _, v := range svc.Spec.Versions {
		if v.Name == version {
			return
		}
	}
	if err := r.deps.plane.RemoveVersion(r.name, version); err != nil {
		// Still registered (e.g. it still carries traffic): keep it known.
		r.deps.log.Warn("retire version failed", "service", r.name, "version", version, "err", err)
		return
	}
	delete(r.registered, version)
}

func (r *runner) stopAnalysis() {
	if r.analysis != nil {
		r.analysis.Stop()
		r.analysis = nil
	}
}

func rolloutID(st rollout.State) uint64 {
	if st.Rollout != nil {
		return st.Rollout.ID
	}
	return 0
}
