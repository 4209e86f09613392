package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func pod(slot, rev string, ready bool) corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1alpha1.LabelSlot: slot, v1alpha1.LabelRevision: rev}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestPreviewSlot(t *testing.T) {
	slots := &slotMap{}
	slots.set("a", "r1")
	slots.set("b", "r2")
	stable := []corev1.Pod{pod("a", "r1", true), pod("a", "r1", true)}
	tests := []struct {
		name      string
		st        rollout.State
		candidate string
		pods      []corev1.Pod
		want      string
		ok        bool
	}{
		{"no rollout", rollout.State{Stable: "r1"}, "", stable, "a", true},
		{"new slot not ready", rollout.State{Stable: "r1"}, "r2", append(stable, pod("b", "r2", true), pod("b", "r2", false)), "a", true},
		{"new slot ready", rollout.State{Stable: "r1"}, "r2", append(stable, pod("b", "r2", true), pod("b", "r2", true)), "b", true},
		{"promoted", rollout.State{Stable: "r2"}, "", append(stable, pod("b", "r2", true)), "b", true},
		{"candidate in no slot", rollout.State{Stable: "r1"}, "r3", stable, "a", true},
		{"stable in no slot", rollout.State{Stable: "r9"}, "", stable, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := previewSlot(tt.st, tt.candidate, slots, tt.pods, 2)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("previewSlot(stable %s, candidate %s) = %q, %v; want %q, %v", tt.st.Stable, tt.candidate, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// previewSlotOf is the slot the preview Service web-preview selects,
// after checking the user's key app=web and the rollout key are there.
func (e *env) previewSlotOf() string {
	e.t.Helper()
	var svc corev1.Service
	if err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: "web-preview"}, &svc); err != nil {
		e.t.Fatalf("get preview service: %v", err)
	}
	sel := svc.Spec.Selector
	if sel["app"] != "web" {
		e.t.Fatalf("preview selector %v lost the user's key app=web", sel)
	}
	if s := sel[v1alpha1.LabelSlot]; s != "" && sel[v1alpha1.LabelRollout] != "web" {
		e.t.Fatalf("preview selector %v has a slot but not the rollout", sel)
	}
	return sel[v1alpha1.LabelSlot]
}

// submit hands an event to the running runner of the Rollout web, as the
// CLI's commands will.
func (r *running) submit(t *testing.T, ns string, ev rollout.Event) {
	t.Helper()
	r.c.mu.Lock()
	en := r.c.entries[types.NamespacedName{Namespace: ns, Name: "web"}]
	r.c.mu.Unlock()
	if en == nil {
		t.Fatal("no runner for rollout web")
	}
	if err := en.runner.Submit(ctxT(t), ev); err != nil {
		t.Fatalf("submit %T: %v", ev, err)
	}
}

// TestPreviewService: with trafficRouter.service.previewService, the
// preview Service selects the stable slot until the new slot's pods are
// all ready, then the new slot while the blue-green waits for its
// promotion (spec.service still on the stable slot), and the new stable
// slot after the promotion; the next rollout's abort puts it back on the
// stable slot.
func TestPreviewService(t *testing.T) {
	e := newEnv(t)
	ctl := e.startController(false)
	e.createService()
	preview := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-preview", Namespace: e.ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if err := e.c.Create(ctxT(t), preview); err != nil {
		t.Fatalf("create preview service: %v", err)
	}
	ro := e.blueGreenRollout("web:1", spec.BlueGreen{AutoPromote: ptrTo(false), ScaleDownDelay: spec.D(time.Hour)})
	ro.Spec.TrafficRouter.Service.PreviewService = "web-preview"
	if err := e.c.Create(ctxT(t), ro); err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	r1, r2, r3 := rev(t, "web:1"), rev(t, "web:2"), rev(t, "web:3")
	e.waitStable(r1, "a")
	e.waitFor("the preview on stable slot a", func() bool { return e.previewSlotOf() == "a" })

	e.block(r2)
	e.setImage("web:2")
	e.waitStep(r2, rollout.StepHealthGate)
	e.waitFor("slot b to run 2 pods of "+r2, func() bool {
		return slotRevision(e.slot("b")) == r2 && len(e.podIPs("b")) == 2
	})
	if s := e.previewSlotOf(); s != "a" {
		t.Fatalf("preview moved to slot %s before its pods were ready", s)
	}
	e.block("")
	e.waitStep(r2, rollout.StepGate)
	if s := e.previewSlotOf(); s != "b" {
		t.Fatalf("preview at slot %q when the rollout waits at its gate, want b", s)
	}
	if s := e.selectorSlot(); s != "a" {
		t.Fatalf("service at slot %s before the promotion, want a", s)
	}

	ctl.submit(t, e.ns, rollout.Promote{By: "test"})
	e.waitStable(r2, "b")
	if s := e.previewSlotOf(); s != "b" {
		t.Fatalf("preview at slot %q after the promotion, want b", s)
	}

	e.setImage("web:3")
	e.waitStep(r3, rollout.StepGate)
	e.waitFor("the preview on slot a running "+r3, func() bool { return e.previewSlotOf() == "a" })
	ctl.submit(t, e.ns, rollout.Abort{Reason: "test", By: "test"})
	e.waitFor("the rollout of "+r3+" aborted", func() bool {
		_, st := e.rollout()
		return st.Rollout == nil && st.Last != nil && st.Last.Version == r3 && st.Last.Result == rollout.ResultAborted
	})
	e.waitFor("the preview back on stable slot b", func() bool { return e.previewSlotOf() == "b" })
	if s := e.selectorSlot(); s != "b" {
		t.Fatalf("service at slot %s after the abort, want b", s)
	}
}
