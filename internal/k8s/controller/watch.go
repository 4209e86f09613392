package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/switchyard/switchyard/api/v1alpha1"
)

// rolloutsNaming returns a map function from an object to the Rollouts of
// its namespace that name it, by names (read from the cache).
func (c *Controller) rolloutsNaming(names func(ro *v1alpha1.Rollout) []string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.RolloutList
		if err := c.c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			// The requeue of every Rollout bounds what a failed list misses.
			c.log.Warn("list rollouts for a watch event", "namespace", o.GetNamespace(), "err", err)
			return nil
		}
		var reqs []reconcile.Request
		for i := range list.Items {
			ro := &list.Items[i]
			for _, n := range names(ro) {
				if n == o.GetName() {
					reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ro)})
					break
				}
			}
		}
		return reqs
	}
}

// servicesOf are the Services a Rollout names: spec.service and the
// preview Service.
func servicesOf(ro *v1alpha1.Rollout) []string {
	names := []string{ro.Spec.Service.Name}
	if r := ro.Spec.TrafficRouter.Service; r != nil && r.PreviewService != "" {
		names = append(names, r.PreviewService)
	}
	return names
}

// createdOrDeleted passes the events that change whether an object
// exists: a Rollout that waits for its Service (ServiceNotFound) runs once
// it is created, one whose Service is deleted stops. Updates are left to
// the Rollout's own events and its requeue (the controller's own selector
// writes would otherwise wake it for nothing).
var createdOrDeleted = predicate.Funcs{
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// Reasons of a Valid False condition for a valid spec that names an
// object that does not exist (yet).
const (
	reasonServiceNotFound  = "ServiceNotFound"
	reasonWorkloadNotFound = "WorkloadNotFound"
)

// absent reports whether the spec is valid but names an object that does
// not exist: the Rollout waits for it.
func (e *invalidError) absent() bool {
	return e.reason == reasonServiceNotFound || e.reason == reasonWorkloadNotFound
}

// workloadOf is the Deployment a Rollout's spec.workloadRef names: a
// change of its template (a new generation) starts a rollout.
func workloadOf(ro *v1alpha1.Rollout) []string {
	if ro.Spec.WorkloadRef == nil {
		return nil
	}
	return []string{ro.Spec.WorkloadRef.Name}
}
