package v1alpha1

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/internal/spec"
)

// Revisions are what the controller found in the cluster for a Rollout:
// each revision it runs as a spec.Version (the revision's name; the
// host:port of its ready pods, possibly none yet) and the stable one.
type Revisions struct {
	// Stable names the revision that takes traffic when no rollout runs.
	Stable string
	// Versions are the revisions, the stable one included.
	Versions []spec.Version
}

// Service builds the spec.Service that the rollout engine compiles for
// this Rollout (name: the Rollout's; versions and stable: revs; strategy,
// analysis, hooks, webhooks, routing, notifications and progressDeadline:
// the Rollout's, deep-copied), defaulted and validated by internal/spec,
// and checks the Rollout's own fields. The Rollout is not modified.
//
// Every problem is reported at once, as an *InvalidError whose field
// paths are the Rollout's (spec.analysis.interval, spec.trafficRouter),
// each with the value and what would be valid, as for a service file.
// The fields the cluster provides (versions, stable, listen, the service
// file's trafficRouter) are not reported: the controller fills them.
func (r *Rollout) Service(revs Revisions) (*spec.Service, error) {
	rs := r.Spec.DeepCopy()
	svc := &spec.Service{
		APIVersion: spec.APIVersion,
		Kind:       spec.KindService,
		Metadata:   spec.Metadata{Name: r.Name},
		Spec: spec.ServiceSpec{
			Versions:         slices.Clone(revs.Versions),
			Stable:           revs.Stable,
			Routing:          rs.Routing,
			Strategy:         rs.Strategy,
			Analysis:         rs.Analysis,
			Hooks:            rs.Hooks,
			Webhooks:         rs.Webhooks,
			Notifications:    rs.Notifications,
			ProgressDeadline: rs.ProgressDeadline,
		},
		Cluster: true,
	}
	svc.Default()
	var errs []*spec.FieldError
	for _, fe := range spec.FieldErrors(svc.Validate()) {
		c := *fe
		c.File, c.Line, c.Column, c.Service = "", 0, 0, ""
		errs = append(errs, &c)
	}
	v := &rolloutValidator{r: r, strategy: svc.Spec.Strategy}
	v.check()
	errs = append(errs, v.errs...)
	if len(errs) > 0 {
		return nil, &InvalidError{Namespace: r.Namespace, Name: r.Name, Errs: errs}
	}
	return svc, nil
}

// Validate checks the Rollout on its own, before any revision exists:
// Service without the cluster's revisions.
func (r *Rollout) Validate() error {
	_, err := r.Service(Revisions{})
	return err
}

// InvalidError lists every problem of a Rollout. It unwraps to the
// *spec.FieldError of each, so spec.FieldErrors and errors.As work on it.
type InvalidError struct {
	Namespace, Name string
	Errs            []*spec.FieldError
}

// Error reads like
// `rollout "shop/web": spec.analysis.interval is 1ns; must be 100ms to 24h`,
// one line per problem.
func (e *InvalidError) Error() string {
	id := e.Name
	if e.Namespace != "" {
		id = e.Namespace + "/" + e.Name
	}
	lines := make([]string, len(e.Errs))
	for i, fe := range e.Errs {
		lines[i] = fmt.Sprintf("rollout %q: %s", id, fe.Error())
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the field errors.
func (e *InvalidError) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, fe := range e.Errs {
		out[i] = fe
	}
	return out
}

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const (
	labelWant     = "must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
	subdomainWant = "must be a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', like \"web\" or \"web.v1\""
)

// rolloutValidator checks the fields a service file does not have.
type rolloutValidator struct {
	r *Rollout
	// strategy is the defaulted strategy (blue-green when none is set).
	strategy spec.Strategy
	errs     []*spec.FieldError
}

func (v *rolloutValidator) add(path, value, want string) {
	v.errs = append(v.errs, &spec.FieldError{Path: path, Value: value, Want: want})
}

func (v *rolloutValidator) name(path, value string, subdomain bool) {
	switch {
	case value == "":
		v.add(path, "", "is required")
	case subdomain && (len(value) > 253 || !dns1123Subdomain.MatchString(value)):
		v.add(path, strconv.Quote(value), subdomainWant)
	case !subdomain && (len(value) > 63 || !dns1123Label.MatchString(value)):
		v.add(path, strconv.Quote(value), labelWant)
	}
}

// inRange checks a number of the Rollout's own against its range tag.
func (v *rolloutValidator) inRange(path string, t reflect.Type, field string, x int64) {
	f, ok := t.FieldByName(field)
	if !ok {
		panic("v1alpha1: no field " + field)
	}
	r, ok := spec.FieldRange(f)
	if !ok {
		panic("v1alpha1: no range tag on " + field)
	}
	if (float64(x) < r.Min || float64(x) > r.Max) && !(r.Unset && x == 0) {
		v.add(path, strconv.FormatInt(x, 10), "must be "+r.String())
	}
}

func (v *rolloutValidator) check() {
	sp := &v.r.Spec
	switch {
	case sp.Template == nil && sp.WorkloadRef == nil:
		v.add("spec", "", "needs exactly one of template (a pod template) or workloadRef (an existing Deployment)")
	case sp.Template != nil && sp.WorkloadRef != nil:
		v.add("spec.workloadRef", "", "must not be set together with template; choose one")
	case sp.WorkloadRef != nil:
		v.name("spec.workloadRef.name", sp.WorkloadRef.Name, true)
		switch sd := sp.WorkloadRef.ScaleDown; sd {
		case "", ScaleDownNever, ScaleDownOnSuccess:
		default:
			v.add("spec.workloadRef.scaleDown", strconv.Quote(sd), `must be "never" (the default: the Deployment keeps its replicas) or "onsuccess" (scaled to 0 once the Rollout serves)`)
		}
		if sp.Replicas != nil {
			v.add("spec.replicas", strconv.Itoa(int(*sp.Replicas)), "is only used with template; with workloadRef the Deployment's replicas are used")
		}
	}
	if sp.Replicas != nil {
		v.inRange("spec.replicas", reflect.TypeFor[RolloutSpec](), "Replicas", int64(*sp.Replicas))
	}
	v.name("spec.service.name", sp.Service.Name, false)
	v.inRange("spec.service.port", reflect.TypeFor[ServiceRef](), "Port", int64(sp.Service.Port))
	v.trafficRouter()
}

func (v *rolloutValidator) trafficRouter() {
	tr := &v.r.Spec.TrafficRouter
	const p = "spec.trafficRouter"
	var set []string
	if tr.Service != nil {
		set = append(set, "service")
	}
	if tr.GatewayAPI != nil {
		set = append(set, "gatewayAPI")
	}
	if tr.Istio != nil {
		set = append(set, "istio")
	}
	switch len(set) {
	case 0:
		v.add(p, "", "must set one router: service: {} (blue-green by the Service's selector), gatewayAPI: {httpRoute: ...} or istio: {virtualService: ..., destinationRule: ...}")
		return
	case 1:
	default:
		v.add(p, "", "must set only one router; found "+strings.Join(set, " and "))
		return
	}
	rt := &v.r.Spec.Routing
	if rt.StickySessions != nil {
		v.add("spec.routing.stickySessions", "", "is kept by the built-in proxy only; trafficRouter."+set[0]+" has no sticky sessions (controller in progress)")
	}
	if len(rt.TrustedSources) > 0 {
		v.add("spec.routing.trustedSources", "", "is enforced by the built-in proxy only; in a cluster, strip the header from untrusted clients at the gateway")
	}
	switch {
	case tr.Service != nil:
		if v.strategy.Canary != nil {
			v.add("spec.strategy.canary", "", "needs weights, and trafficRouter.service switches all traffic at once; use strategy.blueGreen, or trafficRouter gatewayAPI or istio")
		}
		for i := range rt.Rules {
			v.add(fmt.Sprintf("spec.routing.rules[%d]", i), "", "needs trafficRouter gatewayAPI or istio: a Service's selector cannot match headers or cookies")
		}
		if ps := tr.Service.PreviewService; ps != "" {
			v.name(p+".service.previewService", ps, false)
			if ps == v.r.Spec.Service.Name {
				v.add(p+".service.previewService", strconv.Quote(ps), "must differ from spec.service.name")
			}
		}
	case tr.GatewayAPI != nil:
		v.name(p+".gatewayAPI.httpRoute", tr.GatewayAPI.HTTPRoute, true)
		for i, rule := range rt.Rules {
			if rule.Cookie != nil {
				v.add(fmt.Sprintf("spec.routing.rules[%d].cookie", i), "", "cannot be matched by an HTTPRoute; use a header rule, or trafficRouter.istio")
			}
		}
	case tr.Istio != nil:
		is := tr.Istio
		v.name(p+".istio.virtualService.name", is.VirtualService.Name, true)
		v.name(p+".istio.destinationRule.name", is.DestinationRule.Name, true)
		seen := map[string]int{}
		for i, r := range is.VirtualService.Routes {
			rp := fmt.Sprintf("%s.istio.virtualService.routes[%d]", p, i)
			if r == "" {
				v.add(rp, `""`, "must name an HTTP route of the VirtualService")
			} else if j, dup := seen[r]; dup {
				v.add(rp, strconv.Quote(r), fmt.Sprintf("must be unique; routes[%d] has the same name", j))
			}
			seen[r] = i
		}
	}
}
