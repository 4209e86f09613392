package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// serverConfig is what an http.Server needs at construction; a listener is
// rebound only when it changes.
type serverConfig struct {
	tls               bool
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	readTimeout       time.Duration
	maxHeaderBytes    int
}

func newServerConfig(sp *spec.ServiceSpec) serverConfig {
	o := sp.Proxy
	c := serverConfig{
		tls:               sp.TLS != nil,
		readHeaderTimeout: o.ReadHeaderTimeout.Duration,
		idleTimeout:       o.IdleTimeout.Duration,
		readTimeout:       o.ReadTimeout.Duration,
		maxHeaderBytes:    o.MaxHeaderBytes,
	}
	// Never run without a header timeout, even if defaulting was skipped:
	// that is the slowloris hole.
	if c.readHeaderTimeout <= 0 {
		c.readHeaderTimeout = spec.DefaultReadHeaderTimeout
	}
	if c.idleTimeout <= 0 {
		c.idleTimeout = spec.DefaultIdleTimeout
	}
	if c.maxHeaderBytes <= 0 {
		c.maxHeaderBytes = spec.DefaultMaxHeaderBytes
	}
	return c
}

// socket is one bound address. Its accept loop hands each connection to the
// current server's handoff, so a reload that changes server settings swaps
// the http.Server without closing the socket: no connection is refused.
type socket struct {
	ln  net.Listener
	cur atomic.Pointer[handoff]
}

func (s *socket) acceptLoop(log func(error)) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				if h := s.cur.Load(); h != nil {
					h.Close()
				}
				return
			}
			log(err) // e.g. EMFILE: keep accepting once descriptors free up
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for {
			h := s.cur.Load()
			select {
			case h.conns <- c:
			case <-h.done:
				if s.cur.Load() == h { // closed for good, not swapped
					c.Close()
					break
				}
				continue
			}
			break
		}
	}
}

// handoff is the net.Listener one http.Server serves: connections come from
// the socket's accept loop.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener; it stops this server, not the socket.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr implements net.Listener.
func (h *handoff) Addr() net.Addr { return h.addr }

// listener is the servers of one socket: an http.Server and, on a plain
// listener, a fasthttp.Server in front of it (see front.go). The service it
// serves and its certificate are swapped atomically on reload.
type listener struct {
	p    *Proxy
	key  string
	cfg  serverConfig
	sock *socket
	ho   *handoff // where the socket hands connections
	nho  *handoff // what srv serves: ho on TLS, else the connections classify and handOff pass on
	fho  *handoff // what fsrv serves (plain only)
	srv  *http.Server
	fsrv *fasthttp.Server // nil on TLS
	// fconns are the client connections of the fast path, closed by a
	// forced shutdown (fasthttp.Server cannot close them itself).
	fconns connSet
	// handoffs and h2 count connections passed from the fast path to
	// net/http: requests it does not serve, and the HTTP/2 preface.
	handoffs, h2 atomic.Int64
	svc          atomic.Pointer[service]
	cert         atomic.Pointer[tls.Certificate]
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := l.svc.Load()
	if s == nil {
		http.Error(w, "no service", http.StatusServiceUnavailable)
		return
	}
	l.p.serveHTTP(s, w, r)
}

// newListener builds a server for key, on sock when given (a reload that
// changed server settings) or on a newly bound socket.
func (p *Proxy) newListener(ctx context.Context, key string, cfg serverConfig, sock *socket) (*listener, error) {
	if sock == nil {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", key)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", key, err)
		}
		sock = &socket{ln: ln}
	}
	l := &listener{p: p, key: key, cfg: cfg, sock: sock, ho: newHandoff(sock.ln.Addr())}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	if cfg.tls {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true) // h2c with prior knowledge, e.g. gRPC
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		IdleTimeout:       cfg.idleTimeout,
		MaxHeaderBytes:    cfg.maxHeaderBytes,
		Protocols:         protos,
		ConnContext:       withConnSlot,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	l.nho = l.ho
	if !cfg.tls {
		l.nho, l.fho = newHandoff(l.ho.addr), newHandoff(l.ho.addr)
		l.fsrv = p.newFastServer(l)
	}
	if cfg.tls {
		l.srv.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				if c := l.cert.Load(); c != nil {
					return c, nil
				}
				return nil, errors.New("no certificate loaded")
			},
		}
	}
	return l, nil
}

// serve starts l's server and makes it the socket's receiver; a fresh
// socket also gets its accept loop.
func (l *listener) serve(p *Proxy, fresh bool) {
	p.wg.Go(func() {
		var err error
		if l.cfg.tls {
			err = l.srv.ServeTLS(l.ho, "", "")
		} else {
			err = l.srv.Serve(l.nho)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			p.log.Error("listener stopped", "listen", l.key, "error", err)
		}
	})
	if l.fsrv != nil {
		p.wg.Go(func() {
			if err := l.fsrv.Serve(l.fho); err != nil && !errors.Is(err, net.ErrClosed) {
				p.log.Error("fast path stopped", "listen", l.key, "error", err)
			}
		})
		p.wg.Go(func() { l.dispatch(p) })
	}
	old := l.sock.cur.Swap(l.ho)
	if old != nil {
		old.Close()
	}
	if fresh {
		p.wg.Go(func() {
			l.sock.acceptLoop(func(err error) { p.log.Error("accept failed", "listen", l.key, "error", err) })
		})
	}
}

// retireListener stops l's server and lets its requests finish within
// drain, in the background; closeSocket also unbinds the address.
func (p *Proxy) retireListener(l *listener, drain time.Duration, closeSocket bool) {
	if closeSocket {
		l.sock.ln.Close()
	}
	l.ho.Close()
	p.wg.Go(func() {
		ctx, cancel := context.WithTimeout(p.root, drain)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			l.srv.Close()
		}
	})
	if l.fsrv != nil {
		p.wg.Go(func() {
			ctx, cancel := context.WithTimeout(p.root, drain)
			defer cancel()
			if err := l.fsrv.ShutdownWithContext(ctx); err != nil {
				l.fconns.closeAll()
			}
		})
	}
}

// plan is one service of an Apply, fully built before anything changes.
type plan struct {
	in     *spec.Service
	comp   *compiled
	parsed map[string][]parsedTarget
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
		pl := &plan{in: in, parsed: make(map[string][]parsedTarget)}
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
		comp, err := compileSpec(name, sp, p.stickyKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", name, err))
			continue
		}
		pl.comp = comp
		for i, v := range sp.Versions {
			pt, err := parseTargets(v.Targets)
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

func drainOf(s *service) time.Duration {
	if s != nil && s.spec.Proxy.DrainTimeout.Duration > 0 {
		return s.spec.Proxy.DrainTimeout.Duration
	}
	return spec.DefaultDrainTimeout
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
