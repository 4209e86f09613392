package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard/switchyard/api/v1alpha1"
)

// The two slots of a Rollout: Deployments "<rollout>-a" and "<rollout>-b".
var slotNames = [2]string{"a", "b"}

func otherSlot(s string) string {
	if s == "a" {
		return "b"
	}
	return "a"
}

// SlotName is the name of a Rollout's slot Deployment.
func SlotName(rollout, slot string) string { return rollout + "-" + slot }

// Revision names a pod template: the first 10 hex digits of the SHA-256
// of its JSON (encoding/json writes struct fields in order and map keys
// sorted, so equal templates give equal names). It is a valid spec
// version name and label value.
func Revision(t *corev1.PodTemplateSpec) (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode pod template: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:5]), nil
}

// slotLabels are a slot's selector: the Deployment's, and the keys of the
// Service selector that the service router owns.
func slotLabels(rollout, slot string) map[string]string {
	return map[string]string{v1alpha1.LabelRollout: rollout, v1alpha1.LabelSlot: slot}
}

// slotDeployment is the Deployment of slot running revision rev of ro's
// template with replicas pods, owned by ro (garbage collection removes it
// with the Rollout).
func slotDeployment(ro *v1alpha1.Rollout, slot, rev string, replicas int32) *appsv1.Deployment {
	labels := slotLabels(ro.Name, slot)
	labels[v1alpha1.LabelRevision] = rev
	tmpl := ro.Spec.Template.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	maps.Copy(tmpl.Labels, labels)
	if ro.Spec.TrafficRouter.Istio != nil {
		// Istio's metrics name a pod's version (destination_version) by
		// this label: the revision, unless the template says otherwise.
		if _, ok := tmpl.Labels[IstioRevisionLabel]; !ok {
			tmpl.Labels[IstioRevisionLabel] = rev
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name: SlotName(ro.Name, slot), Namespace: ro.Namespace, Labels: maps.Clone(labels),
			OwnerReferences: []metav1.OwnerReference{ownerRef(ro)},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: slotLabels(ro.Name, slot)},
			Template: *tmpl,
		},
	}
}

// IstioRevisionLabel is the pod label Istio's telemetry takes a workload's
// version from (destination_version, source_version).
const IstioRevisionLabel = "service.istio.io/canonical-revision"

// ownerRef makes ro the controller of an object it creates (garbage
// collection removes the object with the Rollout).
func ownerRef(ro *v1alpha1.Rollout) metav1.OwnerReference {
	ctrl, block := true, true
	return metav1.OwnerReference{
		APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.Kind, Name: ro.Name, UID: ro.UID,
		Controller: &ctrl, BlockOwnerDeletion: &block,
	}
}

// isControlledBy reports whether refs name ro as the controller.
func isControlledBy(refs []metav1.OwnerReference, ro *v1alpha1.Rollout) bool {
	for _, o := range refs {
		if o.Controller != nil && *o.Controller && o.UID == ro.UID {
			return true
		}
	}
	return false
}

// slotRevision is the revision a slot Deployment runs (its template's label).
func slotRevision(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	return d.Spec.Template.Labels[v1alpha1.LabelRevision]
}

// readyPods counts the pods of a slot's revision that are ready and not
// terminating.
func readyPods(pods []corev1.Pod, slot, rev string) int {
	n := 0
	for i := range pods {
		p := &pods[i]
		if p.Labels[v1alpha1.LabelSlot] != slot || p.Labels[v1alpha1.LabelRevision] != rev || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

// slotMap is which slot runs which revision, as last observed; the router
// reads it.
type slotMap struct {
	mu     sync.Mutex
	bySlot map[string]string // slot -> revision
}

func (m *slotMap) set(slot, rev string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bySlot == nil {
		m.bySlot = map[string]string{}
	}
	m.bySlot[slot] = rev
}

// SlotOf returns the slot that runs rev.
func (m *slotMap) SlotOf(rev string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range slotNames {
		if rev != "" && m.bySlot[s] == rev {
			return s, true
		}
	}
	return "", false
}
