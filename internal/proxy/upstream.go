package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// maxFastBody is the largest request body (with a known length) sent on
// the HTTP/1.1 fast path. It is written whole before the response is read,
// so it must fit the socket buffers even when the target answers without
// reading it; larger and streamed bodies go through http.Transport, which
// reads and writes concurrently.
const maxFastBody = 64 << 10

// max1xx bounds the informational responses skipped before the final one.
const max1xx = 5

// upstream is an HTTP/1.1 RoundTripper for plain http targets, built for a
// reverse proxy's request pattern: one request at a time per connection,
// written and then read on the calling goroutine (net/http.Transport hands
// every request to a per-connection read and write goroutine, which costs
// two goroutine switches per request). Idle connections are kept per
// host:port, newest first, and closed after idleTimeout.
//
// What it does not handle goes to fallback: Upgrade (WebSocket), Expect:
// 100-continue, request bodies of unknown or large length, request
// trailers, and any scheme but http.
type upstream struct {
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback       http.RoundTripper
	maxIdlePerHost int
	idleTimeout    time.Duration

	readers sync.Pool // *bufio.Reader
	writers sync.Pool // *bufio.Writer

	mu    sync.Mutex
	idle  map[string][]*upConn // per host:port, oldest first
	sweep *time.Timer          // closes expired idle connections; nil until first use
	armed bool                 // sweep is scheduled
}

// upConn is one connection to a target. br and bw are attached only while
// a request uses it.
type upConn struct {
	conn   net.Conn
	host   string
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	reused bool
	cancel func() // closes conn; made once, registered per request
}

func newUpstream(dial func(ctx context.Context, network, addr string) (net.Conn, error), fallback http.RoundTripper, maxIdlePerHost int, idleTimeout time.Duration) *upstream {
	return &upstream{
		dial: dial, fallback: fallback, maxIdlePerHost: maxIdlePerHost, idleTimeout: idleTimeout,
		idle: make(map[string][]*upConn),
	}
}

// fast reports whether req can take the fast path.
func fast(req *http.Request) bool {
	if req.URL.Scheme != "http" || len(req.Trailer) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.ContentLength > 0 && req.ContentLength <= maxFastBody
}

// RoundTrip implements http.RoundTripper. A reused keep-alive connection
// that fails before any byte of the response arrived (the target closed it
// while idle) is replaced by another one transparently when the request is
// replayable; a request that is not replayable only goes out on a reused
// connection that still looks open, and is never sent twice.
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fast(req) {
		return u.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	replay := replayable((*httpResend)(req))
	for {
		pc, err := u.get(ctx, req.URL.Host, !replay)
		if err != nil {
			return nil, err
		}
		res, stale, err := u.exchange(ctx, pc, req)
		if err == nil {
			return res, nil
		}
		if !stale || !replay || ctx.Err() != nil {
			return nil, err
		}
	}
}

// exchange sends req on pc and reads the response header. stale reports a
// failure on a reused connection before any response byte was read.
func (u *upstream) exchange(ctx context.Context, pc *upConn, req *http.Request) (res *http.Response, stale bool, err error) {
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.cancel)
	}
	u.attach(pc)
	fail := func(err error, stale bool) (*http.Response, bool, error) {
		u.drop(pc, stop)
		if cerr := ctx.Err(); cerr != nil {
			return nil, false, fmt.Errorf("%w (%v)", cerr, err)
		}
		return nil, stale, err
	}
	if err := writeRequest(pc.bw, req); err != nil {
		return fail(err, pc.reused)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(err, pc.reused)
	}
	if _, err := pc.br.Peek(1); err != nil {
		return fail(err, pc.reused)
	}
	for n := 0; ; n++ {
		res, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return fail(err, false)
		}
		if res.StatusCode >= 200 || res.StatusCode < 100 {
			break
		}
		if res.StatusCode == http.StatusSwitchingProtocols || n >= max1xx {
			return fail(fmt.Errorf("unexpected %s from target", res.Status), false)
		}
		if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.Got1xxResponse != nil {
			if err := tr.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return fail(err, false)
			}
		}
	}
	reuse := !res.Close && !req.Close
	if res.Body == http.NoBody {
		u.done(pc, stop, reuse)
		return res, false, nil
	}
	res.Body = &upBody{u: u, pc: pc, body: res.Body, stop: stop, reuse: reuse}
	return res, false, nil
}

// upBody returns its connection to the pool when the body was read to EOF
// and the response allows reuse, and closes it otherwise.
type upBody struct {
	u     *upstream
	pc    *upConn // nil once released
	body  io.ReadCloser
	stop  func() bool
	reuse bool
	err   error // returned once released
}

var errBodyClosed = errors.New("http: read on closed response body")

func (b *upBody) Read(p []byte) (int, error) {
	if b.pc == nil {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	if err != nil {
		pc := b.pc
		b.pc, b.err = nil, err
		if err == io.EOF {
			b.u.done(pc, b.stop, b.reuse)
		} else {
			b.u.drop(pc, b.stop)
		}
	}
	return n, err
}

// Close closes the connection unless the body was read to the end.
func (b *upBody) Close() error {
	if b.pc != nil {
		pc := b.pc
		b.pc, b.err = nil, errBodyClosed
		b.u.drop(pc, b.stop)
	}
	return nil
}

// get returns an idle connection to host or dials one. check asks for a
// liveness probe of an idle connection before it is handed out.
func (u *upstream) get(ctx context.Context, host string, check bool) (*upConn, error) {
	now := time.Now()
	for {
		u.mu.Lock()
		idle := u.idle[host]
		if len(idle) == 0 {
			u.mu.Unlock()
			break
		}
		pc := idle[len(idle)-1]
		idle[len(idle)-1] = nil
		idle = idle[:len(idle)-1]
		if u.idleTimeout > 0 && now.Sub(pc.idleAt) >= u.idleTimeout {
			// pc is the newest: every other idle one has expired too.
			delete(u.idle, host)
			u.mu.Unlock()
			pc.conn.Close()
			for _, o := range idle {
				o.conn.Close()
			}
			break
		}
		u.idle[host] = idle
		u.mu.Unlock()
		if check && !connAlive(pc.conn) {
			pc.conn.Close()
			continue
		}
		pc.reused = true
		return pc, nil
	}
	c, err := u.dial(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	return &upConn{conn: c, host: host, cancel: func() { c.Close() }}, nil
}

func (u *upstream) attach(pc *upConn) {
	if r, _ := u.readers.Get().(*bufio.Reader); r != nil {
		r.Reset(pc.conn)
		pc.br = r
	} else {
		pc.br = bufio.NewReaderSize(pc.conn, 16<<10) // fasthttp needs a response header to fit
	}
	if w, _ := u.writers.Get().(*bufio.Writer); w != nil {
		w.Reset(pc.conn)
		pc.bw = w
	} else {
		pc.bw = bufio.NewWriterSize(pc.conn, 4<<10)
	}
}

func (u *upstream) detach(pc *upConn) {
	pc.br.Reset(nil)
	pc.bw.Reset(nil)
	u.readers.Put(pc.br)
	u.writers.Put(pc.bw)
	pc.br, pc.bw = nil, nil
}

// done ends a request whose response was read completely: pc goes back to
// the pool when the response allows reuse and the request was not
// cancelled, else it is closed.
func (u *upstream) done(pc *upConn, stop func() bool, reuse bool) {
	if stop != nil && !stop() {
		reuse = false // cancelled: the callback closes the connection
	}
	if !reuse || pc.br.Buffered() > 0 {
		u.drop(pc, nil)
		return
	}
	u.detach(pc)
	pc.idleAt = time.Now()
	u.mu.Lock()
	idle := u.idle[pc.host]
	if len(idle) >= u.maxIdlePerHost {
		u.mu.Unlock()
		pc.conn.Close()
		return
	}
	u.idle[pc.host] = append(idle, pc)
	if !u.armed && u.idleTimeout > 0 {
		u.armed = true
		if u.sweep == nil {
			u.sweep = time.AfterFunc(u.idleTimeout, u.expire)
		} else {
			u.sweep.Reset(u.idleTimeout)
		}
	}
	u.mu.Unlock()
}

// drop closes a connection that must not be reused.
func (u *upstream) drop(pc *upConn, stop func() bool) {
	if stop != nil {
		stop()
	}
	pc.conn.Close()
	if pc.br != nil {
		u.detach(pc)
	}
}

// expire closes idle connections older than idleTimeout and reschedules
// itself for the oldest remaining one.
func (u *upstream) expire() {
	now := time.Now()
	var old []*upConn
	var next time.Duration
	u.mu.Lock()
	for host, idle := range u.idle {
		i := 0
		for i < len(idle) && now.Sub(idle[i].idleAt) >= u.idleTimeout {
			i++
		}
		old = append(old, idle[:i]...)
		if i == len(idle) {
			delete(u.idle, host)
			continue
		}
		rest := copy(idle, idle[i:])
		clear(idle[rest:])
		u.idle[host] = idle[:rest]
		if d := u.idleTimeout - now.Sub(idle[0].idleAt); next == 0 || d < next {
			next = d
		}
	}
	u.armed = next > 0
	if u.armed {
		u.sweep.Reset(next)
	}
	u.mu.Unlock()
	for _, pc := range old {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes every idle connection, and those of the
// fallback transport. Connections in use are returned to the pool as usual.
func (u *upstream) CloseIdleConnections() {
	u.mu.Lock()
	all := u.idle
	u.idle = make(map[string][]*upConn)
	u.mu.Unlock()
	for _, idle := range all {
		for _, pc := range idle {
			pc.conn.Close()
		}
	}
	if c, ok := u.fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// idleCount returns the number of idle connections to host.
func (u *upstream) idleCount(host string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.idle[host])
}

// writeRequest writes req's header. The common proxied request (GET or
// HEAD, no body, plain host and header values) is written by hand, which
// skips Request.Write's formatting, sorting and allocations; anything else
// goes through Request.Write.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	if !simpleRequest(req) {
		return req.Write(w)
	}
	ruri := req.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if c := ruri[i]; c <= ' ' || c == 0x7f {
			return req.Write(w)
		}
	}
	for k, vs := range req.Header {
		if !tokenOnly(k) {
			return req.Write(w)
		}
		for _, v := range vs {
			if !safeValue(v) {
				return req.Write(w)
			}
		}
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(ruri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(req.Host)
	w.WriteString("\r\n")
	if ua, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	} else if len(ua) > 0 && ua[0] != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua[0])
		w.WriteString("\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// simpleRequest reports whether writeRequest may write req by hand.
func simpleRequest(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody || req.ContentLength != 0 ||
		len(req.TransferEncoding) > 0 || req.Close || len(req.Trailer) > 0 || req.URL.Opaque != "" {
		return false
	}
	h := req.Host
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '-', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// tokenOnly reports whether s is a non-empty RFC 9110 token.
func tokenOnly(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' {
			return false
		}
		switch c {
		case '"', '(', ')', ',', '/', ':', ';', '<', '=', '>', '?', '@', '[', '\\', ']', '{', '}':
			return false
		}
	}
	return true
}

// safeValue reports whether a header value can be written as it is: no
// control bytes but tab, no leading or trailing white space.
func safeValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return v == "" || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
}
