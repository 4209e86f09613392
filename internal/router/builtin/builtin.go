// Package builtin is the traffic router of standalone mode: Switchyard's own
// reverse proxy (internal/proxy). It is one implementation of the runner's
// Router and Targets; internal/router/nginx and the Kubernetes routers sit
// beside it. The spec selects it with spec.trafficRouter.proxy (the
// default).
package builtin

import (
	"context"

	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/runner"
)

// Router moves traffic by publishing a new routing table in the proxy; the
// change is atomic and in force for the next request when Route returns.
type Router struct{ p *proxy.Proxy }

var (
	_ runner.Router  = (*Router)(nil)
	_ runner.Targets = (*Router)(nil)
)

// New returns the router of the services p serves.
func New(p *proxy.Proxy) *Router { return &Router{p: p} }

// Route implements runner.Router.
func (r *Router) Route(ctx context.Context, service string, rt rollout.Routing) error {
	return r.p.Route(ctx, service, rt)
}

// SetVersion implements runner.Targets: the proxy registers the version's
// targets and health-checks them before any traffic goes there.
func (r *Router) SetVersion(service, version string, targets []string) error {
	return r.p.SetVersion(service, version, targets)
}

// RemoveVersion implements runner.Targets: the version's targets drain.
func (r *Router) RemoveVersion(service, version string) error {
	return r.p.RemoveVersion(service, version)
}
