package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// maxFastResponse is the largest response body (of known length) the fast
// path reads whole before answering; larger ones and those of unknown length
// (chunked, event streams) are streamed to the client as they arrive.
const maxFastResponse = 64 << 10

// fastReq is one request on the fast path, pooled. It is what routing sees
// (request) and, for streamed responses, the body the client is sent.
type fastReq struct {
	p      *Proxy
	ctx    *fasthttp.RequestCtx
	cookie *http.Cookie

	proxied
	newID bool
	id    [32]byte
	// scratch formats numbers and addresses for the upstream request (a
	// stack array would escape through bufio.Writer.Write).
	scratch [64]byte

	// A streamed response body.
	pc      *upConn
	body    io.Reader
	lim     io.LimitedReader // body of a known length
	chunked *bufio.Reader    // non-nil when the body is chunked: trailers follow it
	reuse   bool
	eof     bool

	cw *clientWatch // kept across uses
}

// headerValue implements fieldReader.
func (f *fastReq) headerValue(name string) (string, bool) {
	v := f.ctx.Request.Header.Peek(name)
	if v == nil {
		return "", false
	}
	return b2s(v), true
}

// cookieValue implements fieldReader with the same parsing as net/http's
// front end, over every Cookie line as received.
func (f *fastReq) cookieValue(name string) (v string, found bool) {
	eachRawHeader(f.ctx.Request.Header.RawHeaders(), func(k, line []byte) bool {
		if !asciiEqualFold(k, "Cookie") {
			return true
		}
		v, found = cookieIn(b2s(bytes.TrimSpace(line[len(k)+1:])), name)
		return !found
	})
	return v, found
}

// trusted implements request: the TCP peer, never X-Forwarded-For.
func (f *fastReq) trusted(prefixes []netip.Prefix) bool {
	if len(prefixes) == 0 {
		return true
	}
	a, ok := f.ctx.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return false
	}
	return trustedAddr(prefixes, a.AddrPort().Addr())
}

// setCookie implements request. The fast path serves plain listeners only,
// so the cookie is never Secure.
func (f *fastReq) setCookie(c *http.Cookie) { f.cookie = c }

// b2s views b as a string for the duration of a call that does not keep it.
func b2s(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// serveFast is the fasthttp handler of a plain listener.
func (l *listener) serveFast(ctx *fasthttp.RequestCtx) {
	if m := ctx.Request.Header.Peek(handoffHeader); len(m) > 0 {
		if code := framingStatus(m); code != 0 {
			// framing.go: the client's fault, answered before routing and
			// counted nowhere that judges a version.
			ctx.Error(http.StatusText(code), code)
			ctx.SetConnectionClose()
			return
		}
		l.handOff(ctx)
		return
	}
	s := l.svc.Load()
	if s == nil {
		ctx.Error("no service", http.StatusServiceUnavailable)
		return
	}
	if !l.p.serveFast(s, ctx) {
		l.handOff(ctx)
	}
}

// serveFast proxies one request like serveHTTP does, with the same routing,
// retries, health and measurements. It returns false, having done nothing,
// when the request must go to net/http (a version with https or h2c targets).
func (p *Proxy) serveFast(svc *service, ctx *fasthttp.RequestCtx) bool {
	start := time.Now()
	tbl := svc.table.Load()
	f := p.fastReqs.Get().(*fastReq)
	f.p, f.ctx, f.tbl, f.start = p, ctx, tbl, start
	h := &ctx.Request.Header
	a := p.admit(tbl, f, int64(h.ContentLength()), start, true)
	switch {
	case a.netHTTP:
		f.release()
		return false
	case a.status != 0:
		ctx.Error(a.reason, a.status)
		if a.status == http.StatusRequestEntityTooLarge {
			ctx.SetConnectionClose() // as net/http does, whose body is unread

			f.ver = a.ver
			f.decorate()
		}
		f.release()
		return true
	}
	if a.newID {
		f.newID = true
		fillRequestID(&f.id)
	}
	f.begin(tbl, a.ver, a.target, start)
	f.generated = a.generated
	if p.forwardFast(f) {
		return true // the body stream finishes the request
	}
	f.finish()
	return true
}

// decorate adds what the proxy itself puts on a response: the version
// header and a sticky cookie.
func (f *fastReq) decorate() {
	rh := &f.ctx.Response.Header
	if f.tbl.versionHeader != "" {
		rh.Set(f.tbl.versionHeader, f.ver.name)
	}
	if f.cookie != nil {
		rh.Add("Set-Cookie", f.cookie.String())
	}
}

// finish records the request and returns f to the pool.
func (f *fastReq) finish() {
	f.end(f.p, false)
	f.release()
}

func (f *fastReq) release() {
	p, cw := f.p, f.cw
	cw.mu.Lock()
	cw.up, cw.client, cw.gone = nil, nil, false
	cw.mu.Unlock()
	*f = fastReq{cw: cw}
	p.fastReqs.Put(f)
}

// forwardFast sends the request to f.target, retrying like roundTrip does
// (idempotent requests without a body, on a failure before the response
// header, on another target of the same version), and sets the response.
// It reports whether the response body is streamed, in which case the
// stream's Close finishes the request.
func (p *Proxy) forwardFast(f *fastReq) (streamed bool) {
	ctx := f.ctx
	replay := replayable((*fastResend)(&ctx.Request))
	for attempt := 0; ; attempt++ {
		t := f.target
		streamed, err := p.exchangeFast(f, replay)
		if err == nil {
			f.code = ctx.Response.StatusCode()
			f.failed = p.observeStatus(t, f.code)
			f.decorate()
			return streamed
		}
		ctx.Response.Reset()
		gone := f.clientGone()
		if !gone {
			t.health.PassiveFailure(err.Error())
			if retryable((*fastResend)(&ctx.Request), err) && f.retryTarget(p, attempt, err) != nil {
				continue
			}
		}
		// No client body fault here: fasthttp read the body whole before
		// the handler ran, and answered a broken one itself.
		f.code, f.failed = transportOutcome(err, gone, nil)
		ctx.SetStatusCode(f.code)
		if gone {
			ctx.SetConnectionClose()
			return false
		}
		p.log.Debug("proxy error", "error", err, "status", f.code)
		f.decorate()
		return false
	}
}

// exchangeFast sends the request on a pooled connection to f.target and
// reads the response header, and the body when it is small and of known
// length. A reused connection that fails before any response byte is
// replaced when the request is replayable, as in upstream.RoundTrip.
func (p *Proxy) exchangeFast(f *fastReq, replay bool) (streamed bool, err error) {
	u := p.fast
	for {
		pc, err := u.get(p.root, f.target.host, !replay)
		if err != nil {
			return false, err
		}
		streamed, stale, err := p.sendFast(f, pc)
		if err == nil {
			return streamed, nil
		}
		if !stale || !replay || f.clientGone() {
			return false, err
		}
	}
}

func (p *Proxy) sendFast(f *fastReq, pc *upConn) (streamed, stale bool, err error) {
	u := p.fast
	u.attach(pc)
	if d := f.tbl.upstreamTimeout; d > 0 {
		_ = pc.conn.SetDeadline(f.start.Add(d))
	}
	fail := func(err error, stale bool) (bool, bool, error) {
		f.unwatch()
		u.drop(pc, nil)
		if f.clientGone() {
			return false, false, fmt.Errorf("%w (%v)", errClientGone, err)
		}
		return false, stale, err
	}
	writeFastRequest(pc.bw, f)
	if err := pc.bw.Flush(); err != nil {
		return fail(err, pc.reused)
	}
	f.watch(pc.conn)
	if _, err := pc.br.Peek(1); err != nil {
		return fail(err, pc.reused)
	}
	ctx := f.ctx
	rh := &ctx.Response.Header
	for n := 0; ; n++ {
		if err := rh.Read(pc.br); err != nil {
			return fail(err, false)
		}
		code := rh.StatusCode()
		if code >= 200 || code < 100 {
			break
		}
		if code == http.StatusSwitchingProtocols || n >= max1xx {
			return fail(fmt.Errorf("unexpected status %d from target", code), false)
		}
	}
	reuse := !rh.ConnectionClose()
	stripResponseHopHeaders(rh)
	code := rh.StatusCode()
	cl := rh.ContentLength()
	if ctx.IsHead() || code == http.StatusNoContent || code == http.StatusNotModified {
		f.unwatch()
		p.releaseUp(f, pc, reuse)
		return false, false, nil
	}
	if cl >= 0 && cl <= maxFastResponse {
		if err := ctx.Response.ReadBody(pc.br, 0); err != nil {
			return fail(err, false)
		}
		f.unwatch()
		p.releaseUp(f, pc, reuse)
		return false, false, nil
	}
	// Stream: the client's writes take the body as it arrives; chunks are
	// flushed one by one (event streams), a known length at the end.
	if code == http.StatusSwitchingProtocols || bytes.HasPrefix(rh.ContentType(), []byte("text/event-stream")) {
		f.headerAt = time.Now()
	}
	f.pc, f.reuse = pc, reuse
	switch {
	case cl >= 0:
		f.lim = io.LimitedReader{R: pc.br, N: int64(cl)}
		f.body = &f.lim
	case cl == -1:
		f.chunked = pc.br
		f.body = httputil.NewChunkedReader(pc.br)
		cl = -1
	default: // until the target closes the connection
		f.body = pc.br
		f.reuse = false
		cl = -1
	}
	ctx.Response.SetBodyStream((*fastStream)(f), cl)
	// A stream's header goes out at once, before its first event.
	ctx.Response.ImmediateHeaderFlush = cl < 0
	return true, false, nil
}

// releaseUp returns an upstream connection whose response was read whole.
func (p *Proxy) releaseUp(f *fastReq, pc *upConn, reuse bool) {
	if f.tbl.upstreamTimeout > 0 {
		_ = pc.conn.SetDeadline(time.Time{})
	}
	p.fast.done(pc, nil, reuse)
}
