package controller

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
)

// withWorkload returns ro as the controller runs it. With spec.template
// that is ro itself. With spec.workloadRef it is a copy whose template is
// the referenced Deployment's pod template and whose replicas are the
// Deployment's (workloadRef cleared: from here on the slots are made from
// it exactly as from an inline template), and the workload. The
// Deployment is only read here: it stays its owner's (a GitOps tool's),
// and only its replicas are ever written (scaleDownWorkload).
//
// Once scaleDown onsuccess has scaled the Deployment to 0, its replicas
// no longer say how many pods a revision runs: the slots keep the count
// they run (a user's later change of the Deployment's replicas is taken
// as the new count, and the Deployment scaled to 0 again).
func (c *Controller) withWorkload(ctx context.Context, ro *v1alpha1.Rollout) (*v1alpha1.Rollout, *workload, error) {
	ref := ro.Spec.WorkloadRef
	if ref == nil {
		return ro, nil, nil
	}
	var d appsv1.Deployment
	err := c.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ref.Name}, &d)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil, &invalidError{reasonWorkloadNotFound, fmt.Errorf(
			"spec.workloadRef.name is %q: no Deployment %q in namespace %q; create it, or set spec.workloadRef.name to an existing Deployment (or use spec.template)",
			ref.Name, ref.Name, ro.Namespace)}
	case err != nil:
		return nil, nil, fmt.Errorf("get deployment %s/%s (spec.workloadRef.name): %w", ro.Namespace, ref.Name, err)
	}
	if owner := d.Labels[v1alpha1.LabelRollout]; owner != "" {
		return nil, nil, &invalidError{"Invalid", fmt.Errorf(
			"spec.workloadRef.name is %q: that Deployment is a slot of Rollout %q; name the Deployment your workload is defined in",
			ref.Name, owner)}
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas == 0 {
		if replicas, err = c.slotReplicas(ctx, ro); err != nil {
			return nil, nil, err
		}
	}
	out := ro.DeepCopy()
	out.Spec.WorkloadRef = nil
	out.Spec.Template = d.Spec.Template.DeepCopy()
	out.Spec.Replicas = &replicas
	return out, &workload{dep: &d, scaleDown: ref.ScaleDownPolicy()}, nil
}

// workload is the Deployment of a Rollout's spec.workloadRef, as read,
// and its scaleDown policy.
type workload struct {
	dep       *appsv1.Deployment
	scaleDown string
}

// slotReplicas is the largest replica count of ro's slots, at least 1:
// the count a revision runs when the workloadRef Deployment is at 0.
func (c *Controller) slotReplicas(ctx context.Context, ro *v1alpha1.Rollout) (int32, error) {
	n := int32(1)
	for _, s := range slotNames {
		var d appsv1.Deployment
		err := c.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: SlotName(ro.Name, s)}, &d)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return 0, fmt.Errorf("get slot %s: %w", SlotName(ro.Name, s), err)
		}
		if d.Spec.Replicas != nil && *d.Spec.Replicas > n && isControlledBy(d.OwnerReferences, ro) {
			n = *d.Spec.Replicas
		}
	}
	return n, nil
}

// workloadServed reports whether the Rollout has taken the workload's
// traffic for good: no rollout runs, the router confirmed all traffic on
// the stable revision, and all of its pods are ready.
func workloadServed(st rollout.State, slots *slotMap, pods []corev1.Pod, replicas int32) bool {
	if st.Rollout != nil || st.Stable == "" || st.Applied[st.Stable] != 100 {
		return false
	}
	slot, ok := slots.SlotOf(st.Stable)
	return ok && readyPods(pods, slot, st.Stable) >= int(replicas)
}

// scaleDownWorkload scales the workloadRef Deployment to 0 when its
// scaleDown is onsuccess and the Rollout serves its traffic
// (workloadServed). It writes spec.replicas only, by a merge patch: the
// template, labels and selector stay the owner's. It never scales the
// Deployment up. w is nil for a Rollout with spec.template.
func (c *Controller) scaleDownWorkload(ctx context.Context, ro *v1alpha1.Rollout, w *workload, st rollout.State, slots *slotMap, pods []corev1.Pod, replicas int32) error {
	if w == nil || w.scaleDown != v1alpha1.ScaleDownOnSuccess || !workloadServed(st, slots, pods, replicas) {
		return nil
	}
	d := w.dep
	if d.Spec.Replicas != nil && *d.Spec.Replicas == 0 {
		return nil
	}
	patch := client.MergeFrom(d.DeepCopy())
	zero := int32(0)
	d.Spec.Replicas = &zero
	if err := c.c.Patch(ctx, d, patch, client.FieldOwner(Name)); err != nil {
		return fmt.Errorf("scale workloadRef deployment %s/%s to 0: %w", d.Namespace, d.Name, err)
	}
	c.recorder.Eventf(ro, d, corev1.EventTypeNormal, "WorkloadScaledDown", "Scale",
		"deployment %s scaled to 0 (workloadRef.scaleDown onsuccess): stable revision %s serves all traffic", d.Name, st.Stable)
	return nil
}
