package proxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// StatusClientClosedRequest is recorded (nginx's 499) when the client went
// away before the target answered. It is not an error of the version.
const StatusClientClosedRequest = 499

// reqState travels with one proxied request through ReverseProxy (in the
// outgoing request's context) so Rewrite, the retrying RoundTripper,
// ModifyResponse and ErrorHandler share it. Pooled.
type reqState struct {
	proxied
	inCtx context.Context
	// body is the request body being forwarded (nil without one); a read
	// error in it makes the outcome the client's (outcome.go).
	body *clientBody
	// clientFault is set once the outcome is the client's.
	clientFault bool

	hv httpView // the request as routing sees it, while routing
}

// httpView is a net/http request as routing sees it.
type httpView struct {
	w http.ResponseWriter
	r *http.Request
}

func (v *httpView) headerValue(name string) (string, bool) {
	return headerView(v.r.Header).headerValue(name)
}

func (v *httpView) cookieValue(name string) (string, bool) { return cookieValue(v.r.Header, name) }

func (v *httpView) trusted(prefixes []netip.Prefix) bool {
	return trustedPeer(prefixes, v.r.RemoteAddr)
}

func (v *httpView) setCookie(c *http.Cookie) {
	c.Secure = v.r.TLS != nil
	http.SetCookie(v.w, c)
}

// stateKey holds a *reqState in a request's context, or a *connSlot in an
// HTTP/1 connection's context.
type stateKey struct{}

// connSlot carries the state of the one request an HTTP/1 connection
// serves at a time, so the hot path need not derive a context and copy the
// request to attach it. HTTP/2 requests share a connection concurrently and
// get their own context value instead.
type connSlot struct {
	st *reqState
	// checked is set while the connection's next request is one the fast
	// path handed off, whose framing framingFault checked already.
	checked bool
}

func stateOf(ctx context.Context) *reqState {
	switch v := ctx.Value(stateKey{}).(type) {
	case *reqState:
		return v
	case *connSlot:
		return v.st
	}
	return nil
}

// withConnSlot is the http.Server's ConnContext.
func withConnSlot(ctx context.Context, c net.Conn) context.Context {
	fc, _ := c.(*frontConn)
	return context.WithValue(ctx, stateKey{}, &connSlot{checked: fc != nil && fc.handedOff})
}

// bufferPool is ReverseProxy's copy-buffer pool. A bounded free list (a
// buffered channel) rather than a sync.Pool: BufferPool.Put takes a slice,
// and storing a slice in a sync.Pool allocates a header on every Put.
type bufferPool struct{ free chan []byte }

func newBufferPool() *bufferPool { return &bufferPool{free: make(chan []byte, 1024)} }

// Get implements httputil.BufferPool.
func (bp *bufferPool) Get() []byte {
	select {
	case b := <-bp.free:
		return b
	default:
		return make([]byte, 32<<10)
	}
}

// Put implements httputil.BufferPool.
func (bp *bufferPool) Put(b []byte) {
	select {
	case bp.free <- b[:cap(b)]:
	default:
	}
}

// serveHTTP is the hot path: pick a version and target from the service's
// current table (one atomic load, no lock), proxy, record.
func (p *Proxy) serveHTTP(svc *service, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	slot, _ := r.Context().Value(stateKey{}).(*connSlot)
	if closeAmbiguous(slot, r) {
		w.Header().Set("Connection", "close")
	}
	tbl := svc.table.Load()
	st := p.states.Get().(*reqState)
	st.hv = httpView{w: w, r: r}
	a := p.admit(tbl, &st.hv, r.ContentLength, start, false)
	st.hv = httpView{}
	if a.status != 0 {
		p.states.Put(st)
		if a.status == http.StatusRequestEntityTooLarge {
			if tbl.versionHeader != "" {
				w.Header()[tbl.versionHeader] = []string{a.ver.name}
			}
			// The unread body cannot be skipped: no next request here.
			w.Header().Set("Connection", "close")
		}
		http.Error(w, a.reason, a.status)
		return
	}
	v, t := a.ver, a.target
	if a.newID {
		r.Header["X-Request-Id"] = newRequestID()
	}
	if tbl.versionHeader != "" {
		w.Header()[tbl.versionHeader] = []string{v.name}
	}
	if tbl.maxBody > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, tbl.maxBody)
	}
	var body *clientBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &clientBody{rc: r.Body}
		r.Body = body
	}

	*st = reqState{inCtx: r.Context(), body: body}
	st.begin(tbl, v, t, start)
	st.generated = a.generated
	if slot != nil && r.ProtoMajor == 1 && tbl.upstreamTimeout <= 0 {
		slot.st = st
	} else {
		slot = nil
		ctx := context.WithValue(r.Context(), stateKey{}, st)
		if tbl.upstreamTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tbl.upstreamTimeout)
			defer cancel()
		}
		r = r.WithContext(ctx)
	}
	defer func() {
		pv := recover()
		if pv != nil {
			// ReverseProxy panics with http.ErrAbortHandler when the target
			// broke the response mid-body: a reset after the status line.
			st.code, st.failed = brokenOutcome(st.code, st.inCtx.Err() != nil)
		}
		st.end(p, st.clientFault)
		if slot != nil {
			slot.st = nil
		}
		*st = reqState{}
		p.states.Put(st)
		if pv != nil {
			panic(pv)
		}
	}()
	p.rp.ServeHTTP(w, r)
}

// recordUntil records a request of the version (outcome.go) that ends now
// in its one-second window and Prometheus; its latency ends at until
// when that is set (streams), else now. A generated request (the load
// generator's) is counted in the window's Generated too.
func (p *Proxy) recordUntil(v *version, start, until time.Time, code int, failed, generated bool) {
	end := time.Now()
	if until.IsZero() {
		until = end
	}
	d := until.Sub(start)
	v.stats.record(end.Unix(), d, failed)
	if generated {
		v.stats.markGenerated(end.Unix())
	}
	v.counter(code).Inc()
	v.duration.Observe(d.Seconds())
}

// requestID is a header value and its bytes in one allocation.
type requestID struct {
	v [1]string
	b [32]byte
}

// newRequestID returns a random 128-bit hex id as a header value.
func newRequestID() []string {
	id := new(requestID)
	fillRequestID(&id.b)
	// The bytes are never written again, so the string may alias them.
	id.v[0] = unsafe.String(&id.b[0], len(id.b))
	return id.v[:]
}

// fillRequestID writes a random 128-bit id in hex.
func fillRequestID(b *[32]byte) {
	const hex = "0123456789abcdef"
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 16 {
		b[i], b[16+i] = hex[x&0xf], hex[y&0xf]
		x, y = x>>4, y>>4
	}
}

// rewrite points the outgoing request at the chosen target. The Host header
// is kept (like Traefik, Caddy and kamal-proxy) so virtual hosts keep working;
// X-Forwarded-* are set by httputil.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateOf(pr.Out.Context())
	// The hand-off mark is the fast path's note to net/http, not the
	// client's: the target must not see it (the fast path drops it too).
	delete(pr.Out.Header, handoffHeader)
	delete(pr.Out.Header, loadHeader)
	for k := range pr.Out.Header {
		if dropFieldName(k) {
			delete(pr.Out.Header, k) // framing.go; the fast path drops them too
		}
	}
	pr.Out.URL.Scheme = st.target.scheme
	pr.Out.URL.Host = st.target.host
	pr.SetXForwarded()
}

// RoundTrip implements http.RoundTripper for ReverseProxy: it sends to the
// chosen target and, for idempotent requests without a body that failed
// before any response arrived (connect failure, reset), retries on other
// targets of the same version, like nginx's proxy_next_upstream error timeout.
// Nothing has been written to the client at that point, and a POST is never
// resent.
func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	st := stateOf(req.Context())
	if st == nil {
		return p.up1.RoundTrip(req)
	}
	out := req
	for attempt := 0; ; attempt++ {
		t := st.target
		rt := p.up1
		if t.h2c {
			rt = p.up2c
		}
		res, err := rt.RoundTrip(out)
		if err == nil {
			return res, nil
		}
		if st.inCtx.Err() != nil || req.Context().Err() != nil {
			return nil, err // the client left or the upstream timeout passed
		}
		if st.body.fault() != nil {
			return nil, err // the client broke its body: not the target's failure
		}
		t.health.PassiveFailure(err.Error())
		if !retryable((*httpResend)(req), err) {
			return nil, err
		}
		next := st.retryTarget(p, attempt, err)
		if next == nil {
			return nil, err
		}
		r2 := *req
		u := *req.URL
		u.Scheme, u.Host = next.scheme, next.host
		r2.URL = &u
		out = &r2
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// modifyResponse records the target's status and feeds passive health.
func (p *Proxy) modifyResponse(res *http.Response) error {
	st := stateOf(res.Request.Context())
	if st == nil {
		return nil
	}
	st.code = res.StatusCode
	if st.body.fault() != nil {
		// The target answered a body the client broke (it saw the request
		// cut short): the client's outcome, whatever the status.
		st.clientFault = true
		return nil
	}
	if res.StatusCode == http.StatusSwitchingProtocols || strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		st.headerAt = time.Now()
	}
	st.failed = p.observeStatus(st.target, res.StatusCode)
	return nil
}

// observeStatus feeds passive health with a target's response status and
// reports whether it counts as an error of the version (a 5xx).
func (p *Proxy) observeStatus(t *target, code int) bool {
	if code < 500 {
		t.health.PassiveSuccess()
		return false
	}
	if code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout {
		t.health.PassiveFailure("target returned " + strconv.Itoa(code))
	}
	return true
}

// errorHandler answers when no response came from the target.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	var fault error
	gone := false
	if st != nil {
		fault, gone = st.body.fault(), st.inCtx.Err() != nil
	}
	code, failed := transportOutcome(err, gone, fault)
	if fault != nil {
		st.clientFault = true
		// The rest of the body cannot be framed: no next request on this
		// connection.
		w.Header().Set("Connection", "close")
	}
	if st != nil {
		st.code, st.failed = code, failed
	}
	if code != StatusClientClosedRequest {
		p.log.Debug("proxy error", "error", err, "status", code, "client", fault != nil)
	}
	w.WriteHeader(code)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
