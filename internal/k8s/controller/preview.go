package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
)

// previewSlot is the slot trafficRouter.service.previewService selects:
// the slot of the revision being rolled out (candidate) once all its
// replicas are ready, otherwise the stable revision's slot — so before a
// rollout, while its pods start, and after its promotion or abort. ok is
// false when no slot runs the revision to select (nothing to point at:
// the selector is left as it is, never emptied).
func previewSlot(st rollout.State, candidate string, slots *slotMap, pods []corev1.Pod, replicas int32) (slot string, ok bool) {
	if candidate != "" {
		if s, found := slots.SlotOf(candidate); found && readyPods(pods, s, candidate) >= int(replicas) {
			return s, true
		}
	}
	return slots.SlotOf(st.Stable)
}

// candidate is the revision a reconcile rolls out: rev when it deploys it
// now, otherwise the running rollout's.
func candidate(st rollout.State, deploy bool, rev string) string {
	switch {
	case deploy:
		return rev
	case st.Rollout != nil:
		return st.Rollout.Version
	}
	return ""
}

// routePreview points the preview Service at previewSlot, by the two
// selector keys the service router sets on spec.service (setSelector): the
// user's other keys stay, and the selector is never empty. It runs before
// the engine is fed the new slot's health, so the health gate cannot pass
// (and a preview period or a pre-rollout webhook cannot start) before the
// preview Service selects the new pods.
func (c *Controller) routePreview(ctx context.Context, ro *v1alpha1.Rollout, st rollout.State, cand string, slots *slotMap, pods []corev1.Pod, replicas int32) error {
	r := ro.Spec.TrafficRouter.Service
	if r == nil || r.PreviewService == "" {
		return nil
	}
	slot, ok := previewSlot(st, cand, slots, pods, replicas)
	if !ok {
		return nil
	}
	key := types.NamespacedName{Namespace: ro.Namespace, Name: r.PreviewService}
	if err := setSelector(ctx, c.c, key, ro.Name, slot); err != nil {
		return fmt.Errorf("preview service (spec.trafficRouter.service.previewService): %w", err)
	}
	return nil
}
