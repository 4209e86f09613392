package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
	"github.com/switchyard/switchyard/internal/testenv/kubeenv"
)

var kube = &kubeenv.Shared{
	CRDs: func(t testing.TB) []string {
		root, err := testenv.ModuleRoot()
		if err != nil {
			t.Fatalf("module root: %v", err)
		}
		return []string{filepath.Join(root, "deploy", "crds"), kubeenv.GatewayAPICRDs(t), kubeenv.IstioCRDs(t)}
	},
	ControllerManager: true,
}

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(kube.Run(m))
}

// testLog is the controllers' log: on stderr with -v, else discarded.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

const waitTimeout = 60 * time.Second

// env is one test's namespace, client and kubelet stand-in, whose pods of
// the revision in blocked are reported not ready.
type env struct {
	t  *testing.T
	k  *kubeenv.Kube
	c  client.Client
	ns string
	kl *kubeenv.Kubelet

	mu      sync.Mutex
	blocked string
}

func newEnv(t *testing.T) *env {
	k := kube.Get(t)
	e := &env{t: t, k: k, ns: k.Namespace(t)}
	scheme, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	if e.c, err = client.New(k.Config, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	e.kl = k.RunKubelet(t, kubeenv.KubeletOptions{Namespace: e.ns, Ready: func(p *corev1.Pod) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.blocked == "" || p.Labels[v1alpha1.LabelRevision] != e.blocked
	}})
	return e
}

func (e *env) block(rev string) {
	e.mu.Lock()
	e.blocked = rev
	e.mu.Unlock()
	e.kl.Refresh()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// running is a controller's manager, stopped by stop.
type running struct {
	c      *Controller
	cancel context.CancelFunc
	done   chan error
}

func (e *env) startController(leaderElect bool) *running {
	e.t.Helper()
	return e.start(leaderElect, Options{})
}

// startControllerWith starts a controller (no leader election) with opts.
func (e *env) startControllerWith(opts Options) *running {
	e.t.Helper()
	return e.start(false, opts)
}

func (e *env) start(leaderElect bool, opts Options) *running {
	e.t.Helper()
	opts.Tick, opts.Log = 100*time.Millisecond, testLog()
	mgr, c, err := NewManager(e.k.Config, ManagerOptions{
		Namespace: e.ns, LeaderElect: leaderElect, MetricsAddress: "0",
		RetryPeriod: 200 * time.Millisecond, RenewDeadline: time.Second, LeaseDuration: 2 * time.Second,
	}, opts)
	if err != nil {
		e.t.Fatalf("new manager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- mgr.Start(ctx) }()
	e.t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
	r.done <- nil // stop is idempotent
}

func template(image string) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
}

func rev(t *testing.T, image string) string {
	r, err := Revision(template(image))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// create makes the Service web (the user's selector: app=web) and the
// Rollout web with 2 replicas of image.
func (e *env) create(image string, bg spec.BlueGreen) {
	e.t.Helper()
	ctx := ctxT(e.t)
	e.createService()
	replicas := int32(2)
	ro := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: v1alpha1.RolloutSpec{
			Replicas: &replicas, Template: template(image),
			Service:       v1alpha1.ServiceRef{Name: "web"},
			TrafficRouter: v1alpha1.TrafficRouter{Service: &v1alpha1.ServiceRouter{}},
			Strategy:      spec.Strategy{BlueGreen: &bg},
		},
	}
	if err := e.c.Create(ctx, ro); err != nil {
		e.t.Fatalf("create rollout: %v", err)
	}
}

// createService makes the user's Service web: port 80 to 8080, selector
// app=web.
func (e *env) createService() {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if err := e.c.Create(ctxT(e.t), svc); err != nil {
		e.t.Fatalf("create service: %v", err)
	}
}

func (e *env) rollout() (*v1alpha1.Rollout, rollout.State) {
	e.t.Helper()
	var ro v1alpha1.Rollout
	if err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: "web"}, &ro); err != nil {
		e.t.Fatalf("get rollout: %v", err)
	}
	st, _, err := ro.Status.LoadEngineState()
	if err != nil {
		e.t.Fatalf("engine state: %v", err)
	}
	return &ro, st
}

func (e *env) setImage(image string) {
	e.t.Helper()
	e.edit(func(ro *v1alpha1.Rollout) { ro.Spec.Template = template(image) })
}

// edit changes the Rollout's spec as a user would: read, change, update,
// again on a conflict (the controller writes the status meanwhile).
func (e *env) edit(change func(*v1alpha1.Rollout)) {
	e.t.Helper()
	ctx := ctxT(e.t)
	for {
		ro, _ := e.rollout()
		change(ro)
		err := e.c.Update(ctx, ro)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.t.Fatalf("update rollout: %v", err)
		}
	}
}

func (e *env) selectorSlot() string {
	var svc corev1.Service
	if err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: "web"}, &svc); err != nil {
		e.t.Fatalf("get service: %v", err)
	}
	if svc.Spec.Selector["app"] != "web" {
		e.t.Fatalf("service selector %v lost the user's key app=web", svc.Spec.Selector)
	}
	return svc.Spec.Selector[v1alpha1.LabelSlot]
}

func (e *env) slot(s string) *appsv1.Deployment {
	var d appsv1.Deployment
	err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: SlotName("web", s)}, &d)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("get slot %s: %v", s, err)
	}
	return &d
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d == nil || d.Spec.Replicas == nil {
		return -1
	}
	return *d.Spec.Replicas
}

// podIPs are the IPs of a slot's ready pods.
func (e *env) podIPs(slot string) []string {
	var pods corev1.PodList
	if err := e.c.List(ctxT(e.t), &pods, client.InNamespace(e.ns), client.MatchingLabels{v1alpha1.LabelSlot: slot}); err != nil {
		e.t.Fatalf("list pods: %v", err)
	}
	var ips []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			ips = append(ips, p.Status.PodIP)
		}
	}
	slices.Sort(ips)
	return ips
}

// endpointIPs are the ready addresses of the Service's EndpointSlices.
func (e *env) endpointIPs() []string {
	var slices_ discoveryv1.EndpointSliceList
	if err := e.c.List(ctxT(e.t), &slices_, client.InNamespace(e.ns), client.MatchingLabels{discoveryv1.LabelServiceName: "web"}); err != nil {
		e.t.Fatalf("list endpointslices: %v", err)
	}
	var ips []string
	for _, s := range slices_.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				ips = append(ips, ep.Addresses...)
			}
		}
	}
	slices.Sort(ips)
	return ips
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	if testenv.Poll(waitTimeout, cond) {
		return
	}
	ro, st := e.rollout()
	e.t.Fatalf("timed out after %v waiting for %s; status %+v; engine phase %s stable %s rollout %+v; kubelet errors %v",
		waitTimeout, what, ro.Status.Conditions, st.Phase, st.Stable, st.Rollout, e.kl.Errors())
}

// waitStable waits until rev is the stable revision, in slot, and the
// Service's EndpointSlice lists exactly that slot's pods.
func (e *env) waitStable(rev, slot string) {
	e.t.Helper()
	e.waitFor("stable "+rev+" in slot "+slot, func() bool {
		ro, st := e.rollout()
		return ro.Status.StableRevision == rev && st.Rollout == nil && e.selectorSlot() == slot
	})
	e.waitFor("the EndpointSlice to list slot "+slot+"'s pods", func() bool {
		want := e.podIPs(slot)
		return len(want) == 2 && slices.Equal(e.endpointIPs(), want)
	})
}

// waitStep waits until the rollout of rev is at a step of kind.
func (e *env) waitStep(rev string, kind rollout.StepKind) rollout.State {
	e.t.Helper()
	var st rollout.State
	e.waitFor(fmt.Sprintf("revision %s at step %s", rev, kind), func() bool {
		_, st = e.rollout()
		r := st.Rollout
		return r != nil && r.Version == rev && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == kind
	})
	return st
}

// TestBlueGreenBySelector: the first revision goes to slot a and the
// Service selects it; a template change deploys slot b, the selector
// waits for b's pods to be ready, then switches (the EndpointSlice moves
// to b's pods); slot a stays scaled until scaleDownDelay after the switch.
func TestBlueGreenBySelector(t *testing.T) {
	e := newEnv(t)
	ctl := e.startController(false)
	key := types.NamespacedName{Namespace: e.ns, Name: "web"}
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.create("web:1", spec.BlueGreen{ScaleDownDelay: spec.D(5 * time.Second)})
	e.waitStable(r1, "a")
	if d := e.slot("a"); slotRevision(d) != r1 || replicasOf(d) != 2 {
		t.Fatalf("slot a runs %q with %d replicas, want %s with 2", slotRevision(d), replicasOf(d), r1)
	}
	ro, _ := e.rollout()
	if c := findCondition(ro, v1alpha1.ConditionValid); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != ro.Generation {
		t.Fatalf("Valid condition %+v, want True at generation %d", c, ro.Generation)
	}

	e.block(r2)
	e.setImage("web:2")
	e.waitStep(r2, rollout.StepHealthGate)
	e.waitFor("slot b to run "+r2+" with 2 pods", func() bool {
		d := e.slot("b")
		return slotRevision(d) == r2 && replicasOf(d) == 2 && len(e.podIPs("b")) == 2
	})
	// b's pods run but are not ready: the selector must not move.
	if s := e.selectorSlot(); s != "a" {
		t.Fatalf("selector moved to slot %s before its pods were ready", s)
	}
	if _, st := e.rollout(); st.Rollout == nil || st.Rollout.Steps[st.Rollout.StepIndex].Kind != rollout.StepHealthGate {
		t.Fatalf("rollout left the health gate with b's pods not ready: %+v", st.Rollout)
	}

	writes, unblocked := ctl.c.StatusWrites(key), time.Now()
	e.block("")
	e.waitStable(r2, "b")
	t.Logf("from the new pods ready to the EndpointSlice on slot b: %v; status writes for health gate, switch and promotion: %d",
		time.Since(unblocked), ctl.c.StatusWrites(key)-writes)
	_, st := e.rollout()
	if st.Previous != r1 || st.PreviousUntil.IsZero() {
		t.Fatalf("previous = %q until %v, want %s kept", st.Previous, st.PreviousUntil, r1)
	}
	until := st.PreviousUntil
	if time.Now().Before(until) {
		if n := replicasOf(e.slot("a")); n != 2 {
			t.Fatalf("slot a has %d replicas before scaleDownDelay ended, want 2", n)
		}
	}
	e.waitFor("slot a scaled to 0 after scaleDownDelay", func() bool { return replicasOf(e.slot("a")) == 0 })
	if now := time.Now(); now.Before(until) {
		t.Fatalf("slot a scaled down at %v, before scaleDownDelay ended at %v", now, until)
	}
	if s := e.selectorSlot(); s != "b" {
		t.Fatalf("selector at slot %s after scale-down, want b", s)
	}
}

// TestResumeAfterRestart: a controller stopped mid-rollout (at the health
// gate) and started again resumes the same rollout at the same step from
// the status, and finishes it; leader election on a Lease is on.
func TestResumeAfterRestart(t *testing.T) {
	e := newEnv(t)
	first := e.startController(true)
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.create("web:1", spec.BlueGreen{ScaleDownDelay: spec.D(time.Hour)})
	e.waitStable(r1, "a")
	e.block(r2)
	e.setImage("web:2")
	before := e.waitStep(r2, rollout.StepHealthGate)
	first.stop()
	if n := first.c.Runners(); n != 0 {
		t.Fatalf("%d runners still running after the manager stopped", n)
	}

	second := e.startController(true)
	e.waitFor("the second controller to run the rollout", func() bool { return second.c.Runners() == 1 })
	after := e.waitStep(r2, rollout.StepHealthGate)
	if after.Rollout.ID != before.Rollout.ID || !after.Rollout.StartedAt.Equal(before.Rollout.StartedAt) ||
		after.Rollout.StepIndex != before.Rollout.StepIndex {
		t.Fatalf("after restart: rollout #%d step %d started %v; before: #%d step %d started %v",
			after.Rollout.ID, after.Rollout.StepIndex, after.Rollout.StartedAt,
			before.Rollout.ID, before.Rollout.StepIndex, before.Rollout.StartedAt)
	}
	if s := e.selectorSlot(); s != "a" {
		t.Fatalf("selector at slot %s after restart at the health gate, want a", s)
	}
	e.block("")
	e.waitStable(r2, "b")
	if _, st := e.rollout(); st.Last == nil || st.Last.ID != before.Rollout.ID || st.Last.Result != rollout.ResultPromoted {
		t.Fatalf("last rollout %+v, want #%d promoted", st.Last, before.Rollout.ID)
	}
}

// TestOnlyLeaderRuns: of two controllers with leader election, only the
// holder of the Lease runs the Rollout; when it stops, the other takes over.
func TestOnlyLeaderRuns(t *testing.T) {
	e := newEnv(t)
	a, b := e.startController(true), e.startController(true)
	r1 := rev(t, "web:1")
	e.create("web:1", spec.BlueGreen{})
	e.waitStable(r1, "a")
	e.waitFor("one controller to run the rollout", func() bool { return a.c.Runners()+b.c.Runners() == 1 })
	leader, other := a, b
	if b.c.Runners() == 1 {
		leader, other = b, a
	}
	if n := other.c.Runners(); n != 0 {
		t.Fatalf("the controller without the Lease runs %d rollouts", n)
	}
	leader.stop()
	e.waitFor("the other controller to take over", func() bool { return other.c.Runners() == 1 })
	e.waitStable(r1, "a")
}

// TestDeleteRestoresTraffic: a Rollout deleted after the switch, during
// its bake, has its Service switched back to the stable slot before the
// finalizer lets it go.
func TestDeleteRestoresTraffic(t *testing.T) {
	e := newEnv(t)
	e.startController(false)
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.create("web:1", spec.BlueGreen{BakeDuration: spec.D(time.Hour), ScaleDownDelay: spec.D(time.Hour)})
	e.waitStable(r1, "a")
	e.setImage("web:2")
	e.waitStep(r2, rollout.StepBake)
	e.waitFor("the switch to slot b", func() bool { return e.selectorSlot() == "b" })
	ro, _ := e.rollout()
	if !slices.Contains(ro.Finalizers, v1alpha1.Finalizer) {
		t.Fatalf("finalizers %v, want %s", ro.Finalizers, v1alpha1.Finalizer)
	}
	if err := e.c.Delete(ctxT(t), ro); err != nil {
		t.Fatalf("delete rollout: %v", err)
	}
	e.waitFor("the Rollout to be gone", func() bool {
		var cur v1alpha1.Rollout
		err := e.c.Get(ctxT(t), client.ObjectKeyFromObject(ro), &cur)
		return apierrors.IsNotFound(err)
	})
	if s := e.selectorSlot(); s != "a" {
		t.Fatalf("selector at slot %s after the Rollout was deleted mid-rollout, want a (stable %s)", s, r1)
	}
}

// TestDeadlineRollsBack: a new revision whose pods never become ready is
// rolled back at progressDeadline; the selector never left the stable
// slot, the failed slot is scaled to 0, and the Rollout has events of it
// (events.k8s.io).
func TestDeadlineRollsBack(t *testing.T) {
	e := newEnv(t)
	e.startController(false)
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.create("web:1", spec.BlueGreen{})
	e.waitStable(r1, "a")
	e.block(r2)
	e.edit(func(ro *v1alpha1.Rollout) {
		ro.Spec.ProgressDeadline = spec.D(2 * time.Second)
		ro.Spec.Template = template("web:2")
	})
	e.waitFor("the rollout of "+r2+" rolled back", func() bool {
		_, st := e.rollout()
		return st.Last != nil && st.Last.Version == r2 && st.Last.Result == rollout.ResultRolledBack
	})
	if s := e.selectorSlot(); s != "a" {
		t.Fatalf("selector at slot %s after a rollback at the health gate, want a", s)
	}
	e.waitFor("slot b scaled to 0", func() bool { return replicasOf(e.slot("b")) == 0 })
	if n := replicasOf(e.slot("a")); n != 2 {
		t.Fatalf("stable slot a has %d replicas, want 2", n)
	}
	e.waitFor("events of the rollout", func() bool {
		var evs eventsv1.EventList
		if err := e.c.List(ctxT(t), &evs, client.InNamespace(e.ns)); err != nil {
			t.Fatalf("list events: %v", err)
		}
		var reasons []string
		for _, ev := range evs.Items {
			if ev.Regarding.Kind == v1alpha1.Kind && ev.Regarding.Name == "web" {
				reasons = append(reasons, ev.Reason)
			}
		}
		return slices.Contains(reasons, "Deploy") && slices.Contains(reasons, "RolledBack") && slices.Contains(reasons, "SlotScaledDown")
	})
}

// TestStatusConflict: a status write conditional on a resourceVersion
// that another writer's engine state superseded fails and leaves that
// state; one superseded only by a spec edit is repeated on the new object.
func TestStatusConflict(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	e.create("web:1", spec.BlueGreen{})
	key := types.NamespacedName{Namespace: e.ns, Name: "web"}
	store := NewStatusStore(e.c, e.c, key)
	if _, ok, err := store.Load(ctx, "web"); err != nil || ok {
		t.Fatalf("Load of a new Rollout = %v, %v; want no state", ok, err)
	}
	state := func(healthy int) rollout.State {
		return rollout.State{
			Service: "web", Phase: rollout.PhaseStable, Stable: "r1",
			Weights: rollout.Weights{"r1": 100}, Versions: map[string][]string{"r1": {"slot-a"}},
			Health: map[string]rollout.VersionHealth{"r1": {Healthy: healthy, Total: 2}},
		}
	}
	if err := store.Save(ctx, "web", state(1)); err != nil {
		t.Fatalf("first save: %v", err)
	}
	// A user's spec edit bumps the resourceVersion; the engine state is
	// still ours, so the save is repeated on the fresh object.
	e.setImage("web:2")
	if err := store.Save(ctx, "web", state(2)); err != nil {
		t.Fatalf("save after a spec edit: %v", err)
	}
	if _, st := e.rollout(); st.Health["r1"].Healthy != 2 {
		t.Fatalf("status health %+v, want the saved 2", st.Health)
	}
	// Another writer changes the engine state.
	ro, _ := e.rollout()
	if err := ro.Status.SetEngineState(state(0)); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Status().Update(ctx, ro); err != nil {
		t.Fatalf("other writer: %v", err)
	}
	err := store.Save(ctx, "web", state(1))
	if !errors.Is(err, ErrStateChanged) {
		t.Fatalf("save over another writer's state = %v, want ErrStateChanged", err)
	}
	if !store.Stale() {
		t.Fatal("store not marked stale")
	}
	if _, st := e.rollout(); st.Health["r1"].Healthy != 0 {
		t.Fatalf("status health %+v, want the other writer's 0: it was overwritten", st.Health)
	}
}

func findCondition(ro *v1alpha1.Rollout, typ string) *metav1.Condition {
	for i := range ro.Status.Conditions {
		if ro.Status.Conditions[i].Type == typ {
			return &ro.Status.Conditions[i]
		}
	}
	return nil
}
