package proxy

import (
	"bufio"
	"bytes"
	"net"

	"github.com/valyala/fasthttp"
)

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
// (set afresh, as httputil's Rewrite mode does), an empty request id
// when a new one is made, and names with an underscore or that are not tokens (dropFieldName).
func dropRequestHeader(name, line, conn []byte, newID bool) bool {
	if dropFieldName(b2s(name)) {
		return true // framing.go
	}
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
		return asciiEqualFold(name, "Transfer-Encoding") || asciiEqualFold(name, "X-Forwarded-Proto") || asciiEqualFold(name, loadHeader)
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
