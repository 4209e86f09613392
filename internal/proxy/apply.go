package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// plan is one service of an Apply, fully built before anything changes.
type plan struct {
	in     *spec.Service
	comp   *compiled
	parsed map[string][]spec.Target
	cert   *tls.Certificate
	lis    *listener
	newLis bool
}

// Apply reconciles the proxy to exactly these services. Everything is built
// first (rules compiled, targets parsed, certificates loaded, new addresses
// bound); on any error nothing changes and the old configuration keeps
// serving. A service keeps its current routing and the versions registered
// with SetVersion that the spec does not list. A listener whose address and
// server settings are unchanged is not rebound, so no connection drops.
func (p *Proxy) Apply(ctx context.Context, services []*spec.Service) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	plans := make([]*plan, 0, len(services))
	var errs []error
	names := make(map[string]bool)
	listens := make(map[string]string)
	for _, in := range services {
		if in == nil {
			continue
		}
		name := in.Metadata.Name
		pl := &plan{in: in, parsed: make(map[string][]spec.Target)}
		switch {
		case name == "":
			errs = append(errs, errors.New("a service has no metadata.name"))
			continue
		case names[name]:
			errs = append(errs, fmt.Errorf("service %q is listed twice", name))
			continue
		}
		names[name] = true
		sp := &in.Spec
		if sp.Listen == "" {
			errs = append(errs, fmt.Errorf("service %q: spec.listen is empty", name))
			continue
		}
		if other, ok := listens[sp.Listen]; ok {
			errs = append(errs, fmt.Errorf("service %q: spec.listen %q is already used by service %q", name, sp.Listen, other))
			continue
		}
		listens[sp.Listen] = name
		if err := checkDefaulted(&sp.Proxy); err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", name, err))
			continue
		}
		comp, err := compileSpec(name, sp, p.stickyKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", name, err))
			continue
		}
		pl.comp = comp
		for i, v := range sp.Versions {
			pt, err := health.ParseAddresses(v.Targets)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %q: spec.versions[%d] (%q): %w", name, i, v.Name, err))
			}
			if v.Name == "" {
				errs = append(errs, fmt.Errorf("service %q: spec.versions[%d].name is empty", name, i))
			}
			pl.parsed[v.Name] = pt
		}
		if sp.TLS != nil {
			c, err := tls.LoadX509KeyPair(sp.TLS.CertFile, sp.TLS.KeyFile)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %q: spec.tls: %w", name, err))
				continue
			}
			pl.cert = &c
		}
		plans = append(plans, pl)
	}
	if len(errs) > 0 {
		return fmt.Errorf("apply: %w", errors.Join(errs...))
	}

	// Bind what is new; on failure close only what this call bound.
	for _, pl := range plans {
		key := pl.in.Spec.Listen
		cfg := newServerConfig(&pl.in.Spec)
		old := p.listenerFor(key)
		if old != nil && old.cfg == cfg {
			pl.lis = old
			continue
		}
		var sock *socket
		if old != nil {
			sock = old.sock
		}
		l, err := p.newListener(ctx, key, cfg, sock)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", pl.in.Metadata.Name, err))
			continue
		}
		pl.lis, pl.newLis = l, true
	}
	if len(errs) > 0 {
		for _, pl := range plans {
			if pl.newLis && p.listenerFor(pl.in.Spec.Listen) == nil {
				pl.lis.sock.ln.Close()
			}
		}
		return fmt.Errorf("apply: %w", errors.Join(errs...))
	}

	// Commit: from here on nothing fails.
	keep := make(map[string]bool)
	usedListeners := make(map[*listener]bool)
	for _, pl := range plans {
		p.commitService(pl)
		keep[pl.in.Metadata.Name] = true
		usedListeners[pl.lis] = true
	}
	for name, s := range p.services {
		if !keep[name] {
			p.removeService(s)
		}
	}
	next := make(map[string]*listener, len(plans))
	for _, pl := range plans {
		next[pl.in.Spec.Listen] = pl.lis
	}
	usedSockets := make(map[*socket]bool)
	for l := range usedListeners {
		usedSockets[l.sock] = true
	}
	for _, pl := range plans {
		if pl.newLis {
			pl.lis.serve(p, p.listenerFor(pl.in.Spec.Listen) == nil)
		}
	}
	for _, l := range p.listeners {
		if !usedListeners[l] {
			p.retireListener(l, drainOf(l.svc.Load()), !usedSockets[l.sock])
		}
	}
	p.listeners = next
	// Idle keep-alives to targets no longer listed close now; busy ones
	// finish their request first (the transport only closes idle ones).
	p.fast.CloseIdleConnections() // and h1's
	p.h2c.CloseIdleConnections()
	return nil
}

// listenerFor finds the listener serving a listen address, by the address
// as configured or as bound (a spec may pin the port a ":0" listen got).
func (p *Proxy) listenerFor(key string) *listener {
	if l := p.listeners[key]; l != nil {
		return l
	}
	for _, l := range p.listeners {
		if l.sock.ln.Addr().String() == key {
			return l
		}
	}
	return nil
}

// drainOf is how long a retired listener's requests may take to finish: its
// service's drainTimeout. A listener that never served a service has none.
func drainOf(s *service) time.Duration {
	if s == nil {
		return 0
	}
	return s.spec.Proxy.DrainTimeout.Duration
}

// checkDefaulted refuses proxy settings that spec.Default would have set:
// the proxy reads the spec as defaulted and never re-defaults, and a zero
// here would be unsafe rather than a choice (no header timeout is the
// slowloris hole; no drain time cuts every request at a reload; no header
// limit means 4 KiB on the fast path but 1 MiB on net/http).
func checkDefaulted(o *spec.ProxyOptions) error {
	var errs []error
	need := func(ok bool, field string, v, def any) {
		if !ok {
			errs = append(errs, &spec.FieldError{
				Path: "spec.proxy." + field, Value: fmt.Sprint(v),
				Want: fmt.Sprintf("must be greater than 0 (spec.Default sets %v)", def),
			})
		}
	}
	need(o.ReadHeaderTimeout.Duration > 0, "readHeaderTimeout", o.ReadHeaderTimeout.Duration, spec.DefaultReadHeaderTimeout)
	need(o.IdleTimeout.Duration > 0, "idleTimeout", o.IdleTimeout.Duration, spec.DefaultIdleTimeout)
	need(o.DrainTimeout.Duration > 0, "drainTimeout", o.DrainTimeout.Duration, spec.DefaultDrainTimeout)
	need(o.MaxHeaderBytes > 0, "maxHeaderBytes", o.MaxHeaderBytes, spec.DefaultMaxHeaderBytes)
	if o.Retries == nil {
		errs = append(errs, &spec.FieldError{Path: "spec.proxy.retries", Want: fmt.Sprintf("is unset (spec.Default sets %d)", spec.DefaultRetries)})
	}
	return errors.Join(errs...)
}

func (p *Proxy) commitService(pl *plan) {
	name := pl.in.Metadata.Name
	s := p.services[name]
	if s == nil {
		s = &service{name: name, versions: make(map[string]*version)}
		if st := pl.in.Spec.Stable; st != "" {
			s.routing = rollout.Routing{Stable: st, Weights: rollout.Weights{st: 100}}
		}
		p.services[name] = s
		p.log.Info("service added", "service", name, "listen", pl.in.Spec.Listen)
	}
	s.spec = pl.in.Spec
	s.comp = pl.comp
	s.comp.loadToken = s.loadToken
	p.health.Configure(name, pl.comp.health)
	listed := make(map[string]bool)
	for _, v := range pl.in.Spec.Versions {
		listed[v.Name] = true
		if err := p.setVersionLocked(s, v.Name, v.Targets, pl.parsed[v.Name], true); err != nil {
			// Targets were parsed in the plan, so only a closed shared checker gets here.
			p.log.Error("version not registered", "service", name, "version", v.Name, "error", err)
			continue
		}
		s.versions[v.Name].fromSpec = true
	}
	for vn, v := range s.versions {
		routed := s.routing.Stable == vn || s.routing.Canary == vn || s.routing.Weights[vn] > 0
		if v.fromSpec && !listed[vn] && !routed {
			p.removeVersionLocked(s, v)
		}
	}
	if s.routing.Stable != "" && s.versions[s.routing.Stable] == nil {
		// The spec names a stable version that has no targets listed: serve 503
		// rather than refuse the whole configuration.
		s.routing = rollout.Routing{}
	}
	if t, err := buildTable(s.comp, s.versions, s.routing); err == nil {
		s.table.Store(t)
	} else {
		p.log.Error("routing kept from before reload", "service", name, "error", err)
		if old := s.table.Load(); old != nil {
			nt := s.comp.table()
			nt.stable, nt.canary, nt.canaryWeight, nt.picks, nt.versions = old.stable, old.canary, old.canaryWeight, old.picks, old.versions
			s.table.Store(nt)
		}
	}
	p.publishWeights(s)
	s.lis = pl.lis
	pl.lis.svc.Store(s)
	if pl.cert != nil {
		pl.lis.cert.Store(pl.cert)
	}
}

func (p *Proxy) removeService(s *service) {
	for _, v := range s.versions {
		s.routing = rollout.Routing{}
		p.removeVersionLocked(s, v)
	}
	p.health.RemoveService(s.name)
	delete(p.services, s.name)
	p.log.Info("service removed", "service", s.name)
}
