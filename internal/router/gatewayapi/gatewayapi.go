// Package gatewayapi is the traffic router of Kubernetes mode with the
// Gateway API (spec.trafficRouter.gatewayAPI of a Rollout): it sets the
// backendRef weights of an HTTPRoute between the Services of a Rollout's
// two slots ("<service>-a" and "<service>-b") and keeps, ahead of them, the
// rules that send requests matching spec.routing.rules to the canary.
//
// What it owns in the HTTPRoute, and nothing else:
//
//   - in every rule with a backendRef to the Service "<service>",
//     "<service>-a" or "<service>-b" (an owned rule), those backendRefs:
//     they are replaced by one backendRef per slot that holds a version,
//     with the version's weight. The rule's matches, filters, timeouts,
//     name and other backendRefs stay the user's;
//   - the rules whose name starts with "switchyard-" (RulePrefix): the
//     header rules it writes, just before the first owned rule. The user
//     must not name rules so.
//
// Every write is a JSON merge patch of spec.rules that carries the
// resourceVersion read (optimistic lock): a change by anyone else in
// between makes the API server answer 409 Conflict, and Route reads the
// object again and re-applies, so a concurrent change (a label, another
// rule) is never overwritten. A Route that changes nothing writes nothing.
//
// The controller owns the one Router of a process and tells it, per
// service, where the HTTPRoute is and which slot runs which version,
// before the runner's first Route and again whenever that changes (a new
// revision put in the idle slot, a Rollout's spec edited):
//
//	// Reads should not come from an informer cache: a stale read only
//	// conflicts. An uncached client:
//	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
//	r := gatewayapi.New(c, gatewayapi.Options{})
//	r.Set(service, gatewayapi.Target{
//		Namespace: ro.Namespace, HTTPRoute: ro.Spec.TrafficRouter.GatewayAPI.HTTPRoute,
//		Service: ro.Spec.Service.Name, Port: ro.Spec.Service.Port,
//		Rules: ro.Spec.Routing.Rules,
//		Slots: map[string]string{"rev-7f9c": gatewayapi.SlotA, "rev-2b41": gatewayapi.SlotB},
//	})
//	// then the runner calls r.Route(ctx, service, routing)
//
// A version of the routing with weight above 0 that Slots does not list
// is an error (ErrMalformed), never a silent drop of traffic.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/kube"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// Slot names: a Rollout's two slots, as in its Deployments "<rollout>-a"
// and "<rollout>-b" and its Services "<service>-a" and "<service>-b".
const (
	SlotA = "a"
	SlotB = "b"
)

// RulePrefix starts the name of every HTTPRoute rule the router writes
// (the header rules); rules named so are the router's.
const RulePrefix = "switchyard-"

// Attempts bounds how often one Route reads and writes the HTTPRoute when
// its writes meet conflicts.
const Attempts = kube.Attempts

// DefaultTimeout bounds one Route (all its reads and writes).
const DefaultTimeout = 15 * time.Second

// ErrUnknownService is returned (wrapped) by Route for a service Set has
// not configured.
var ErrUnknownService = errors.New("not a Gateway API service")

// ErrMalformed is returned (wrapped) when the HTTPRoute, or the routing
// asked for, cannot be applied: no rule sends to the service, a weight out
// of range, a version without a slot.
var ErrMalformed = errors.New("cannot route")

// Target is one service's HTTPRoute and what the controller knows about
// its slots.
type Target struct {
	// Namespace and HTTPRoute name the HTTPRoute.
	Namespace string
	HTTPRoute string
	// Service is spec.service.name: backendRefs to it or to its slots'
	// Services mark the rules the router owns.
	Service string
	// Port is the slots' Services' port in the backendRefs (spec.service.port);
	// 0 keeps the port of the backendRef found in the rule.
	Port int32
	// Rules are spec.routing.rules (header rules only: an HTTPRoute
	// cannot match a cookie's value).
	Rules []spec.Rule
	// Slots says which slot ("a" or "b") runs each version: the versions
	// of rollout.Routing. A slot no version is in gets no backendRef (its
	// Service may not exist); a slot whose version has weight 0 keeps its
	// backendRef with weight 0.
	Slots map[string]string
}

// Options configure a Router.
type Options struct {
	// Timeout bounds one Route; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Router sets HTTPRoute weights through a controller-runtime client.
type Router struct {
	c       client.Client
	timeout time.Duration

	mu      sync.Mutex
	targets map[string]Target
}

var _ runner.Router = (*Router)(nil)

// New returns a Router that reads and writes HTTPRoutes with c (whose
// scheme must include gateway.networking.k8s.io/v1).
func New(c client.Client, opts Options) *Router {
	t := opts.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return &Router{c: c, timeout: t, targets: map[string]Target{}}
}

// Set configures (or reconfigures) service: the controller calls it before
// the first Route, and again whenever a slot gets a new version or the
// Rollout's spec changes. The Target is copied.
func (r *Router) Set(service string, t Target) {
	t.Rules = slices.Clone(t.Rules)
	slots := make(map[string]string, len(t.Slots))
	for v, s := range t.Slots {
		slots[v] = s
	}
	t.Slots = slots
	r.mu.Lock()
	r.targets[service] = t
	r.mu.Unlock()
}

// Remove forgets service.
func (r *Router) Remove(service string) {
	r.mu.Lock()
	delete(r.targets, service)
	r.mu.Unlock()
}

// Route implements runner.Router: it puts rt in force in the service's
// HTTPRoute, re-reading and re-applying on a conflict.
func (r *Router) Route(ctx context.Context, service string, rt rollout.Routing) error {
	r.mu.Lock()
	t, ok := r.targets[service]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("route %q: %w", service, ErrUnknownService)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key := types.NamespacedName{Namespace: t.Namespace, Name: t.HTTPRoute}
	what := fmt.Sprintf("route %q: HTTPRoute %s", service, key)
	return kube.Update(ctx, what, func() error {
		var cur gatewayv1.HTTPRoute
		if err := r.c.Get(ctx, key, &cur); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%s does not exist (spec.trafficRouter.gatewayAPI.httpRoute): %w", what, err)
			}
			return fmt.Errorf("%s: read: %w", what, err)
		}
		rules, err := Apply(cur.Spec.Rules, t, rt)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if equality.Semantic.DeepEqual(rules, cur.Spec.Rules) {
			return nil
		}
		next := cur.DeepCopy()
		next.Spec.Rules = rules
		if err := r.c.Patch(ctx, next, client.MergeFromWithOptions(&cur, client.MergeFromWithOptimisticLock{})); err != nil {
			return kube.Write{Err: err}
		}
		return nil
	})
}

// Apply returns rules with rt in force for t: the owned rules' backendRefs
// replaced by the slots' and the header rules regenerated. It does not
// change rules.
func Apply(rules []gatewayv1.HTTPRouteRule, t Target, rt rollout.Routing) ([]gatewayv1.HTTPRouteRule, error) {
	weights, err := slotWeights(t, rt)
	if err != nil {
		return nil, err
	}
	var out []gatewayv1.HTTPRouteRule
	for _, rule := range rules {
		if rule.Name != nil && strings.HasPrefix(string(*rule.Name), RulePrefix) {
			continue // ours: regenerated below
		}
		out = append(out, *rule.DeepCopy())
	}
	first := -1
	var owned []int
	for i := range out {
		refs, port, ok := replaceRefs(out[i].BackendRefs, t, weights)
		if !ok {
			continue
		}
		if t.Port == 0 && port == nil {
			return nil, fmt.Errorf("spec.rules[%d]: the backendRef to Service %q has no port, and spec.service.port is unset: %w", i, t.Service, ErrMalformed)
		}
		if first < 0 {
			first = i
		}
		owned = append(owned, i)
		out[i].BackendRefs = refs
	}
	if first < 0 {
		return nil, fmt.Errorf("no rule has a backendRef to Service %q, %q or %q: %w", t.Service, t.Service+"-"+SlotA, t.Service+"-"+SlotB, ErrMalformed)
	}
	headerRules, err := headerRules(out, owned, t, rt)
	if err != nil {
		return nil, err
	}
	if len(headerRules) > 0 {
		out = slices.Insert(out, first, headerRules...)
	}
	return out, nil
}

// slotWeight is a slot that holds a version, and the version's weight.
type slotWeight struct {
	slot    string
	version string
	weight  int32
}

// slotWeights maps rt's weights onto t's slots, slot a first. Percentages
// are the backendRef weights as they are (the Gateway API splits by the
// ratio of weights, and the machine's add up to 100).
func slotWeights(t Target, rt rollout.Routing) ([]slotWeight, error) {
	bySlot := map[string]string{}
	for v, s := range t.Slots {
		if s != SlotA && s != SlotB {
			return nil, fmt.Errorf("version %q is in slot %q; slots are %q and %q: %w", v, s, SlotA, SlotB, ErrMalformed)
		}
		if o, dup := bySlot[s]; dup {
			a, b := min(o, v), max(o, v)
			return nil, fmt.Errorf("versions %q and %q are both in slot %q: %w", a, b, s, ErrMalformed)
		}
		bySlot[s] = v
	}
	for v, w := range rt.Weights {
		if w < 0 || w > 100 {
			return nil, fmt.Errorf("version %q has weight %d; must be 0-100: %w", v, w, ErrMalformed)
		}
		if _, ok := t.Slots[v]; !ok && w > 0 {
			return nil, fmt.Errorf("version %q has weight %d but is in no slot: %w", v, w, ErrMalformed)
		}
	}
	if _, ok := t.Slots[rt.Stable]; !ok && rt.Stable != "" {
		return nil, fmt.Errorf("stable version %q is in no slot: %w", rt.Stable, ErrMalformed)
	}
	var out []slotWeight
	for _, s := range []string{SlotA, SlotB} {
		if v, ok := bySlot[s]; ok {
			out = append(out, slotWeight{slot: s, version: v, weight: int32(rt.Weights[v])})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no version is in a slot: %w", ErrMalformed)
	}
	return out, nil
}

// ours reports whether ref is a backendRef to the service or one of its
// slots' Services in the route's own namespace.
func ours(ref gatewayv1.HTTPBackendRef, t Target) bool {
	b := ref.BackendObjectReference
	if b.Group != nil && *b.Group != "" {
		return false
	}
	if b.Kind != nil && *b.Kind != "Service" {
		return false
	}
	if b.Namespace != nil && string(*b.Namespace) != t.Namespace {
		return false
	}
	switch string(b.Name) {
	case t.Service, t.Service + "-" + SlotA, t.Service + "-" + SlotB:
		return true
	}
	return false
}

// replaceRefs returns refs with the service's backendRefs replaced, at the
// place of the first of them, by one per slot in weights; ok is false when
// refs has none. port is the first one's port.
func replaceRefs(refs []gatewayv1.HTTPBackendRef, t Target, weights []slotWeight) (out []gatewayv1.HTTPBackendRef, port *gatewayv1.PortNumber, ok bool) {
	at := -1
	var tmpl gatewayv1.HTTPBackendRef
	for _, ref := range refs {
		if !ours(ref, t) {
			out = append(out, ref)
			continue
		}
		if at < 0 {
			at, tmpl, port = len(out), ref, ref.Port
		}
	}
	if at < 0 {
		return refs, nil, false
	}
	slotRefs := make([]gatewayv1.HTTPBackendRef, 0, len(weights))
	for _, w := range weights {
		slotRefs = append(slotRefs, slotRef(t, w.slot, w.weight, port, tmpl.Filters))
	}
	return slices.Insert(out, at, slotRefs...), port, true
}

// slotRef is the backendRef to slot's Service. The API server defaults
// group and kind; they are written out so that what is read back compares
// equal to what is written and a second Route writes nothing.
func slotRef(t Target, slot string, weight int32, port *gatewayv1.PortNumber, filters []gatewayv1.HTTPRouteFilter) gatewayv1.HTTPBackendRef {
	group := gatewayv1.Group("")
	kind := gatewayv1.Kind("Service")
	p := port
	if t.Port != 0 {
		pn := gatewayv1.PortNumber(t.Port)
		p = &pn
	} else if p != nil {
		pn := *p
		p = &pn
	}
	return gatewayv1.HTTPBackendRef{
		BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{
				Group: &group, Kind: &kind,
				Name: gatewayv1.ObjectName(t.Service + "-" + slot),
				Port: p,
			},
			Weight: &weight,
		},
		Filters: slices.Clone(filters),
	}
}

// headerRules are the rules of t.Rules for rt: for each spec rule in
// order, one rule sending its matches to the rule's role (the value, and
// "always") and one sending "never" to the other role, each match being
// an owned rule's match plus the header (so a header rule applies to the
// same hostnames, paths and methods as the weighted rule). Without a
// canary there are none: every request goes to stable anyway.
func headerRules(rules []gatewayv1.HTTPRouteRule, owned []int, t Target, rt rollout.Routing) ([]gatewayv1.HTTPRouteRule, error) {
	if rt.Canary == "" || len(t.Rules) == 0 {
		return nil, nil
	}
	role := map[string]string{spec.RoleCanary: rt.Canary, spec.RoleStable: rt.Stable}
	other := map[string]string{spec.RoleCanary: spec.RoleStable, spec.RoleStable: spec.RoleCanary}
	var base []gatewayv1.HTTPRouteMatch
	for _, i := range owned {
		if len(rules[i].Matches) == 0 {
			// Unset matches mean a PathPrefix "/" match (the API
			// server's default; it is stored so once read back).
			base = append(base, gatewayv1.HTTPRouteMatch{})
		}
		base = append(base, rules[i].Matches...)
	}
	var out []gatewayv1.HTTPRouteRule
	for i, sr := range t.Rules {
		if sr.Header == nil {
			return nil, fmt.Errorf("spec.routing.rules[%d]: an HTTPRoute cannot match a cookie; use a header rule: %w", i, ErrMalformed)
		}
		to := sr.To
		if to == "" {
			to = spec.RoleCanary
		}
		values := []string{"always"}
		if sr.Header.Value != "" && sr.Header.Value != "always" && sr.Header.Value != "never" {
			values = []string{sr.Header.Value, "always"}
		}
		for _, part := range []struct {
			role   string
			values []string
		}{{to, values}, {other[to], []string{"never"}}} {
			version := role[part.role]
			slot, ok := t.Slots[version]
			if !ok {
				return nil, fmt.Errorf("%s version %q is in no slot: %w", part.role, version, ErrMalformed)
			}
			var matches []gatewayv1.HTTPRouteMatch
			for _, v := range part.values {
				for _, m := range base {
					matches = append(matches, withHeader(m, sr.Header.Name, v))
				}
			}
			name := gatewayv1.SectionName(fmt.Sprintf("%s%d-%s", RulePrefix, i, part.role))
			out = append(out, gatewayv1.HTTPRouteRule{
				Name:        &name,
				Matches:     matches,
				BackendRefs: []gatewayv1.HTTPBackendRef{slotRef(t, slot, 1, portOf(rules, owned, t), nil)},
			})
		}
	}
	return out, nil
}

// portOf is the port of the first owned rule's slot backendRef.
func portOf(rules []gatewayv1.HTTPRouteRule, owned []int, t Target) *gatewayv1.PortNumber {
	for _, ref := range rules[owned[0]].BackendRefs {
		if ours(ref, t) {
			return ref.Port
		}
	}
	return nil
}

// withHeader returns a copy of m that also requires header name to be
// value exactly (replacing a match of the same header, whose value would
// contradict it).
func withHeader(m gatewayv1.HTTPRouteMatch, name, value string) gatewayv1.HTTPRouteMatch {
	c := *m.DeepCopy()
	exact := gatewayv1.HeaderMatchExact
	c.Headers = slices.DeleteFunc(c.Headers, func(h gatewayv1.HTTPHeaderMatch) bool {
		return strings.EqualFold(string(h.Name), name)
	})
	c.Headers = append(c.Headers, gatewayv1.HTTPHeaderMatch{Type: &exact, Name: gatewayv1.HTTPHeaderName(name), Value: value})
	return c
}
