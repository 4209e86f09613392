package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/spec"
)

// blueGreenRollout is the Rollout web of e.create (2 replicas of image,
// trafficRouter.service, spec.service web), not created.
func (e *env) blueGreenRollout(image string, bg spec.BlueGreen) *v1alpha1.Rollout {
	replicas := int32(2)
	return &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
		Spec: v1alpha1.RolloutSpec{
			Replicas: &replicas, Template: template(image),
			Service:       v1alpha1.ServiceRef{Name: "web"},
			TrafficRouter: v1alpha1.TrafficRouter{Service: &v1alpha1.ServiceRouter{}},
			Strategy:      spec.Strategy{BlueGreen: &bg},
		},
	}
}

// waitValid waits until the Valid condition has status and reason at the
// Rollout's generation, and returns it.
func (e *env) waitValid(status metav1.ConditionStatus, reason string) *metav1.Condition {
	e.t.Helper()
	var c *metav1.Condition
	e.waitFor("Valid "+string(status)+" "+reason, func() bool {
		ro, _ := e.rollout()
		c = findCondition(ro, v1alpha1.ConditionValid)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == ro.Generation
	})
	return c
}

// TestServiceNotFound: a Rollout whose spec.service does not exist gets
// Valid False, reason ServiceNotFound, with a message naming the field,
// the Service and the fix, and nothing is created; once the Service is
// created the Rollout runs (Valid True, first revision stable).
func TestServiceNotFound(t *testing.T) {
	e := newEnv(t)
	ctl := e.startController(false)
	if err := e.c.Create(ctxT(t), e.blueGreenRollout("web:1", spec.BlueGreen{})); err != nil {
		t.Fatalf("create rollout: %v", err)
	}
	c := e.waitValid(metav1.ConditionFalse, "ServiceNotFound")
	for _, want := range []string{`spec.service.name is "web"`, `no Service "web" in namespace "` + e.ns + `"`, "create it"} {
		if !strings.Contains(c.Message, want) {
			t.Fatalf("ServiceNotFound message %q does not say %q", c.Message, want)
		}
	}
	if d := e.slot("a"); d != nil {
		t.Fatalf("slot a created for a Rollout whose Service does not exist")
	}

	e.createService()
	e.waitValid(metav1.ConditionTrue, "Valid")
	e.waitStable(rev(t, "web:1"), "a")

	// Deleted under a running Rollout: its runner stops until the Service
	// is back, then resumes and points the new Service at the stable slot.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web"}}
	if err := e.c.Delete(ctxT(t), svc); err != nil {
		t.Fatalf("delete service: %v", err)
	}
	e.waitValid(metav1.ConditionFalse, "ServiceNotFound")
	e.waitFor("the runner to stop", func() bool { return ctl.c.Runners() == 0 })
	e.createService()
	e.waitValid(metav1.ConditionTrue, "Valid")
	e.waitStable(rev(t, "web:1"), "a")
}
