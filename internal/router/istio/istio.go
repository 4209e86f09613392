// Package istio is the traffic router of Kubernetes mode with Istio
// (spec.trafficRouter.istio of a Rollout): it keeps two subsets in a
// DestinationRule, one per slot of the Rollout (SubsetPrefix+"a" and
// SubsetPrefix+"b", selecting the switchyard.dev/slot label), sets the
// weights of a VirtualService's HTTP routes between them, and keeps, ahead
// of those routes, the routes that send requests matching
// spec.routing.rules to the canary.
//
// What it owns, and nothing else:
//
//   - in the DestinationRule, the two subsets named SubsetPrefix+"a" and
//     SubsetPrefix+"b" (their labels; a trafficPolicy the user put on one
//     stays). Other subsets, the host and the traffic policy stay the
//     user's;
//   - in the VirtualService, in each owned HTTP route (Target.Routes, or
//     when unset every HTTP route with a destination to the service's
//     host), the destinations to the service's host: replaced by one per
//     slot that holds a version, with its weight. Matches, retries,
//     timeouts, other destinations stay the user's;
//   - the HTTP routes whose name starts with "switchyard-" (RoutePrefix):
//     the header routes it writes just before the first owned route.
//
// The objects are read and written as unstructured JSON, not through
// istio.io's typed clients: a field that this build's istio.io/api does
// not know (a newer Istio's) survives the router's writes. Every write is
// an update carrying the resourceVersion read: a change by anyone else in
// between is a 409 Conflict, after which Route reads again and re-applies.
// A Route that changes nothing writes nothing.
//
// The controller tells the Router, per service, where the objects are and
// which slot runs which version, before the first Route and whenever that
// changes:
//
//	// Reads should not come from an informer cache: a stale read only
//	// conflicts. An uncached client:
//	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
//	r := istio.New(c, istio.Options{})
//	r.Set(service, istio.Target{
//		Namespace: ro.Namespace,
//		VirtualService: is.VirtualService.Name, Routes: is.VirtualService.Routes,
//		DestinationRule: is.DestinationRule.Name, SubsetPrefix: is.DestinationRule.SubsetPrefix,
//		Service: ro.Spec.Service.Name, Port: ro.Spec.Service.Port,
//		Rules: ro.Spec.Routing.Rules,
//		Slots: map[string]string{"rev-7f9c": istio.SlotA, "rev-2b41": istio.SlotB},
//		SubsetLabels: map[string]string{"switchyard.dev/rollout": ro.Name},
//	})
//
// Istio's metrics tell versions apart by destination_version, which is the
// pod's service.istio.io/canonical-revision label (else
// app.kubernetes.io/version, else version): the slots' pod templates
// should carry the revision there.
package istio

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/kube"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// Slot names: a Rollout's two slots.
const (
	SlotA = "a"
	SlotB = "b"
)

// SlotLabel is the pod label a subset selects its slot by (api/v1alpha1's
// LabelSlot).
const SlotLabel = "switchyard.dev/slot"

// DefaultSubsetPrefix starts the subsets' names when Target.SubsetPrefix
// is empty.
const DefaultSubsetPrefix = "switchyard-"

// RoutePrefix starts the name of every HTTP route the router writes.
const RoutePrefix = "switchyard-"

// Attempts bounds how often one Route reads and writes an object when its
// writes meet conflicts.
const Attempts = kube.Attempts

// DefaultTimeout bounds one Route.
const DefaultTimeout = 15 * time.Second

// The kinds the router writes (networking.istio.io/v1).
var (
	VirtualServiceKind  = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
	DestinationRuleKind = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
)

// ErrUnknownService is returned (wrapped) for a service Set has not
// configured.
var ErrUnknownService = errors.New("not an Istio service")

// ErrMalformed is returned (wrapped) when an object, or the routing asked
// for, cannot be applied.
var ErrMalformed = errors.New("cannot route")

// Target is one service's Istio objects and what the controller knows
// about its slots.
type Target struct {
	// Namespace of the VirtualService and DestinationRule.
	Namespace       string
	VirtualService  string
	DestinationRule string
	// Routes are the names of the HTTP routes the router owns
	// (virtualService.routes); empty: every HTTP route with a destination
	// to the service's host.
	Routes []string
	// SubsetPrefix starts the subsets' names; empty: DefaultSubsetPrefix.
	SubsetPrefix string
	// Service is spec.service.name. A destination host is the service's
	// when it is Service, Service.Namespace, Service.Namespace.svc or
	// Service.Namespace.svc.<cluster domain>.
	Service string
	// Port is spec.service.port; 0 keeps the destination's port (or none).
	Port int32
	// Rules are spec.routing.rules (header and cookie rules).
	Rules []spec.Rule
	// Slots says which slot ("a" or "b") runs each version of
	// rollout.Routing. A slot no version is in gets no destination (its
	// subset is still kept); one whose version has weight 0 keeps its
	// destination with weight 0.
	Slots map[string]string
	// SubsetLabels are more labels each subset selects, ANDed with the
	// slot label (for instance switchyard.dev/rollout, when several
	// Rollouts' pods share one Service's host).
	SubsetLabels map[string]string
}

func (t Target) prefix() string {
	if t.SubsetPrefix == "" {
		return DefaultSubsetPrefix
	}
	return t.SubsetPrefix
}

// Options configure a Router.
type Options struct {
	// Timeout bounds one Route; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Router sets VirtualService weights and DestinationRule subsets through a
// controller-runtime client (any scheme: the objects are unstructured).
type Router struct {
	c       client.Client
	timeout time.Duration

	mu      sync.Mutex
	targets map[string]Target
}

var _ runner.Router = (*Router)(nil)

// New returns a Router that writes with c.
func New(c client.Client, opts Options) *Router {
	t := opts.Timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	return &Router{c: c, timeout: t, targets: map[string]Target{}}
}

// Set configures (or reconfigures) service: the controller calls it before
// the first Route and whenever a slot gets a new version or the Rollout's
// spec changes. The Target is copied.
func (r *Router) Set(service string, t Target) {
	t.Routes = slices.Clone(t.Routes)
	t.Rules = slices.Clone(t.Rules)
	t.Slots = maps.Clone(t.Slots)
	t.SubsetLabels = maps.Clone(t.SubsetLabels)
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

// Route implements runner.Router: the DestinationRule's subsets first (a
// VirtualService must never name a subset that does not exist yet), then
// the VirtualService's routes.
func (r *Router) Route(ctx context.Context, service string, rt rollout.Routing) error {
	r.mu.Lock()
	t, ok := r.targets[service]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("route %q: %w", service, ErrUnknownService)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	weights, err := slotWeights(t, rt)
	if err != nil {
		return fmt.Errorf("route %q: %w", service, err)
	}
	if err := r.update(ctx, service, DestinationRuleKind, t.DestinationRule, t, "spec.trafficRouter.istio.destinationRule.name",
		func(spec map[string]any) error { return ApplySubsets(spec, t) }); err != nil {
		return err
	}
	return r.update(ctx, service, VirtualServiceKind, t.VirtualService, t, "spec.trafficRouter.istio.virtualService.name",
		func(spec map[string]any) error { return applyRoutes(spec, t, rt, weights) })
}

// update reads the object, changes its spec with change, and writes it if
// it changed, conditional on the resourceVersion read; on a conflict it
// starts again.
func (r *Router) update(ctx context.Context, service string, gvk schema.GroupVersionKind, name string, t Target, field string, change func(map[string]any) error) error {
	key := types.NamespacedName{Namespace: t.Namespace, Name: name}
	what := fmt.Sprintf("route %q: %s %s", service, gvk.Kind, key)
	return kube.Update(ctx, what, func() error {
		cur := &unstructured.Unstructured{}
		cur.SetGroupVersionKind(gvk)
		if err := r.c.Get(ctx, key, cur); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("%s does not exist (%s): %w", what, field, err)
			}
			return fmt.Errorf("%s: read: %w", what, err)
		}
		next := cur.DeepCopy()
		sp, ok := next.Object["spec"].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: has no spec: %w", what, ErrMalformed)
		}
		if err := change(sp); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if equality.Semantic.DeepEqual(cur.Object, next.Object) {
			return nil
		}
		// Update carries cur's resourceVersion: the API server refuses it
		// with a conflict if anyone wrote since.
		if err := r.c.Update(ctx, next); err != nil {
			return kube.Write{Err: err}
		}
		return nil
	})
}

// ApplySubsets puts t's two subsets in a DestinationRule's spec, in place:
// each selects its slot label (and t.SubsetLabels); existing ones keep
// their place and any other field; missing ones are appended.
func ApplySubsets(sp map[string]any, t Target) error {
	subsets, err := list(sp, "subsets")
	if err != nil {
		return err
	}
	for _, slot := range []string{SlotA, SlotB} {
		name := t.prefix() + slot
		labels := map[string]any{SlotLabel: slot}
		for k, v := range t.SubsetLabels {
			labels[k] = v
		}
		i := slices.IndexFunc(subsets, func(s any) bool { m, _ := s.(map[string]any); return m["name"] == name })
		if i < 0 {
			subsets = append(subsets, map[string]any{"name": name, "labels": labels})
			continue
		}
		m := subsets[i].(map[string]any)
		m["labels"] = labels
	}
	sp["subsets"] = subsets
	return nil
}

// slotWeight is a slot that holds a version, and the version's weight.
type slotWeight struct {
	slot    string
	version string
	weight  int64
}

// slotWeights maps rt's weights onto t's slots, slot a first; Istio's
// destination weights are percentages, as the machine's are.
func slotWeights(t Target, rt rollout.Routing) ([]slotWeight, error) {
	bySlot := map[string]string{}
	for v, s := range t.Slots {
		if s != SlotA && s != SlotB {
			return nil, fmt.Errorf("version %q is in slot %q; slots are %q and %q: %w", v, s, SlotA, SlotB, ErrMalformed)
		}
		if o, dup := bySlot[s]; dup {
			return nil, fmt.Errorf("versions %q and %q are both in slot %q: %w", min(o, v), max(o, v), s, ErrMalformed)
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
	var out []slotWeight
	for _, s := range []string{SlotA, SlotB} {
		if v, ok := bySlot[s]; ok {
			out = append(out, slotWeight{slot: s, version: v, weight: int64(rt.Weights[v])})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no version is in a slot: %w", ErrMalformed)
	}
	return out, nil
}

// ourHost reports whether a destination host is the service's.
func ourHost(h string, t Target) bool {
	switch h {
	case t.Service, t.Service + "." + t.Namespace, t.Service + "." + t.Namespace + ".svc":
		return true
	}
	return strings.HasPrefix(h, t.Service+"."+t.Namespace+".svc.")
}

// applyRoutes puts rt in force in a VirtualService's spec, in place.
func applyRoutes(sp map[string]any, t Target, rt rollout.Routing, weights []slotWeight) error {
	routes, err := list(sp, "http")
	if err != nil {
		return err
	}
	var kept []any
	for _, r := range routes {
		m, ok := r.(map[string]any)
		if !ok {
			return fmt.Errorf("spec.http has an entry that is not an object: %w", ErrMalformed)
		}
		if n, _ := m["name"].(string); strings.HasPrefix(n, RoutePrefix) {
			continue // ours: regenerated below
		}
		kept = append(kept, m)
	}
	var owned []int
	if len(t.Routes) > 0 {
		for _, name := range t.Routes {
			i := slices.IndexFunc(kept, func(r any) bool { return r.(map[string]any)["name"] == name })
			if i < 0 {
				return fmt.Errorf("has no HTTP route named %q (spec.trafficRouter.istio.virtualService.routes): %w", name, ErrMalformed)
			}
			owned = append(owned, i)
		}
		slices.Sort(owned)
	}
	var host string
	var port any
	for i := range kept {
		m := kept[i].(map[string]any)
		dests, err := list(m, "route")
		if err != nil {
			return err
		}
		var out []any
		at := -1
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			dest, _ := dm["destination"].(map[string]any)
			h, _ := dest["host"].(string)
			if !ourHost(h, t) {
				out = append(out, d)
				continue
			}
			if at < 0 {
				at = len(out)
				if host == "" {
					host, port = h, dest["port"]
				}
			}
		}
		named := slices.Contains(owned, i)
		if at < 0 {
			if named {
				return fmt.Errorf("HTTP route %q has no destination to host %q: %w", m["name"], t.Service, ErrMalformed)
			}
			continue
		}
		if len(t.Routes) == 0 {
			owned = append(owned, i)
		} else if !named {
			continue // sends to the service, but the user kept it
		}
		var slotDests []any
		for _, w := range weights {
			slotDests = append(slotDests, destination(t, hostOf(dests, t), portOf(dests, t), w.slot, w.weight))
		}
		m["route"] = slices.Insert(out, at, slotDests...)
	}
	if len(owned) == 0 {
		return fmt.Errorf("no HTTP route has a destination to host %q: %w", t.Service, ErrMalformed)
	}
	header, err := headerRoutes(kept, owned, t, rt, host, port)
	if err != nil {
		return err
	}
	kept = slices.Insert(kept, owned[0], header...)
	sp["http"] = kept
	return nil
}

// hostOf and portOf are the host and port of the first destination to the
// service among dests.
func hostOf(dests []any, t Target) string {
	for _, d := range dests {
		dest, _ := d.(map[string]any)["destination"].(map[string]any)
		if h, _ := dest["host"].(string); ourHost(h, t) {
			return h
		}
	}
	return t.Service
}

func portOf(dests []any, t Target) any {
	for _, d := range dests {
		dest, _ := d.(map[string]any)["destination"].(map[string]any)
		if h, _ := dest["host"].(string); ourHost(h, t) {
			return dest["port"]
		}
	}
	return nil
}

// destination is the route destination to slot's subset. Weights are
// written as int64, the type JSON numbers decode to in unstructured
// objects, so that a second Route compares equal and writes nothing.
func destination(t Target, host string, port any, slot string, weight int64) map[string]any {
	dest := map[string]any{"host": host, "subset": t.prefix() + slot}
	if t.Port != 0 {
		dest["port"] = map[string]any{"number": int64(t.Port)}
	} else if port != nil {
		dest["port"] = runtime.DeepCopyJSONValue(port)
	}
	return map[string]any{"destination": dest, "weight": weight}
}

// headerRoutes are the routes of t.Rules for rt: for each rule in order,
// one route sending its matches (the value, and "always") to the rule's
// role and one sending "never" to the other role; each match is an owned
// route's match plus the header or cookie condition. Without a canary
// there are none.
func headerRoutes(routes []any, owned []int, t Target, rt rollout.Routing, host string, port any) ([]any, error) {
	if rt.Canary == "" || len(t.Rules) == 0 {
		return nil, nil
	}
	role := map[string]string{spec.RoleCanary: rt.Canary, spec.RoleStable: rt.Stable}
	other := map[string]string{spec.RoleCanary: spec.RoleStable, spec.RoleStable: spec.RoleCanary}
	var base []map[string]any
	for _, i := range owned {
		ms, err := list(routes[i].(map[string]any), "match")
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 {
			base = append(base, map[string]any{})
		}
		for _, m := range ms {
			mm, ok := m.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("a match is not an object: %w", ErrMalformed)
			}
			base = append(base, mm)
		}
	}
	var out []any
	for i, sr := range t.Rules {
		to := sr.To
		if to == "" {
			to = spec.RoleCanary
		}
		var m *spec.Match
		switch {
		case sr.Header != nil:
			m = sr.Header
		case sr.Cookie != nil:
			m = sr.Cookie
		default:
			return nil, fmt.Errorf("spec.routing.rules[%d] has neither header nor cookie: %w", i, ErrMalformed)
		}
		values := []string{"always"}
		if m.Value != "" && m.Value != "always" && m.Value != "never" {
			values = []string{m.Value, "always"}
		}
		for _, part := range []struct {
			role   string
			values []string
		}{{to, values}, {other[to], []string{"never"}}} {
			slot, ok := t.Slots[role[part.role]]
			if !ok {
				return nil, fmt.Errorf("%s version %q is in no slot: %w", part.role, role[part.role], ErrMalformed)
			}
			var matches []any
			for _, v := range part.values {
				for _, b := range base {
					matches = append(matches, withCondition(b, sr, v))
				}
			}
			out = append(out, map[string]any{
				"name":  fmt.Sprintf("%s%d-%s", RoutePrefix, i, part.role),
				"match": matches,
				"route": []any{destination(t, host, port, slot, 100)},
			})
		}
	}
	return out, nil
}

// withCondition returns a copy of match that also requires rule's header
// (lower case, as Istio wants header names) to be value exactly, or its
// cookie to be value.
func withCondition(match map[string]any, rule spec.Rule, value string) map[string]any {
	c := runtime.DeepCopyJSON(match)
	delete(c, "name") // match names would repeat; they are only for logs
	headers, _ := c["headers"].(map[string]any)
	if headers == nil {
		headers = map[string]any{}
	}
	if rule.Header != nil {
		headers[strings.ToLower(rule.Header.Name)] = map[string]any{"exact": value}
	} else {
		// Envoy matches the whole Cookie header against the regex.
		headers["cookie"] = map[string]any{"regex": "^(.*?;\\s*)?" + regexp.QuoteMeta(rule.Cookie.Name) + "=" + regexp.QuoteMeta(value) + "(;.*)?$"}
	}
	c["headers"] = headers
	return c
}

// list returns m[key] as a list (nil when unset).
func list(m map[string]any, key string) ([]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is not a list: %w", key, ErrMalformed)
	}
	return l, nil
}
