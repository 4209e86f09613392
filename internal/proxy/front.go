package proxy

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The front end of a plain (non-TLS) listener is split in two. Most
// HTTP/1.1 requests are served by a fasthttp.Server (the fast path: no
// per-request goroutine, context or header map); a connection that opens
// with the HTTP/2 preface (h2c with prior knowledge, gRPC) and every request
// the fast path does not handle go to the listener's net/http server, which
// keeps serving TLS listeners on its own:
//
//   - the accept loop hands each connection to classify, which reads just
//     enough of it (under the header timeout) to tell the HTTP/2 preface from
//     an HTTP/1 request line, and passes it on with those bytes to be replayed;
//   - headerReceived marks the requests that need net/http before fasthttp
//     reads their body: Upgrade (WebSocket), Expect, chunked or large request
//     bodies and request trailers; the handler then hijacks the connection
//     and replays the request header to net/http in front of the rest of the
//     stream, so net/http reads the body itself;
//   - a service whose versions have an https or h2c target is served by
//     net/http too (the fast path only speaks HTTP/1.1 to plain targets).

// h2Preface is the start of the HTTP/2 connection preface; no HTTP/1 request
// line starts with it.
const h2Preface = "PRI * HTTP/2.0"

// handoffHeader marks, inside the fast path only, a request to be handed to
// net/http. A client that sends it only costs itself the slower path.
const handoffHeader = "X-Switchyard-Handoff"

// frontConn is a client connection with the bytes already read from it
// (replayed first), tracked until closed so a forced shutdown can close it.
type frontConn struct {
	net.Conn
	head []byte
	set  *connSet
	once sync.Once
	// handedOff marks a connection handOff passed on: its first request
	// was checked by framingFault, the ones after it are net/http's.
	handedOff bool
}

func (c *frontConn) Read(b []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(b, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// Close implements net.Conn; it is idempotent.
func (c *frontConn) Close() error {
	c.once.Do(func() {
		if c.set != nil {
			c.set.remove(c)
		}
	})
	return c.Conn.Close()
}

// connSet tracks the client connections of a fast path, which
// fasthttp.Server cannot close on demand.
type connSet struct {
	mu     sync.Mutex
	m      map[*frontConn]struct{}
	closed bool
}

func (s *connSet) add(c *frontConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.m == nil {
		s.m = make(map[*frontConn]struct{})
	}
	s.m[c] = struct{}{}
	c.set = s
	return true
}

func (s *connSet) remove(c *frontConn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

// closeAll closes every tracked connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	m := s.m
	s.m = nil
	s.mu.Unlock()
	for c := range m {
		c.Conn.Close()
	}
}

// newFastServer builds the fasthttp.Server of a plain listener. Its
// timeouts follow the listener's: ReadTimeout is the header timeout
// (fasthttp restarts it at the first byte of each request), the body gets
// readTimeout from the end of the header, IdleTimeout is the keep-alive
// wait. The read buffer bounds the request header like net/http's
// MaxHeaderBytes (plus the same 4 KiB of slack), answering 431 beyond it.
func (p *Proxy) newFastServer(l *listener) *fasthttp.Server {
	bodyTimeout := l.cfg.readTimeout
	if bodyTimeout <= 0 {
		bodyTimeout = 24 * time.Hour // none configured; fasthttp needs one to replace the header timeout
	}
	return &fasthttp.Server{
		Handler: l.serveFast,
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			if code := framingFault(h); code != 0 {
				// Refused by serveFast before routing; the body is left
				// unread and the connection closed: it cannot be framed.
				h.SetContentLength(0)
				h.SetConnectionClose()
				h.Set(handoffHeader, framingMark(code))
				return fasthttp.RequestConfig{}
			}
			if needsNetHTTP(h) {
				// Leave the body unread on the connection for net/http, and
				// keep fasthttp from answering 100 Continue itself.
				h.Del("Expect")
				h.SetContentLength(0)
				h.Set(handoffHeader, "1")
				return fasthttp.RequestConfig{}
			}
			if h.ContentLength() <= 0 {
				return fasthttp.RequestConfig{} // no body to time: spare a deadline update
			}
			return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
		},
		ReadTimeout:                  l.cfg.readHeaderTimeout,
		IdleTimeout:                  l.cfg.idleTimeout,
		ReadBufferSize:               l.cfg.maxHeaderBytes + 4096,
		MaxRequestBodySize:           maxFastBody,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		KeepHijackedConns:            true, // net/http owns them after the hand-off
		CloseOnShutdown:              true,
		// Idle keep-alive connections give their read buffer (maxHeaderBytes
		// + 4 KiB) back: heap per idle connection 83 KiB → 4 KiB, RSS at
		// 1,000 connections 36 → 20 MiB; throughput within the noise.
		ReduceMemoryUsage:     true,
		SecureErrorLogMessage: true,
		Logger:                fastLogger{p.log},
	}
}

// needsNetHTTP reports whether a request must be served by net/http: the
// fast path neither streams request bodies nor upgrades connections.
func needsNetHTTP(h *fasthttp.RequestHeader) bool {
	if cl := h.ContentLength(); cl == -1 || cl > maxFastBody {
		return true // chunked, or too large to buffer
	}
	return len(h.Peek("Upgrade")) > 0 || len(h.Peek("Expect")) > 0 || len(h.Peek("Trailer")) > 0
}

type fastLogger struct{ log *slog.Logger }

func (l fastLogger) Printf(format string, args ...any) {
	l.log.Debug("fast path", "message", fmt.Sprintf(format, args...))
}

// dispatch classifies each connection the socket hands to a plain listener.
func (l *listener) dispatch(p *Proxy) {
	for {
		c, err := l.ho.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { l.classify(c) })
	}
}

// classify reads the first bytes of a connection, at most up to the length
// of the HTTP/2 preface, and passes it to net/http (preface) or fasthttp
// (anything else) with those bytes replayed. A client that sends nothing
// decisive within the header timeout is closed (slowloris).
func (l *listener) classify(c net.Conn) {
	fc := &frontConn{Conn: c}
	if !l.fconns.add(fc) {
		c.Close()
		return
	}
	var buf [len(h2Preface)]byte
	n := 0
	_ = c.SetReadDeadline(time.Now().Add(l.cfg.readHeaderTimeout))
	for {
		m, err := c.Read(buf[n:])
		n += m
		if n > 0 && string(buf[:n]) != h2Preface[:n] || n == len(buf) {
			break
		}
		if err != nil {
			fc.Close()
			return
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	fc.head = bytes.Clone(buf[:n])
	dst := l.fho
	if string(buf[:n]) == h2Preface {
		dst = l.nho
		l.h2.Add(1)
	}
	select {
	case dst.conns <- fc:
		return
	case <-dst.done:
	}
	// This listener was replaced while the connection was being read
	// (a reload that changed server settings): the new one serves it.
	if cur := l.sock.cur.Load(); cur != nil && cur != l.ho {
		select {
		case cur.conns <- fc:
			return
		case <-cur.done:
		}
	}
	fc.Close()
}

// handOff gives the connection of the current request to net/http: the
// request line and header as received (and the body if fasthttp read it)
// are replayed in front of the rest of the connection.
func (l *listener) handOff(ctx *fasthttp.RequestCtx) {
	h := &ctx.Request.Header
	raw := h.RawHeaders()
	body := ctx.Request.Body()
	head := make([]byte, 0, len(raw)+len(h.RequestURI())+len(body)+32)
	head = append(head, h.Method()...)
	head = append(head, ' ')
	head = append(head, h.RequestURI()...)
	head = append(head, ' ')
	head = append(head, h.Protocol()...)
	head = append(head, "\r\n"...)
	eachRawHeader(raw, func(name, line []byte) bool {
		head = append(head, line...)
		head = append(head, "\r\n"...)
		return true
	})
	head = append(head, "\r\n"...)
	head = append(head, body...)
	nho := l.nho
	l.handoffs.Add(1)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		select {
		case nho.conns <- &frontConn{Conn: c, head: head, handedOff: true}:
		case <-nho.done:
			c.Close()
		}
	})
}

// eachRawHeader calls f with the name and the whole line of every header
// field in a raw header block (obsolete line folding included in the line
// it continues), until f returns false.
func eachRawHeader(raw []byte, f func(name, line []byte) bool) {
	for len(raw) > 0 {
		end := bytes.IndexByte(raw, '\n')
		if end < 0 {
			end = len(raw)
		}
		// Extend over folded continuation lines.
		for end+1 < len(raw) && (raw[end+1] == ' ' || raw[end+1] == '\t') {
			next := bytes.IndexByte(raw[end+1:], '\n')
			if next < 0 {
				end = len(raw)
				break
			}
			end += 1 + next
		}
		line := raw[:end]
		if end < len(raw) {
			raw = raw[end+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		if !f(line[:colon], line) {
			return
		}
	}
}
