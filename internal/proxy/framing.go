package proxy

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/valyala/fasthttp"
)

// HTTP/1.1 message framing (RFC 9112) is decided in one place for both front
// ends. Every HTTP/1 request on a plain listener is parsed first by the fast
// path's fasthttp.Server (front.go), including the requests it then hands to
// net/http, so framingFault, called from its HeaderReceived hook before any
// body byte is read and before routing, is the admission of framing for
// both. What fasthttp itself refuses (400, and 431 for a header too large)
// is answered before that hook: a duplicate Content-Length (even with the
// same value), a Content-Length that is not a number, a Transfer-Encoding
// other than "chunked" or "identity" or given twice, Transfer-Encoding on
// HTTP/1.0, whitespace before a field's colon, CR, LF or NUL inside a field
// value, a method that is not a token and a request target with controls.
//
// A connection that net/http serves on its own (the requests after a
// hand-off, HTTP/1.1 over TLS) is parsed by net/http, which has no hook
// before its framing decision: see closeAmbiguous.
//
// None of these refusals is a request of any version (outcome.go): they are
// answered before routing, with the connection closed, because the rest of
// the stream cannot be framed.

// framingFault returns the status a request header must be refused with,
// or 0 when its framing is unambiguous. It costs a well-formed HTTP/1.1
// request one comparison of the protocol and a test of the first byte of
// each header line.
func framingFault(h *fasthttp.RequestHeader) int {
	if p := h.Protocol(); string(p) != "HTTP/1.1" {
		// fasthttp accepts any HTTP/d.d. A higher minor version is HTTP/1.1
		// to us (RFC 9112 §2.3); another major version outside the HTTP/2
		// preface is not this protocol (RFC 9110 §15.6.6).
		if len(p) != len("HTTP/1.1") || p[5] != '1' {
			return http.StatusHTTPVersionNotSupported
		}
	}
	raw := h.RawHeaders()
	te, cl := false, false
	for i := 0; i < len(raw); {
		switch c := raw[i]; {
		case c == ' ' || c == '\t':
			// Obsolete line folding (RFC 9112 §5.2), or whitespace before
			// the first field (§2.2): fasthttp joins the folded value but
			// the raw lines the fast path forwards would still carry it,
			// and a target may split it differently. nginx refuses both.
			return http.StatusBadRequest
		case c|0x20 == 't':
			te = te || hasPrefixFold(raw[i:], "transfer-encoding:")
		case c|0x20 == 'c':
			cl = cl || hasPrefixFold(raw[i:], "content-length:")
		}
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	switch {
	case !te:
		return 0
	case cl:
		// Content-Length with Transfer-Encoding (RFC 9112 §6.1, §6.3): a
		// front proxy that honours Content-Length would frame the stream
		// differently (request smuggling, §11.2). Refused, as nginx does.
		return http.StatusBadRequest
	case h.ContentLength() != -1:
		// "identity" (removed from HTTP/1.1, RFC 9112 §7): fasthttp would
		// read no body and parse the body as the next request. A coding the
		// server does not understand is 501 (§6.1), as nginx answers.
		return http.StatusNotImplemented
	}
	return 0
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

// framingStatus is the value of handoffHeader that marks a request
// framingFault refused, by status; any other value is a hand-off.
func framingStatus(mark []byte) int {
	switch string(mark) {
	case "400":
		return http.StatusBadRequest
	case "501":
		return http.StatusNotImplemented
	case "505":
		return http.StatusHTTPVersionNotSupported
	}
	return 0
}

// framingMark is framingStatus's inverse.
func framingMark(code int) string {
	switch code {
	case http.StatusNotImplemented:
		return "501"
	case http.StatusHTTPVersionNotSupported:
		return "505"
	}
	return "400"
}

// closeAmbiguous reports whether net/http served a request whose framing
// it may have decided differently from a front proxy, so the connection
// must close after the response. net/http lets Transfer-Encoding: chunked
// override Content-Length and deletes the latter before any hook sees the
// request (RFC 9112 §6.3 allows processing as chunked only when the
// connection closes afterwards). The first request of a connection the fast
// path handed off was checked by framingFault already; the requests after
// it, and those of HTTP/1.1 over TLS, net/http parsed itself. It is called
// once per request, in order (an HTTP/1 connection serves one at a time).
// slot is the connection's (nil on HTTP/2).
func closeAmbiguous(slot *connSlot, r *http.Request) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	if slot != nil && slot.checked {
		slot.checked = false
		return false
	}
	return len(r.TransferEncoding) > 0
}

// dropFieldName reports whether a received field name is not forwarded:
// one with an underscore, as nginx drops them by default
// (underscores_in_headers off), because CGI-style targets map "-" and "_" to
// the same variable, so Transfer_Encoding or X_Forwarded_For would reach
// them as the field the proxy removed or rewrote; and one that is not a
// token (RFC 9110 §5.1), such as a name with a space inside, which
// fasthttp accepts and net/http and nginx refuse or ignore.
func dropFieldName(name string) bool {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		case strings.IndexByte("!#$%&'*+.^`|~", c) >= 0:
		default:
			return true
		}
	}
	return false
}
