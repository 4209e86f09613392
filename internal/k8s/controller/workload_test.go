package controller

import (
	"maps"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/spec"
)

// createWorkload makes the user's Deployment web: 2 replicas of image,
// selector and labels app=web (what a GitOps tool applies).
func (e *env) createWorkload(image string) {
	e.t.Helper()
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns, Labels: map[string]string{"app": "web", "owner": "gitops"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: *template(image),
		},
	}
	if err := e.c.Create(ctxT(e.t), d); err != nil {
		e.t.Fatalf("create deployment web: %v", err)
	}
}

// workload is the user's Deployment web as the API server has it.
func (e *env) workload() *appsv1.Deployment {
	e.t.Helper()
	var d appsv1.Deployment
	if err := e.c.Get(ctxT(e.t), types.NamespacedName{Namespace: e.ns, Name: "web"}, &d); err != nil {
		e.t.Fatalf("get deployment web: %v", err)
	}
	return &d
}

// workloadRev is the revision of the user's Deployment's template (as
// defaulted by the API server: the template the controller reads).
func (e *env) workloadRev() string {
	e.t.Helper()
	r, err := Revision(&e.workload().Spec.Template)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// setWorkloadImage changes the user's Deployment's image, as a GitOps
// tool applying a new commit would (again on a conflict).
func (e *env) setWorkloadImage(image string) {
	e.t.Helper()
	for {
		d := e.workload()
		d.Spec.Template.Spec.Containers[0].Image = image
		err := e.c.Update(ctxT(e.t), d)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.t.Fatalf("update deployment web: %v", err)
		}
	}
}

// workloadRollout is a blue-green Rollout web of the Deployment web.
func (e *env) workloadRollout(scaleDown string) *v1alpha1.Rollout {
	ro := e.blueGreenRollout("", spec.BlueGreen{})
	ro.Spec.Template, ro.Spec.Replicas = nil, nil
	ro.Spec.WorkloadRef = &v1alpha1.WorkloadRef{Name: "web", ScaleDown: scaleDown}
	return ro
}

// TestWorkloadRef: a Rollout of an existing Deployment (scaleDown
// onsuccess) runs the Deployment's template in slot a at its replica
// count, takes the Service's traffic, then scales the Deployment to 0 —
// its template and labels untouched. A new template in the Deployment
// rolls out to slot b at the count the slots ran.
func TestWorkloadRef(t *testing.T) {
	e := newEnv(t)
	e.startController(false)
	e.createService()
	e.createWorkload("web:1")
	before := e.workload()
	r1 := e.workloadRev()
	if err := e.c.Create(ctxT(t), e.workloadRollout(v1alpha1.ScaleDownOnSuccess)); err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	e.waitStable(r1, "a")
	if d := e.slot("a"); replicasOf(d) != 2 {
		t.Fatalf("slot a has %d replicas, want the Deployment's 2", replicasOf(d))
	}
	e.waitFor("the Deployment web scaled to 0", func() bool { return replicasOf(e.workload()) == 0 })
	after := e.workload()
	if r := e.workloadRev(); r != r1 || !maps.Equal(after.Labels, before.Labels) || !maps.Equal(after.Spec.Selector.MatchLabels, before.Spec.Selector.MatchLabels) {
		t.Fatalf("the Deployment changed beyond its replicas: revision %s (was %s), labels %v (were %v), selector %v",
			r, r1, after.Labels, before.Labels, after.Spec.Selector.MatchLabels)
	}

	e.setWorkloadImage("web:2")
	r2 := e.workloadRev()
	if r2 == r1 {
		t.Fatalf("new image, same revision %s", r2)
	}
	e.waitStable(r2, "b")
	if d := e.slot("b"); slotRevision(d) != r2 || replicasOf(d) != 2 {
		t.Fatalf("slot b runs %q with %d replicas, want %s with 2", slotRevision(d), replicasOf(d), r2)
	}
	if d := e.workload(); replicasOf(d) != 0 || d.Spec.Template.Spec.Containers[0].Image != "web:2" {
		t.Fatalf("the Deployment has %d replicas of %s, want 0 of web:2", replicasOf(d), d.Spec.Template.Spec.Containers[0].Image)
	}
}

// TestWorkloadNotFound: a Rollout whose workloadRef names no Deployment
// gets Valid False, reason WorkloadNotFound, naming the field, the
// Deployment and the fix, and no slot; once the Deployment is created
// the Rollout runs it. With scaleDown never (the default) the Deployment
// is never written: its generation stays the one it was created with.
func TestWorkloadNotFound(t *testing.T) {
	e := newEnv(t)
	e.startController(false)
	e.createService()
	if err := e.c.Create(ctxT(t), e.workloadRollout("")); err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	c := e.waitValid(metav1.ConditionFalse, "WorkloadNotFound")
	for _, want := range []string{`spec.workloadRef.name is "web"`, `no Deployment "web" in namespace "` + e.ns + `"`, "create it"} {
		if !strings.Contains(c.Message, want) {
			t.Fatalf("WorkloadNotFound message %q does not say %q", c.Message, want)
		}
	}
	if d := e.slot("a"); d != nil {
		t.Fatalf("slot a created for a Rollout whose Deployment does not exist")
	}

	e.createWorkload("web:1")
	gen := e.workload().Generation
	r1 := e.workloadRev()
	e.waitValid(metav1.ConditionTrue, "Valid")
	e.waitStable(r1, "a")
	e.setWorkloadImage("web:2")
	gen++ // the image change
	r2 := e.workloadRev()
	e.waitStable(r2, "b")
	if d := e.workload(); d.Generation != gen || replicasOf(d) != 2 {
		t.Fatalf("the Deployment (scaleDown never) is at generation %d with %d replicas, want %d with 2: the controller wrote it", d.Generation, replicasOf(d), gen)
	}
}
