// Package runner is the shell around one service's rollout machine: the
// only goroutine that changes the service's state. It turns commands,
// ticks, health changes, analysis verdicts and the results of asynchronous
// actions into events, steps the machine, persists the new state before
// executing any action, and executes the actions through the small
// interfaces below. The same runner drives every mode: the built-in proxy,
// nginx and (with a store that is a Rollout's status) Kubernetes.
package runner

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

// Router moves a service's traffic (the built-in proxy, nginx, Kubernetes).
type Router interface {
	Route(ctx context.Context, service string, r rollout.Routing) error
}

// Targets is told which targets each version has, before any traffic goes
// to them (the data plane and the health checker), and when a version is
// no longer kept.
type Targets interface {
	SetVersion(service, version string, targets []string) error
	RemoveVersion(service, version string) error
}

// Store persists a service's state and history in one transaction.
type Store interface {
	Save(ctx context.Context, service string, st rollout.State, history ...rollout.HistoryEntry) error
	Load(ctx context.Context, service string) (rollout.State, bool, error)
}

// Analyzer starts a rollout's analysis: it measures the checks of svc every
// interval and sends each verdict with send until the returned stop is
// called (stop waits for it to end).
type Analyzer interface {
	Start(ctx context.Context, svc *spec.Service, a rollout.StartAnalysis, send func(rollout.Verdict)) (stop func())
}

// Executor performs an action that takes time (RunHook, OpenGate, later
// webhooks and load tests) and returns the event reporting its result. It
// runs on a goroutine of the runner, never on the runner's loop, and must
// return once ctx is done (the action's deadline or the rollout's end).
type Executor interface {
	Execute(ctx context.Context, svc *spec.Service, a rollout.Action) rollout.Event
}

// WebhookCaller calls the webhooks of spec.webhooks that run with the
// analysis: Call a rollout webhook (load tests; with its retries, nil on
// 2xx), Ask a rollback webhook once (true when it answered 200). Each
// returns the start of the answer for the history.
type WebhookCaller interface {
	Call(ctx context.Context, svc *spec.Service, w *spec.Webhook, version string) (string, error)
	Ask(ctx context.Context, svc *spec.Service, w *spec.Webhook, version string) (bool, string, error)
}

// Event is a notification for the event stream and the logs.
type Event struct {
	Service string
	Kind    string
	Message string
	Rollout uint64
	// Version is the version of the rollout in progress (or the last one).
	Version string
	Phase   rollout.Phase
	Weights rollout.Weights
	Result  rollout.Result
}

// Options are a runner's collaborators.
type Options struct {
	Log      *slog.Logger
	Store    Store
	Router   Router
	Targets  Targets
	Analyzer Analyzer // nil: analysis verdicts never come
	Executor Executor // nil: hooks and gates fail, saying none is configured
	// Now is the clock (time.Now if nil); Tick how often the machine sees
	// time pass (1s if zero).
	Now  func() time.Time
	Tick time.Duration
	// Publish receives notifications; Finished each rollout's end (metrics).
	Publish  func(Event)
	Finished func(service string, f rollout.Finished)
	// Health returns the health already known of a service's versions, to
	// seed a runner that starts after the health checker reported.
	Health func(service string) map[string]rollout.VersionHealth
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

// asyncKey names one asynchronous action: its rollout, step and attempt.
type asyncKey struct {
	rollout uint64
	step    int
	attempt int
}

// Runner is the shell around one service's rollout machine: it is the only
// goroutine that changes the service's state. Every event goes through
// step, which persists the new state before executing any action.
type Runner struct {
	opts Options
	name string

	requests chan request
	reconfig chan reconfigRequest
	healthCh chan struct{} // signalled when pendingHealth changes
	verdicts chan verdict
	results  chan rollout.Event // of asynchronous actions

	mu            sync.Mutex // guards the fields below, read by Snapshot
	svc           *spec.Service
	machine       *rollout.Machine
	state         rollout.State
	pendingHealth map[string]rollout.VersionHealth

	// started is closed once the restored state is reconciled and in force;
	// done when Run returns, with err saying why if it failed.
	started chan struct{}
	done    chan struct{}
	err     error

	// owned by the runner goroutine
	stopAnalysis    func()
	analysisRollout uint64
	analysisWeight  int
	inflight        map[asyncKey]context.CancelFunc
	async           sync.WaitGroup
}

// reconfigRequest swaps in a new spec and its compiled machine.
type reconfigRequest struct {
	svc     *spec.Service
	machine *rollout.Machine
	reply   chan error
}

// New builds the runner of svc, starting from st (restored from the store,
// or zero for a new service). Nothing happens until Run.
func New(opts Options, svc *spec.Service, m *rollout.Machine, st rollout.State) *Runner {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Publish == nil {
		opts.Publish = func(Event) {}
	}
	if opts.Finished == nil {
		opts.Finished = func(string, rollout.Finished) {}
	}
	return &Runner{
		opts:          opts,
		name:          svc.Metadata.Name,
		requests:      make(chan request),
		reconfig:      make(chan reconfigRequest),
		started:       make(chan struct{}),
		done:          make(chan struct{}),
		healthCh:      make(chan struct{}, 1),
		verdicts:      make(chan verdict, 16),
		results:       make(chan rollout.Event, 16),
		svc:           svc,
		machine:       m,
		state:         st,
		pendingHealth: map[string]rollout.VersionHealth{},
		inflight:      map[asyncKey]context.CancelFunc{},
	}
}

// Restore loads a service's state from store (zero when none is stored).
func Restore(ctx context.Context, store Store, service string) (rollout.State, error) {
	st, _, err := store.Load(ctx, service)
	if err != nil {
		return rollout.State{}, fmt.Errorf("service %q: restore state: %w", service, err)
	}
	return st, nil
}

// Snapshot returns the current spec and state.
func (r *Runner) Snapshot() (*spec.Service, rollout.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.svc, r.state
}

// Done is closed when Run has returned.
func (r *Runner) Done() <-chan struct{} { return r.done }

// HealthChanged records a version's health; the runner picks it up. It
// never blocks, so the health checker is never held up by a busy runner.
func (r *Runner) HealthChanged(version string, healthy, total int) {
	r.mu.Lock()
	r.pendingHealth[version] = rollout.VersionHealth{Healthy: healthy, Total: total}
	r.mu.Unlock()
	select {
	case r.healthCh <- struct{}{}:
	default:
	}
}

// Submit hands a command to the runner and waits until it was applied and
// persisted (or refused).
func (r *Runner) Submit(ctx context.Context, e rollout.Event) error {
	reply := make(chan error, 1)
	return call(ctx, r, r.requests, request{event: e, reply: reply}, reply)
}

// call hands req to the runner loop on ch and waits for its answer on reply.
func call[R any](ctx context.Context, r *Runner, ch chan<- R, req R, reply <-chan error) error {
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
func (r *Runner) stopped() error {
	if r.err != nil {
		return fmt.Errorf("service %q is not running: %w", r.name, r.err)
	}
	return fmt.Errorf("service %q is not running (removed or shutting down)", r.name)
}

// WaitStarted waits until the runner has put its restored state in force.
func (r *Runner) WaitStarted(ctx context.Context) error {
	select {
	case <-r.started:
		return nil
	case <-r.done:
		return r.stopped()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconfigure swaps in a new spec (already validated and compiled) and
// returns once it is in force, so a command sent after it sees the new spec.
func (r *Runner) Reconfigure(ctx context.Context, svc *spec.Service, m *rollout.Machine) error {
	reply := make(chan error, 1)
	return call(ctx, r, r.reconfig, reconfigRequest{svc: svc, machine: m, reply: reply}, reply)
}

// Run is the runner's loop, until ctx ends. It starts by reconciling the
// restored state with the spec, which re-asserts the weights in force: a
// restart never flip-flops.
func (r *Runner) Run(ctx context.Context) {
	defer close(r.done)
	defer r.async.Wait()
	defer r.cancelAsync(nil)
	defer r.endAnalysis()
	r.mu.Lock()
	st, acts := r.machine.Reconcile(r.state, r.opts.Now())
	r.mu.Unlock()
	if err := r.commit(ctx, st, acts); err != nil {
		r.err = fmt.Errorf("start: %w", err)
		r.opts.Log.Error("runner stopped", "service", r.name, "err", err)
		return
	}
	close(r.started)
	// Health checks may have reported before this runner existed (they
	// start first); seed the machine with what they reported. Versions not
	// probed yet are left out, so a restored state keeps its last known
	// health instead of flipping to "unhealthy" for a moment.
	if r.opts.Health != nil {
		now := r.opts.Health(r.name)
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
	ticker := time.NewTicker(r.opts.Tick)
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
			if current := rolloutID(r.current()); v.rollout != current {
				r.opts.Log.Debug("stale verdict dropped", "service", r.name, "rollout", v.rollout, "current", current)
				continue
			}
			r.logStepErr(r.step(ctx, v.Verdict))
		case ev := <-r.results:
			// The machine drops a result for a step or attempt that is over.
			r.logStepErr(r.step(ctx, ev))
		case <-ticker.C:
			r.logStepErr(r.step(ctx, rollout.Tick{}))
		}
	}
}

func (r *Runner) current() rollout.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

func (r *Runner) logStepErr(err error) {
	if err != nil {
		r.opts.Log.Warn("event not applied", "service", r.name, "err", err)
	}
}

func (r *Runner) applySpec(ctx context.Context, svc *spec.Service, m *rollout.Machine) error {
	r.mu.Lock()
	r.svc, r.machine = svc, m
	st, acts := m.Reconcile(r.state, r.opts.Now())
	r.mu.Unlock()
	return r.commit(ctx, st, acts)
}

// step feeds one event to the machine, then commits the result. Results of
// synchronous actions (router applied/failed) are fed back before step
// returns, so a command's reply reflects the state after its effects.
func (r *Runner) step(ctx context.Context, e rollout.Event) error {
	queue := []rollout.Event{e}
	for first := true; len(queue) > 0; first = false {
		ev := queue[0]
		queue = queue[1:]
		r.mu.Lock()
		m, cur := r.machine, r.state
		r.mu.Unlock()
		next, acts, err := m.Step(cur, ev, r.opts.Now())
		if err != nil {
			if first {
				return err
			}
			r.opts.Log.Warn("feedback event refused", "service", r.name, "event", rollout.EventName(ev), "err", err)
			continue
		}
		if err := r.persist(ctx, next, acts); err != nil {
			if first {
				return err
			}
			// The command itself took effect; only the confirmation of its
			// routing was not saved. The next tick re-asserts the routing.
			r.opts.Log.Error("feedback event not persisted", "service", r.name, "event", rollout.EventName(ev), "err", err)
			continue
		}
		queue = append(queue, r.execute(ctx, next, acts)...)
	}
	return nil
}

// commit persists a state and executes its actions (used by Reconcile,
// whose results may also produce feedback events).
func (r *Runner) commit(ctx context.Context, st rollout.State, acts []rollout.Action) error {
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
func (r *Runner) persist(ctx context.Context, st rollout.State, acts []rollout.Action) error {
	var hist []rollout.HistoryEntry
	for _, a := range acts {
		if h, ok := a.(rollout.RecordHistory); ok {
			hist = append(hist, h.Entry)
		}
	}
	if err := r.opts.Store.Save(ctx, r.name, st, hist...); err != nil {
		return fmt.Errorf("persist state of service %q: %w", r.name, err)
	}
	r.mu.Lock()
	r.state = st
	r.mu.Unlock()
	return nil
}

func (r *Runner) register(version string, targets []string) {
	if err := r.opts.Targets.SetVersion(r.name, version, targets); err != nil {
		r.opts.Log.Error("register version failed", "service", r.name, "version", version, "err", err)
	}
}

// execute runs actions in order and returns the feedback events of the
// synchronous ones; asynchronous ones report later, through r.results.
func (r *Runner) execute(ctx context.Context, st rollout.State, acts []rollout.Action) []rollout.Event {
	var feedback []rollout.Event
	for _, a := range acts {
		switch a := a.(type) {
		case rollout.RegisterVersion:
			r.register(a.Version, a.Targets)
		case rollout.RetireVersion:
			r.retire(a.Version)
		case rollout.SetWeights:
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := r.opts.Router.Route(rctx, r.name, a.Routing)
			cancel()
			if err != nil {
				r.opts.Log.Error("route failed", "service", r.name, "weights", a.Routing.Weights, "err", err)
				feedback = append(feedback, rollout.RouterFailed{Weights: a.Routing.Weights, Error: err.Error()})
				continue
			}
			r.opts.Log.Info("weights set", "service", r.name, "stable", a.Routing.Stable, "canary", a.Routing.Canary, "weights", a.Routing.Weights)
			feedback = append(feedback, rollout.RouterApplied{Weights: a.Routing.Weights})
		case rollout.StartAnalysis:
			r.startAnalysis(ctx, st, a)
		case rollout.StopAnalysis:
			r.endAnalysis()
		case rollout.RunHook:
			r.startAsync(ctx, asyncKey{a.Rollout, a.Step, a.Attempt}, a.Deadline, a)
		case rollout.OpenGate:
			r.startAsync(ctx, asyncKey{a.Rollout, a.Step, a.Attempt}, a.Deadline, a)
		case rollout.Notify:
			r.opts.Log.Info(a.Message, "service", r.name, "kind", a.Kind)
			r.opts.Publish(Event{Service: r.name, Kind: a.Kind, Message: a.Message, Rollout: rolloutID(st), Version: rolloutVersion(st), Phase: st.Phase, Weights: a.Weights})
		case rollout.Finished:
			r.opts.Finished(r.name, a)
			r.opts.Publish(Event{Service: r.name, Kind: "finished", Message: a.Reason, Rollout: a.Rollout, Version: a.Version, Phase: st.Phase, Result: a.Result, Weights: st.Weights})
		case rollout.RecordHistory:
			// Persisted with the state.
		default:
			r.opts.Log.Warn("unknown action", "service", r.name, "action", rollout.ActionName(a))
		}
	}
	r.cancelAsync(pendingKey(st))
	return feedback
}

// startAsync runs an action that takes time on its own goroutine, bounded
// by its deadline; its result comes back through r.results. An action
// already running (Reconcile asks again after a reload) is not started twice.
func (r *Runner) startAsync(ctx context.Context, key asyncKey, deadline time.Time, a rollout.Action) {
	if _, running := r.inflight[key]; running {
		return
	}
	r.mu.Lock()
	svc := r.svc
	r.mu.Unlock()
	actx, cancel := context.WithCancel(ctx)
	if !deadline.IsZero() {
		actx, cancel = context.WithDeadline(ctx, deadline)
	}
	r.inflight[key] = cancel
	r.opts.Log.Info("action started", "service", r.name, "action", rollout.ActionName(a), "rollout", key.rollout, "step", key.step, "attempt", key.attempt)
	r.async.Go(func() {
		defer cancel()
		var ev rollout.Event
		if r.opts.Executor != nil {
			ev = r.opts.Executor.Execute(actx, svc, a)
		} else {
			ev = notSupported(a)
		}
		if ev == nil {
			return
		}
		select {
		case r.results <- ev:
		case <-ctx.Done():
		}
	})
}

// notSupported answers an asynchronous action when no executor is
// configured: it fails, so a rollout never passes a hook nobody ran.
func notSupported(a rollout.Action) rollout.Event {
	const msg = "no executor for hooks and gates is configured"
	switch a := a.(type) {
	case rollout.RunHook:
		return rollout.HookDone{Rollout: a.Rollout, Step: a.Step, Attempt: a.Attempt, Name: a.Name, Err: msg}
	case rollout.OpenGate:
		return rollout.GateAnswered{Rollout: a.Rollout, Step: a.Step, Attempt: a.Attempt, Name: a.Name, Message: msg}
	}
	return nil
}

// pendingKey is the asynchronous action st still waits for, or nil.
func pendingKey(st rollout.State) *asyncKey {
	if r := st.Rollout; r != nil && r.Pending != nil && !r.Pending.Done {
		return &asyncKey{r.ID, r.Pending.Step, r.Pending.Attempt}
	}
	return nil
}

// cancelAsync stops every running action but keep (the one the state still
// waits for): a rollout that ended or moved on no longer needs the others.
func (r *Runner) cancelAsync(keep *asyncKey) {
	for k, cancel := range r.inflight {
		if keep == nil || k != *keep {
			cancel()
			delete(r.inflight, k)
		}
	}
}

func (r *Runner) startAnalysis(ctx context.Context, st rollout.State, a rollout.StartAnalysis) {
	id := rolloutID(st)
	// A reload reconciles a running rollout again: keep its analysis (and
	// the checks it started with) rather than restart its timers. A new
	// weight restarts it, so its first window lies wholly at that weight.
	if r.stopAnalysis != nil && r.analysisRollout == id && r.analysisWeight == a.Weight {
		return
	}
	r.endAnalysis()
	r.analysisRollout, r.analysisWeight = id, a.Weight
	if r.opts.Analyzer == nil {
		return
	}
	r.mu.Lock()
	svc := r.svc
	r.mu.Unlock()
	actx, cancel := context.WithCancel(ctx)
	stop := r.opts.Analyzer.Start(actx, svc, a, func(v rollout.Verdict) {
		select {
		case r.verdicts <- verdict{rollout: id, Verdict: v}:
		case <-actx.Done():
		}
	})
	r.stopAnalysis = func() {
		cancel()
		stop()
	}
}

func (r *Runner) endAnalysis() {
	if r.stopAnalysis != nil {
		r.stopAnalysis()
		r.stopAnalysis = nil
	}
}

// retire removes a version from the data plane unless the spec still lists
// it: spec versions stay health-checked so a later deploy never waits.
func (r *Runner) retire(version string) {
	r.mu.Lock()
	svc := r.svc
	r.mu.Unlock()
	for _, v := range svc.Spec.Versions {
		if v.Name == version {
			return
		}
	}
	if err := r.opts.Targets.RemoveVersion(r.name, version); err != nil {
		// Still registered (e.g. it still carries traffic).
		r.opts.Log.Warn("retire version failed", "service", r.name, "version", version, "err", err)
	}
}

func rolloutID(st rollout.State) uint64 {
	if st.Rollout != nil {
		return st.Rollout.ID
	}
	return 0
}

// rolloutVersion is the new version of st's rollout in progress, or of its
// last one.
func rolloutVersion(st rollout.State) string {
	switch {
	case st.Rollout != nil:
		return st.Rollout.Version
	case st.Last != nil:
		return st.Last.Version
	}
	return ""
}
