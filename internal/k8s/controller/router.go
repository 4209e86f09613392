package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/gatewayapi"
	"github.com/switchyard/switchyard/internal/router/istio"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// RouterParams is what a traffic router of a Rollout is built from.
type RouterParams struct {
	Client client.Client
	// Direct reads and writes the API server without a cache (the
	// weighted routers' objects: a stale cached read only conflicts, and
	// an informer would need their CRDs installed before the controller
	// starts). Its scheme has the built-in types, the Rollout and the
	// Gateway API.
	Direct client.Client
	// Rollout is the Rollout's namespace and name.
	Rollout types.NamespacedName
	// Spec is the Rollout's spec (spec.service, spec.trafficRouter, ...).
	Spec *v1alpha1.RolloutSpec
	// SlotOf returns the slot ("a" or "b") that runs a revision: the
	// slot's Deployment is SlotName(rollout, slot), its pods carry the
	// labels switchyard.dev/rollout and switchyard.dev/slot.
	SlotOf func(revision string) (slot string, ok bool)
}

// RouterFactory builds the runner.Router of a Rollout by its
// spec.trafficRouter, or says why it cannot. It is called when a Rollout's
// runner starts, and when a deleted Rollout's traffic is restored.
type RouterFactory func(p RouterParams) (runner.Router, error)

// ErrRouterNotBuilt is returned by a RouterFactory for a traffic router it
// does not have.
var ErrRouterNotBuilt = errors.New("traffic router not built into this controller")

// DefaultRouter picks the router by spec.trafficRouter: service (blue-green
// by selector, ServiceRouter), gatewayAPI (internal/router/gatewayapi) or
// istio (internal/router/istio). The weighted routers are told, before
// each Route, which slot runs which revision as last observed.
func DefaultRouter(p RouterParams) (runner.Router, error) {
	tr := &p.Spec.TrafficRouter
	direct := p.Direct
	if direct == nil {
		direct = p.Client
	}
	switch {
	case tr.Service != nil:
		return &ServiceRouter{c: p.Client, rollout: p.Rollout, service: p.Spec.Service.Name, slotOf: p.SlotOf}, nil
	case tr.GatewayAPI != nil:
		r := gatewayapi.New(direct, gatewayapi.Options{})
		t := gatewayapi.Target{
			Namespace: p.Rollout.Namespace, HTTPRoute: tr.GatewayAPI.HTTPRoute,
			Service: p.Spec.Service.Name, Port: p.Spec.Service.Port, Rules: routingRules(p.Spec),
		}
		return &slotRouter{slotOf: p.SlotOf, route: r, set: func(service string, slots map[string]string) {
			t.Slots = slots
			r.Set(service, t)
		}}, nil
	case tr.Istio != nil:
		r := istio.New(direct, istio.Options{})
		is := tr.Istio
		t := istio.Target{
			Namespace:      p.Rollout.Namespace,
			VirtualService: is.VirtualService.Name, Routes: is.VirtualService.Routes,
			DestinationRule: is.DestinationRule.Name, SubsetPrefix: is.DestinationRule.SubsetPrefix,
			Service: p.Spec.Service.Name, Port: p.Spec.Service.Port, Rules: routingRules(p.Spec),
			SubsetLabels: map[string]string{v1alpha1.LabelRollout: p.Rollout.Name},
		}
		return &slotRouter{slotOf: p.SlotOf, route: r, set: func(service string, slots map[string]string) {
			t.Slots = slots
			r.Set(service, t)
		}}, nil
	}
	return nil, errors.New("spec.trafficRouter: no router set")
}

func routingRules(s *v1alpha1.RolloutSpec) []spec.Rule {
	return s.Routing.Rules
}

// slotRouter is a weighted router (Gateway API, Istio) told, before each
// Route, which slot runs each version of the routing.
type slotRouter struct {
	slotOf func(string) (string, bool)
	set    func(service string, slots map[string]string)
	route  runner.Router
}

func (r *slotRouter) Route(ctx context.Context, service string, rt rollout.Routing) error {
	slots := map[string]string{}
	for v := range rt.Weights {
		if s, ok := r.slotOf(v); ok {
			slots[v] = s
		}
	}
	r.set(service, slots)
	return r.route.Route(ctx, service, rt)
}

// ServiceRouter is blue-green by a Service's selector: all traffic goes to
// the slot that runs the version with the weight, by setting two keys of
// spec.service's selector, switchyard.dev/rollout and switchyard.dev/slot.
// Those two keys are the controller's; every other key of the selector
// (app: web) stays the user's and is never changed or removed, so a
// GitOps tool that applies the Service without them and the controller do
// not fight over the same fields for long (the tool should ignore
// .spec.selector's switchyard.dev keys, as docs/kubernetes.md says). The
// selector is never empty: the two keys are always set. Every write is a
// merge patch conditional on the resourceVersion read just before.
//
// It never switches to pods that are not ready: the machine's health gate
// (all replicas of the new revision ready) comes before its switch.
type ServiceRouter struct {
	c       client.Client
	rollout types.NamespacedName
	service string
	slotOf  func(string) (string, bool)
}

var _ runner.Router = (*ServiceRouter)(nil)

// Route points the Service at the slot of the version with all the weight.
func (r *ServiceRouter) Route(ctx context.Context, _ string, rt rollout.Routing) error {
	target, w := rt.Stable, rt.Weights[rt.Stable]
	for _, v := range slices.Sorted(maps.Keys(rt.Weights)) {
		if rt.Weights[v] > w {
			target, w = v, rt.Weights[v]
		}
	}
	if w != 100 {
		return fmt.Errorf("trafficRouter.service switches all traffic at once; cannot split %s", rollout.FormatWeights(rt.Weights))
	}
	slot, ok := r.slotOf(target)
	if !ok {
		return fmt.Errorf("no slot of rollout %s runs revision %s", r.rollout, target)
	}
	return setSelector(ctx, r.c, types.NamespacedName{Namespace: r.rollout.Namespace, Name: r.service}, r.rollout.Name, slot)
}

// setSelector sets the two selector keys of the controller on a Service.
func setSelector(ctx context.Context, c client.Client, key types.NamespacedName, rolloutName, slot string) error {
	var svc corev1.Service
	if err := c.Get(ctx, key, &svc); err != nil {
		return fmt.Errorf("get service %s: %w", key, err)
	}
	want := slotLabels(rolloutName, slot)
	same := true
	for k, v := range want {
		if svc.Spec.Selector[k] != v {
			same = false
		}
	}
	if same {
		return nil
	}
	patch := client.MergeFromWithOptions(svc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if svc.Spec.Selector == nil {
		svc.Spec.Selector = map[string]string{}
	}
	maps.Copy(svc.Spec.Selector, want)
	if err := c.Patch(ctx, &svc, patch); err != nil {
		return fmt.Errorf("switch service %s to slot %s: %w", key, slot, err)
	}
	return nil
}
