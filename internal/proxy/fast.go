package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// maxFastResponse is the largest response body (of known length) the fast
// path reads whole before answering; larger ones and those of unknown length
// (chunked, event streams) are streamed to the client as they arrive.
const maxFastResponse = 64 << 10

// watchEvery is how often the fast path checks, while it waits for a
// target, whether the client is still there (net/http does it with a
// background read per request; a client that left cancels the upstream
// request and is recorded as 499).
const watchEvery = 200 * time.Millisecond

var errClientGone = errors.New("client closed the connection")

// fastReq is one request on the fast path, pooled. It is what routing sees
// (request) and, for streamed responses, the body the client is sent.
type fastReq struct {
	p      *Proxy
	ctx    *fasthttp.RequestCtx
	cookie *http.Cookie

	tbl    *table
	ver    *version
	target *target
	tried  [4]*target
	ntried int
	start  time.Time
	code   int
	failed bool
	newID  bool
	id     [32]byte
	// scratch formats numbers and addresses for the upstream request (a
	// stack array would escape through bufio.Writer.Write).
	scratch [64]byte

	// A streamed response body.
	pc       *upConn
	body     io.Reader
	lim      io.LimitedReader // body of a known length
	chunked  *bufio.Reader    // non-nil when the body is chunked: trailers follow it
	reuse    bool
	eof      bool
	headerAt time.Time

	cw *clientWatch // kept across uses
}

// clientWatch checks, while a request waits for its target, whether the
// client is still connected.
type clientWatch struct {
	mu     sync.Mutex
	up     net.Conn
	client net.Conn
	gone   bool
	timer  *time.Timer
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
	if len(ctx.Request.Header.Peek(handoffHeader)) > 0 {
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
	if tbl == nil || tbl.stable == nil && len(tbl.picks) == 0 {
		ctx.Error("no route", http.StatusServiceUnavailable)
		return true
	}
	for _, v := range tbl.versions {
		if !v.plainHTTP.Load() {
			return false
		}
	}
	f := p.fastReqs.Get().(*fastReq)
	f.p, f.ctx, f.tbl, f.start = p, ctx, tbl, start
	v, t := tbl.route(f, start)
	if t == nil {
		p.countOnly(v, http.StatusServiceUnavailable)
		ctx.Error("no target", http.StatusServiceUnavailable)
		f.release()
		return true
	}
	if t.scheme != "http" || t.h2c {
		f.release()
		return false // a target changed since the check above
	}
	h := &ctx.Request.Header
	if id := h.Peek("X-Request-Id"); len(id) == 0 {
		f.newID = true
		fillRequestID(&f.id)
	}
	if tbl.maxBody > 0 && int64(h.ContentLength()) > tbl.maxBody {
		p.countOnly(v, http.StatusRequestEntityTooLarge)
		ctx.Error("request body too large", http.StatusRequestEntityTooLarge)
		ctx.SetConnectionClose()
		f.ver = v
		f.decorate()
		f.release()
		return true
	}
	f.ver, f.target = v, t
	f.tried[0], f.ntried = t, 1
	t.inflight.Add(1)
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
	f.target.inflight.Add(-1)
	code := f.code
	if code == 0 {
		code = http.StatusBadGateway
	}
	f.p.recordUntil(f.ver, f.start, f.headerAt, code, f.failed)
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
	replay := fastReplayable(&ctx.Request)
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
		if f.clientGone() {
			f.code, f.failed = StatusClientClosedRequest, false
			ctx.SetStatusCode(StatusClientClosedRequest)
			ctx.SetConnectionClose()
			return false
		}
		t.health.PassiveFailure(err.Error())
		timeout := isTimeout(err)
		if !timeout && fastRetryable(&ctx.Request) && attempt < f.tbl.retries && f.ntried < len(f.tried) {
			if next := f.ver.pick(time.Now().UnixNano(), f.tried[:f.ntried]); next != nil {
				t.inflight.Add(-1)
				next.inflight.Add(1)
				f.target = next
				f.tried[f.ntried] = next
				f.ntried++
				p.log.Debug("retrying on another target", "service", f.ver.service, "version", f.ver.name, "target", next.addr, "error", err)
				continue
			}
		}
		f.code, f.failed = http.StatusBadGateway, true
		if timeout {
			f.code = http.StatusGatewayTimeout
		}
		p.log.Debug("proxy error", "error", err, "status", f.code)
		ctx.SetStatusCode(f.code)
		f.decorate()
		return false
	}
}

// fastReplayable is replayable for a fasthttp request.
func fastReplayable(req *fasthttp.Request) bool {
	if len(req.Body()) > 0 {
		return false
	}
	switch string(req.Header.Method()) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header.Peek("Idempotency-Key")) > 0 || len(req.Header.Peek("X-Idempotency-Key")) > 0
}

// fastRetryable is retryable's rule on the request: no body, and an
// idempotent method or an Idempotency-Key.
func fastRetryable(req *fasthttp.Request) bool {
	if len(req.Body()) > 0 {
		return false
	}
	switch string(req.Header.Method()) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header.Peek("Idempotency-Key")) > 0
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

// fastStream is a streamed response body: fasthttp reads it while writing
// the response and closes it at the end, which finishes the request.
type fastStream fastReq

func (s *fastStream) Read(b []byte) (int, error) {
	f := (*fastReq)(s)
	if f.body == nil || f.eof {
		// fasthttp reads again after data that came with io.EOF.
		return 0, io.EOF
	}
	n, err := f.body.Read(b)
	if err == nil && f.body == &f.lim && f.lim.N == 0 {
		// fasthttp stops reading a known length once it has it all.
		err = io.EOF
	}
	if err == io.EOF {
		if f.chunked != nil {
			err = skipTrailers(f.chunked)
			if err == nil {
				err = io.EOF
			}
		}
		if err == io.EOF {
			f.eof = true
			return n, io.EOF
		}
	}
	if err != nil {
		if f.clientGone() {
			f.code, f.failed = StatusClientClosedRequest, false
		} else {
			// The target broke the response after its header: an error of
			// the version, as when ReverseProxy aborts the handler.
			f.failed = true
		}
	}
	return n, err
}

// Close implements io.Closer; fasthttp calls it once the response is
// written or has failed.
func (s *fastStream) Close() error {
	f := (*fastReq)(s)
	if f.pc == nil {
		return nil
	}
	f.unwatch()
	pc := f.pc
	f.pc, f.body, f.chunked = nil, nil, nil
	if f.eof {
		f.p.releaseUp(f, pc, f.reuse)
	} else {
		if !f.failed && f.code != StatusClientClosedRequest {
			// The client stopped reading (it went away or the write failed).
			f.code = StatusClientClosedRequest
		}
		f.p.fast.drop(pc, nil)
	}
	f.finish()
	return nil
}

// skipTrailers reads the trailer section after a chunked body's last chunk.
func skipTrailers(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}

// watch starts checking the client while the target is working on up.
func (f *fastReq) watch(up net.Conn) {
	cw := f.cw
	cw.mu.Lock()
	cw.up = up
	cw.client = f.ctx.Conn()
	if cw.timer == nil {
		cw.timer = time.AfterFunc(watchEvery, cw.check)
	} else {
		cw.timer.Reset(watchEvery)
	}
	cw.mu.Unlock()
}

func (f *fastReq) unwatch() {
	cw := f.cw
	cw.mu.Lock()
	cw.up, cw.client = nil, nil
	if cw.timer != nil {
		cw.timer.Stop()
	}
	cw.mu.Unlock()
}

func (cw *clientWatch) check() {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.up == nil {
		return
	}
	if peerGone(cw.client) {
		cw.gone = true
		cw.up.Close() // unblocks the read from the target
		return
	}
	cw.timer.Reset(watchEvery)
}

func (f *fastReq) clientGone() bool {
	cw := f.cw
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.gone
}

// stripResponseHopHeaders removes hop-by-hop fields from a target's
// response, as ReverseProxy does; fasthttp frames the body itself.
func stripResponseHopHeaders(rh *fasthttp.ResponseHeader) {
	if c := rh.Peek("Connection"); len(c) > 0 {
		for _, tok := range bytes.Split(c, []byte{','}) {
			if tok = bytes.TrimSpace(tok); len(tok) > 0 && !asciiEqualFold(tok, "close") && !asciiEqualFold(tok, "keep-alive") {
				rh.DelBytes(tok)
			}
		}
	}
	rh.ResetConnectionClose()
	rh.Del("Connection")
	rh.Del("Keep-Alive")
	rh.Del("Proxy-Connection")
	rh.Del("Proxy-Authenticate")
	rh.Del("Te")
	rh.Del("Trailer")
	rh.Del("Upgrade")
}

// dropRequestHeader reports whether a received header field is not sent to
// the target: hop-by-hop fields (RFC 9110 7.6.1 and those the Connection
// field names), framing (rewritten), the X-Forwarded-* fields and Forwarded
// (set afresh, as httputil's Rewrite mode does), and an empty request id
// when a new one is made.
func dropRequestHeader(name, line, conn []byte, newID bool) bool {
	switch len(name) {
	case 2:
		if asciiEqualFold(name, "Te") {
			v := bytes.TrimSpace(line[len(name)+1:])
			return !asciiEqualFold(v, "trailers")
		}
	case 7:
		return asciiEqualFold(name, "Upgrade") || asciiEqualFold(name, "Trailer")
	case 9:
		return asciiEqualFold(name, "Forwarded")
	case 10:
		return asciiEqualFold(name, "Connection") || asciiEqualFold(name, "Keep-Alive")
	case 12:
		if asciiEqualFold(name, "X-Request-Id") {
			return newID
		}
	case 14:
		return asciiEqualFold(name, "Content-Length")
	case 15:
		return asciiEqualFold(name, "X-Forwarded-For")
	case 16:
		return asciiEqualFold(name, "Proxy-Connection") || asciiEqualFold(name, "X-Forwarded-Host")
	case 17:
		return asciiEqualFold(name, "Transfer-Encoding") || asciiEqualFold(name, "X-Forwarded-Proto")
	case 18:
		return asciiEqualFold(name, "Proxy-Authenticate")
	case 19:
		return asciiEqualFold(name, "Proxy-Authorization")
	case len(handoffHeader):
		if asciiEqualFold(name, handoffHeader) {
			return true
		}
	}
	if len(conn) > 0 {
		for _, tok := range bytes.Split(conn, []byte{','}) {
			if bytes.EqualFold(bytes.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// writeFastRequest writes the request to the target: the request line and
// header fields as received, minus dropRequestHeader's, plus framing,
// X-Request-Id and X-Forwarded-For/-Host/-Proto. The Host field is kept.
func writeFastRequest(w *bufio.Writer, f *fastReq) {
	req := &f.ctx.Request
	h := &req.Header
	w.Write(h.Method())
	w.WriteByte(' ')
	w.Write(h.RequestURI())
	w.WriteString(" HTTP/1.1\r\n")
	conn := h.Peek("Connection")
	eachRawHeader(h.RawHeaders(), func(name, line []byte) bool {
		if !dropRequestHeader(name, line, conn, f.newID) {
			w.Write(line)
			w.WriteString("\r\n")
		}
		return true
	})
	body := req.Body()
	if len(body) > 0 || h.IsPost() || h.IsPut() || h.IsPatch() {
		w.WriteString("Content-Length: ")
		w.Write(fasthttp.AppendUint(f.scratch[:0], len(body)))
		w.WriteString("\r\n")
	}
	if f.newID {
		w.WriteString("X-Request-Id: ")
		w.Write(f.id[:])
		w.WriteString("\r\n")
	}
	if a, ok := f.ctx.RemoteAddr().(*net.TCPAddr); ok {
		w.WriteString("X-Forwarded-For: ")
		w.Write(a.AddrPort().Addr().Unmap().AppendTo(f.scratch[:0]))
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-Host: ")
	w.Write(h.Host())
	w.WriteString("\r\nX-Forwarded-Proto: http\r\n\r\n")
	w.Write(body)
}
