// Package controller is Switchyard's Kubernetes controller: a
// controller-runtime reconciler of Rollouts (api/v1alpha1) that runs, for
// each Rollout, one internal/runner.Runner — the same machine, analysis,
// hooks and webhooks as standalone mode — whose store is the Rollout's
// status (StatusStore), whose versions are revisions of the pod template
// running in two slot Deployments, and whose router moves traffic between
// the slots (ServiceRouter, or the RouterFactory's).
//
// The workload design (docs/kubernetes.md): Deployments "<rollout>-a" and
// "<rollout>-b", owned by the Rollout, labelled by rollout, slot and
// revision (a hash of the pod template). A new revision goes to the slot
// that does not run the stable one, at the stable replica count, before it
// takes any traffic; the previous slot stays scaled until the rollout is
// done plus scaleDownDelay (the machine's Previous); a slot is scaled to
// zero only when its revision is out of play and another slot has ready
// pods. Health is the ready pods of each slot's revision, fed to the
// runner as HealthChanged (Total: the slot's replicas, so the health gate
// waits for all of them).
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/egress"
	"github.com/switchyard/switchyard/internal/hook"
	"github.com/switchyard/switchyard/internal/metrics"
	promsource "github.com/switchyard/switchyard/internal/metrics/prometheus"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// Name is the controller's name: its field manager, event reporter and
// the default Lease.
const Name = "switchyard-controller"

// Options configure a Controller.
type Options struct {
	Log *slog.Logger
	// Router builds each Rollout's traffic router (DefaultRouter if nil).
	Router RouterFactory
	// Analyzer and Executor are the runners' (built from EgressAllow if nil).
	Analyzer runner.Analyzer
	Executor runner.Executor
	// EgressAllow lists internal prefixes that Prometheus queries and
	// webhooks may reach (a Prometheus inside the cluster).
	EgressAllow []netip.Prefix
	// Tick is the runners' tick (1s if zero).
	Tick time.Duration
}

// Controller reconciles Rollouts. It is also a manager.Runnable that needs
// leader election: the runners run under the context of its Start, so
// they stop the moment leadership is lost (or the manager stops), and
// Start returns only once they have.
type Controller struct {
	c        client.Client
	direct   client.Client // uncached, for the weighted routers
	reader   client.Reader
	recorder recorder.EventRecorder
	opts     Options
	log      *slog.Logger
	// judge is the sequential judge of the runners' analyzer (nil when
	// Options.Analyzer was given); it keeps each Rollout's stable baseline.
	judge *runner.Judge

	mu      sync.Mutex
	base    context.Context // nil until Start
	entries map[types.NamespacedName]*entry
	wg      sync.WaitGroup

	// saved wakes the reconciler after a runner's status write, once the
	// store holds the written state (a watch event of the write may come
	// before the runner has made that state its own).
	saved chan event.GenericEvent
}

// entry is one Rollout's runner and what feeds it.
type entry struct {
	runner *runner.Runner
	cancel context.CancelFunc
	store  *StatusStore
	slots  *slotMap
	gen    int64
	sent   map[string]rollout.VersionHealth // health last fed
}

// New builds a Controller on mgr and registers it (the reconciler and the
// runnable).
func New(mgr manager.Manager, opts Options) (*Controller, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Router == nil {
		opts.Router = DefaultRouter
	}
	var judge *runner.Judge
	if opts.Analyzer == nil || opts.Executor == nil {
		policy := egress.Policy{Allow: opts.EgressAllow}
		webhooks := hook.NewWebhooks(policy.Client(spec.MaxWebhookCall), opts.Log)
		if opts.Analyzer == nil {
			// No built-in source in a cluster: checks and the sequential
			// judge (spec.analysis.sequential.prometheus) use Prometheus.
			prom := promsource.New(policy.Client(30 * time.Second))
			judge = runner.NewJudge(prom.ServiceSeconds)
			opts.Analyzer = runner.Analyzers{runner.NewChecks(metrics.Sources{}, prom, webhooks), judge}
		}
		if opts.Executor == nil {
			opts.Executor = hook.New(opts.Log, webhooks)
		}
	}
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("controller client: %w", err)
	}
	c := &Controller{
		c: mgr.GetClient(), direct: direct, reader: mgr.GetAPIReader(), recorder: mgr.GetEventRecorder(Name),
		opts: opts, log: opts.Log, judge: judge, entries: map[types.NamespacedName]*entry{},
		saved: make(chan event.GenericEvent, 1024),
	}
	if err := mgr.Add(c); err != nil {
		return nil, err
	}
	podToRollout := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name := o.GetLabels()[v1alpha1.LabelRollout]
		if name == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	})
	err = builder.ControllerManagedBy(mgr).
		Named("rollout").
		// One controller per manager; a process may run several managers
		// (tests, a restart in place).
		WithOptions(ctrlcontroller.Options{SkipNameValidation: &skipNameValidation}).
		For(&v1alpha1.Rollout{}).
		Owns(&appsv1.Deployment{}).
		Watches(&corev1.Pod{}, podToRollout).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(c.rolloutsNaming(servicesOf)), builder.WithPredicates(createdOrDeleted)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(c.rolloutsNaming(workloadOf)), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(c.saved, &handler.EnqueueRequestForObject{})).
		Complete(c)
	if err != nil {
		return nil, fmt.Errorf("set up the rollout controller: %w", err)
	}
	return c, nil
}

var skipNameValidation = true

// NeedLeaderElection is true: only the leader runs rollouts.
func (c *Controller) NeedLeaderElection() bool { return true }

// Start makes runners startable under ctx and, when ctx ends (shutdown or
// lost leadership), stops every runner and waits for them.
func (c *Controller) Start(ctx context.Context) error {
	c.mu.Lock()
	c.base = ctx
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	for k, e := range c.entries {
		e.cancel()
		delete(c.entries, k)
	}
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// Runners is how many Rollouts have a running runner.
func (c *Controller) Runners() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// StatusWrites is how many status writes the running runner of key has
// made (0 when none runs).
func (c *Controller) StatusWrites(key types.NamespacedName) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		return e.store.Writes()
	}
	return 0
}

// Reconcile brings one Rollout's slots, runner and traffic in line with
// its spec and its engine state.
func (c *Controller) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c.mu.Lock()
	base := c.base
	c.mu.Unlock()
	if base == nil || base.Err() != nil {
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	var ro v1alpha1.Rollout
	if err := c.c.Get(ctx, req.NamespacedName, &ro); err != nil {
		if apierrors.IsNotFound(err) {
			c.stop(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !ro.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, c.finalize(ctx, &ro)
	}
	if controllerutil.AddFinalizer(&ro, v1alpha1.Finalizer) {
		// Conditional on the resourceVersion read; the update brings us back.
		return reconcile.Result{}, c.c.Update(ctx, &ro)
	}
	err := c.sync(ctx, base, &ro)
	var inv *invalidError
	if errors.As(err, &inv) {
		// Nothing to retry until the spec changes; a running runner keeps
		// its last valid spec.
		c.log.Warn("rollout not valid", "rollout", req.NamespacedName, "err", inv.err)
		if inv.absent() {
			// The Rollout cannot route or deploy without the object: its
			// runner stops, its state stays in the status, and it resumes
			// when the object exists again (watched; the requeue bounds a
			// missed event).
			c.stop(req.NamespacedName)
			return reconcile.Result{RequeueAfter: 30 * time.Second}, c.setInvalid(ctx, &ro, inv)
		}
		return reconcile.Result{}, c.setInvalid(ctx, &ro, inv)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	// Watches bring every change; this only bounds how long a missed one
	// (a lost watch event) can go unnoticed.
	return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
}

// invalidError is a spec that cannot run, shown in the Valid condition.
type invalidError struct {
	reason string
	err    error
}

func (e *invalidError) Error() string { return e.err.Error() }

func (c *Controller) setInvalid(ctx context.Context, ro *v1alpha1.Rollout, inv *invalidError) error {
	key := client.ObjectKeyFromObject(ro)
	store := NewStatusStore(c.c, c.reader, key)
	if _, _, err := store.Load(ctx, ro.Name); err != nil {
		// A damaged engine state is itself the problem to show.
		var fresh v1alpha1.Rollout
		if gerr := c.reader.Get(ctx, key, &fresh); gerr != nil {
			return gerr
		}
		store.obj, store.raw = &fresh, engineRaw(&fresh)
	}
	c.recorder.Eventf(ro, nil, corev1.EventTypeWarning, inv.reason, "Validate", "%s", truncate(inv.err.Error(), 1000))
	if err := store.SetInvalid(ctx, ro.Generation, inv.reason, inv.err.Error()); err != nil {
		return err
	}
	// A runner that keeps its last valid spec still takes commands (an
	// abort is what a bad edit mid-rollout may need); without one, a
	// request is refused.
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && !isDone(e.runner) {
		return c.handleRequest(ctx, ro, e)
	}
	return c.refuseRequest(ctx, ro, store, fmt.Errorf("the Rollout is not valid (%s): fix the spec first (see the Valid condition)", inv.reason))
}

// sync is Reconcile for a live Rollout.
func (c *Controller) sync(ctx context.Context, base context.Context, ro *v1alpha1.Rollout) error {
	key := client.ObjectKeyFromObject(ro)
	if err := ro.Validate(); err != nil {
		return &invalidError{"Invalid", err}
	}
	ro, wl, err := c.withWorkload(ctx, ro)
	if err != nil {
		return err
	}
	rev, err := Revision(ro.Spec.Template)
	if err != nil {
		return &invalidError{"Invalid", err}
	}
	replicas := int32(1)
	if ro.Spec.Replicas != nil {
		replicas = *ro.Spec.Replicas
	}
	deps := map[string]*appsv1.Deployment{}
	for _, s := range slotNames {
		var d appsv1.Deployment
		err := c.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: SlotName(ro.Name, s)}, &d)
		switch {
		case err == nil:
			if !isControlledBy(d.OwnerReferences, ro) {
				return &invalidError{"SlotNotOwned", fmt.Errorf("deployment %s exists and is not this Rollout's; rename or remove it", d.Name)}
			}
			deps[s] = &d
		case !apierrors.IsNotFound(err):
			return err
		}
	}
	var pods corev1.PodList
	if err := c.c.List(ctx, &pods, client.InNamespace(ro.Namespace), client.MatchingLabels{v1alpha1.LabelRollout: ro.Name}); err != nil {
		return fmt.Errorf("list pods of rollout %s: %w", key, err)
	}

	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil && (e.store.Stale() || isDone(e.runner)) {
		// Another writer changed the engine state, or the runner failed:
		// start again from what the status holds.
		c.stop(key)
		e = nil
	}

	slots := &slotMap{}
	var router runner.Router
	if e != nil {
		slots = e.slots
	} else {
		// The router first: a Rollout whose router is not built gets
		// nothing created.
		if router, err = c.opts.Router(RouterParams{Client: c.c, Direct: c.direct, Rollout: key, Spec: ro.Spec.DeepCopy(), SlotOf: slots.SlotOf}); err != nil {
			return &invalidError{"RouterInvalid", err}
		}
	}
	if err := c.checkServices(ctx, ro); err != nil {
		return err
	}

	var st rollout.State
	var store *StatusStore
	if e != nil {
		st = current(e)
	} else {
		store = NewStatusStore(c.c, c.reader, key)
		var ok bool
		if st, ok, err = store.Load(ctx, ro.Name); err != nil {
			return &invalidError{"EngineStateInvalid", err}
		}
		if !ok {
			// A new Rollout: its first revision goes to slot a, and is
			// adopted as stable once all its pods are ready, so the
			// Service never points at pods that cannot serve (a Service
			// that already selects older pods keeps them until then).
			if err := c.ensureSlot(ctx, ro, deps, "a", rev, replicas); err != nil {
				return err
			}
			if readyPods(pods.Items, "a", rev) < int(replicas) {
				return c.refuseRequest(ctx, ro, store, fmt.Errorf("the first revision %s is not ready yet (%d/%d pods): there is no rollout to command",
					rev, readyPods(pods.Items, "a", rev), replicas))
			}
			st = rollout.State{Stable: rev}
		}
	}

	for s, d := range deps {
		slots.set(s, slotRevision(d))
	}
	if err := c.ensureSlotServices(ctx, ro); err != nil {
		return err
	}

	// A template change is a new revision: it goes to the idle slot (the
	// one not running stable) at the stable replica count, before the
	// machine hears of it.
	deploy := needsRollout(st, rev)
	if deploy {
		stableSlot, ok := slots.SlotOf(st.Stable)
		if !ok {
			return fmt.Errorf("rollout %s: no slot runs the stable revision %s", key, st.Stable)
		}
		idle := otherSlot(stableSlot)
		if err := c.ensureSlot(ctx, ro, deps, idle, rev, replicas); err != nil {
			return err
		}
		slots.set(idle, rev)
	}

	svc, err := ro.Service(revisions(st, slots))
	if err != nil {
		return &invalidError{"Invalid", err}
	}
	m, err := rollout.New(svc)
	if err != nil {
		return &invalidError{"Invalid", err}
	}

	if e == nil {
		store.SetGeneration(ro.Generation)
		obj := ro.DeepCopy()
		store.saved = func() {
			select {
			case c.saved <- event.GenericEvent{Object: obj}:
			default: // a reconcile is queued already; the requeue bounds a miss
			}
		}
		e = &entry{store: store, slots: slots, gen: ro.Generation, sent: map[string]rollout.VersionHealth{}}
		if err := c.start(base, key, e, svc, m, st, router); err != nil {
			return err
		}
	} else if deploy || e.gen != ro.Generation {
		e.store.SetGeneration(ro.Generation)
		if err := e.runner.Reconfigure(ctx, svc, m); err != nil {
			return fmt.Errorf("rollout %s: apply spec: %w", key, err)
		}
		e.gen = ro.Generation
	}

	if err := c.routePreview(ctx, ro, st, candidate(st, deploy, rev), slots, pods.Items, replicas); err != nil {
		return err
	}
	c.feedHealth(e, pods.Items, slots, replicas)
	if deploy {
		err := e.runner.Submit(ctx, rollout.Deploy{Version: rev, Force: current(e).Rollout != nil, By: "template change"})
		if err != nil && !errors.Is(err, rollout.ErrAlreadyStable) {
			return fmt.Errorf("rollout %s: deploy revision %s: %w", key, rev, err)
		}
	}
	if err := c.handleRequest(ctx, ro, e); err != nil {
		return err
	}
	st = current(e)
	if err := c.scale(ctx, ro, deps, pods.Items, st, replicas); err != nil {
		return err
	}
	return c.scaleDownWorkload(ctx, ro, wl, st, slots, pods.Items, replicas)
}

// current is the engine state of a running Rollout as last saved (or
// the runner's, before its first save).
func current(e *entry) rollout.State {
	if st, ok := e.store.State(); ok {
		return st
	}
	_, st := e.runner.Snapshot()
	return st
}

// needsRollout reports whether the template's revision rev must be rolled
// out: it is neither stable nor being rolled out, and it is not the
// revision whose last rollout just failed (that waits for a retry or a
// new template, instead of looping).
func needsRollout(st rollout.State, rev string) bool {
	if rev == st.Stable {
		return false
	}
	if r := st.Rollout; r != nil {
		return r.Version != rev
	}
	if l := st.Last; l != nil && l.Version == rev && l.Result != rollout.ResultPromoted {
		return false
	}
	return true
}

// revisions are the slots' revisions, as the engine's versions (one target
// each: the slot's Deployment), with st's stable one.
func revisions(st rollout.State, slots *slotMap) v1alpha1.Revisions {
	revs := v1alpha1.Revisions{Stable: st.Stable}
	for _, s := range slotNames {
		slots.mu.Lock()
		rev := slots.bySlot[s]
		slots.mu.Unlock()
		if rev != "" {
			revs.Versions = append(revs.Versions, spec.Version{Name: rev, Targets: []string{"slot-" + s}})
		}
	}
	return revs
}

// ensureSlot makes slot run rev with replicas pods: it creates the
// Deployment, or sets its template (conditional on the resourceVersion
// read). Only an idle slot is ever given a new revision.
func (c *Controller) ensureSlot(ctx context.Context, ro *v1alpha1.Rollout, deps map[string]*appsv1.Deployment, slot, rev string, replicas int32) error {
	want := slotDeployment(ro, slot, rev, replicas)
	d := deps[slot]
	if d == nil {
		if err := c.c.Create(ctx, want); err != nil {
			return fmt.Errorf("create slot %s: %w", want.Name, err)
		}
		deps[slot] = want
		c.recorder.Eventf(ro, want, corev1.EventTypeNormal, "SlotCreated", "Deploy", "slot %s runs revision %s with %d replicas", slot, rev, replicas)
		return nil
	}
	if slotRevision(d) == rev && d.Spec.Replicas != nil && *d.Spec.Replicas == replicas {
		return nil
	}
	d.Spec.Template = want.Spec.Template
	d.Spec.Replicas = &replicas
	d.Labels = want.Labels
	if err := c.c.Update(ctx, d); err != nil {
		return fmt.Errorf("set slot %s to revision %s: %w", d.Name, rev, err)
	}
	c.recorder.Eventf(ro, d, corev1.EventTypeNormal, "SlotUpdated", "Deploy", "slot %s runs revision %s with %d replicas", slot, rev, replicas)
	return nil
}

// scale keeps every slot whose revision is in play (stable, the rollout's,
// the kept previous) at replicas and scales the others to zero — but never
// the last slot with ready pods.
func (c *Controller) scale(ctx context.Context, ro *v1alpha1.Rollout, deps map[string]*appsv1.Deployment, pods []corev1.Pod, st rollout.State, replicas int32) error {
	inPlay := map[string]bool{}
	for _, v := range st.InPlay() {
		inPlay[v] = true
	}
	for _, s := range slotNames {
		d := deps[s]
		if d == nil {
			continue
		}
		rev := slotRevision(d)
		want := replicas
		if !inPlay[rev] {
			want = 0
			other := deps[otherSlot(s)]
			if other == nil || readyPods(pods, otherSlot(s), slotRevision(other)) == 0 {
				continue // never scale away the only ready copy
			}
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas == want {
			continue
		}
		d.Spec.Replicas = &want
		if err := c.c.Update(ctx, d); err != nil {
			return fmt.Errorf("scale slot %s to %d: %w", d.Name, want, err)
		}
		reason := "SlotScaledUp"
		if want == 0 {
			reason = "SlotScaledDown"
		}
		c.recorder.Eventf(ro, d, corev1.EventTypeNormal, reason, "Scale", "slot %s (revision %s) scaled to %d", s, rev, want)
	}
	return nil
}

// feedHealth sends the runner each slot revision's ready pods out of the
// slot's replicas, when they changed.
func (c *Controller) feedHealth(e *entry, pods []corev1.Pod, slots *slotMap, replicas int32) {
	for _, s := range slotNames {
		slots.mu.Lock()
		rev := slots.bySlot[s]
		slots.mu.Unlock()
		if rev == "" {
			continue
		}
		h := rollout.VersionHealth{Healthy: min(readyPods(pods, s, rev), int(replicas)), Total: int(replicas)}
		if old, ok := e.sent[rev]; ok && old == h {
			continue
		}
		e.sent[rev] = h
		e.runner.HealthChanged(rev, h.Healthy, h.Total)
	}
}

// start runs a Rollout's runner under base and waits until its restored
// state is in force (its Reconcile re-asserts the routing in force).
func (c *Controller) start(base context.Context, key types.NamespacedName, e *entry, svc *spec.Service, m *rollout.Machine, st rollout.State, router runner.Router) error {
	rctx, cancel := context.WithCancel(base)
	log := c.log.With("rollout", key.String())
	r := runner.New(runner.Options{
		Log: log, Store: e.store, Router: router, Targets: noTargets{},
		Analyzer: c.opts.Analyzer, Executor: c.opts.Executor, Tick: c.opts.Tick,
		Publish: func(ev runner.Event) { c.event(e, ev) },
	}, svc, m, st)
	e.runner, e.cancel = r, cancel
	c.mu.Lock()
	c.entries[key] = e
	c.mu.Unlock()
	c.wg.Go(func() { r.Run(rctx) })
	if c.judge != nil {
		c.wg.Go(func() {
			c.judge.Watch(rctx, svc.Metadata.Name, func() (*spec.Service, string) {
				s, st := r.Snapshot()
				return s, st.Stable
			})
		})
	}
	if err := r.WaitStarted(base); err != nil {
		c.stop(key)
		return fmt.Errorf("rollout %s: start: %w", key, err)
	}
	log.Info("runner started", "stable", st.Stable, "phase", st.Phase)
	return nil
}

// stop ends a Rollout's runner and waits for it.
func (c *Controller) stop(key types.NamespacedName) {
	c.mu.Lock()
	e := c.entries[key]
	delete(c.entries, key)
	c.mu.Unlock()
	if e != nil {
		e.cancel()
		<-e.runner.Done()
	}
}

func isDone(r *runner.Runner) bool {
	select {
	case <-r.Done():
		return true
	default:
		return false
	}
}

// event records a runner's notification as an events.k8s.io Event of the
// Rollout.
func (c *Controller) event(e *entry, ev runner.Event) {
	obj := e.store.Object()
	if obj == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if ev.Result == rollout.ResultRolledBack || ev.Phase == rollout.PhaseDegraded || ev.Kind == "rolled-back" {
		typ = corev1.EventTypeWarning
	}
	c.recorder.Eventf(obj, nil, typ, reason(ev.Kind), "Rollout", "%s", truncate(ev.Message, 1000))
}

// finalize restores a deleted Rollout's traffic to stable, then removes
// the finalizer. Stable is the machine's rule for an aborted rollout: the
// rollout's From once it has switched, else the stable revision.
func (c *Controller) finalize(ctx context.Context, ro *v1alpha1.Rollout) error {
	key := client.ObjectKeyFromObject(ro)
	c.stop(key)
	if !controllerutil.ContainsFinalizer(ro, v1alpha1.Finalizer) {
		return nil
	}
	st, ok, err := ro.Status.LoadEngineState()
	if err == nil && ok && st.Rollout != nil {
		stable := st.Stable
		if st.Rollout.Switched {
			stable = st.Rollout.From
		}
		slots := &slotMap{}
		for _, s := range slotNames {
			var d appsv1.Deployment
			if err := c.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: SlotName(ro.Name, s)}, &d); err == nil {
				slots.set(s, slotRevision(&d))
			}
		}
		slot, found := slots.SlotOf(stable)
		if !found {
			return fmt.Errorf("rollout %s deleted: no slot runs the stable revision %s to restore traffic to", key, stable)
		}
		router, err := c.opts.Router(RouterParams{Client: c.c, Direct: c.direct, Rollout: key, Spec: ro.Spec.DeepCopy(), SlotOf: slots.SlotOf})
		if err != nil {
			return fmt.Errorf("rollout %s deleted: restore traffic: %w", key, err)
		}
		rt := rollout.Routing{Stable: stable, Weights: rollout.Weights{stable: 100}}
		if err := router.Route(ctx, st.Service, rt); err != nil {
			return fmt.Errorf("rollout %s deleted: restore traffic: %w", key, err)
		}
		c.recorder.Eventf(ro, nil, corev1.EventTypeNormal, "TrafficRestored", "Delete",
			"rollout #%d of %s ended by deletion: all traffic to stable revision %s (slot %s)", st.Rollout.ID, st.Rollout.Version, stable, slot)
	}
	controllerutil.RemoveFinalizer(ro, v1alpha1.Finalizer)
	return c.c.Update(ctx, ro)
}

// noTargets is the runner's Targets: a revision's pods are the slot's,
// registered by the Deployment itself; the controller scales slots from
// the engine state (scale), not from these calls.
type noTargets struct{}

func (noTargets) SetVersion(string, string, []string) error { return nil }
func (noTargets) RemoveVersion(string, string) error        { return nil }
