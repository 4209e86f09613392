package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

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

// newServerConfig reads a spec's server settings as spec.Default left them;
// Apply has refused a spec without them (checkDefaulted).
func newServerConfig(sp *spec.ServiceSpec) serverConfig {
	o := sp.Proxy
	return serverConfig{
		tls:               sp.TLS != nil,
		readHeaderTimeout: o.ReadHeaderTimeout.Duration,
		idleTimeout:       o.IdleTimeout.Duration,
		readTimeout:       o.ReadTimeout.Duration,
		maxHeaderBytes:    o.MaxHeaderBytes,
	}
}

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
