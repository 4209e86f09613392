package proxy

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// Who caused an outcome decides where it is counted. This is the one place
// that says so; both front ends call these functions (docs/standalone.md,
// "What counts against a version", says the same to users):
//
//   - The version's failure: a 5xx status from a target, or the 502/504 the
//     proxy answers when a target refused the connection, reset it, sent a
//     malformed response or did not answer within upstreamTimeout. It is an
//     error in the version's window (Sample.Errors) and, for 502/503/504 and
//     transport failures, a passive-health failure of the target.
//   - The version's success: any other status a target answered with,
//     4xx included.
//   - The client left (499) before the response ended: a request of the
//     version, with its latency (a version that hangs shows), never an error.
//   - The client's fault, found by the proxy: a request body with broken
//     framing (400), one that stops arriving within readTimeout (408), that
//     exceeds maxBodyBytes (413) or that the client abandons (499). Not a request of the version at all:
//     neither in its window and latency nor in its targets' health, so a
//     flood of them can neither roll a version back nor dilute its error
//     rate. requests_total counts them under their code.
//   - No target could take the request (503): neither the version's request
//     nor its error; the health gate already knows why.
//
// Malformed request headers and ambiguous framing never reach a version:
// the HTTP servers and framingFault (framing.go) answer them (400, 431,
// 501, 505) before routing.

// clientBody is a request body as the proxy forwards it: it keeps the first
// error reading from the client, so that a failed exchange can be told
// apart from a target's failure. The transport may still read it after the
// handler returned (RoundTripper's contract), so it is its own allocation,
// not part of the pooled request state.
type clientBody struct {
	rc  io.ReadCloser
	err atomic.Pointer[error]
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// fault returns the client's error reading the body, or nil.
func (b *clientBody) fault() error {
	if b == nil {
		return nil
	}
	if e := b.err.Load(); e != nil {
		return *e
	}
	return nil
}

// transportOutcome is the one mapping, for both front ends, from an
// exchange that ended in err before the target's response header to the
// status the client is answered and whether it is the version's failure.
// gone reports that the client left; clientFault is the client's error
// reading its own request body (nil if none), which makes the outcome the
// client's whatever the transport said.
func transportOutcome(err error, gone bool, clientFault error) (code int, failed bool) {
	switch {
	case clientFault != nil:
		return clientFaultStatus(clientFault, gone), false
	case gone:
		return StatusClientClosedRequest, false
	case isTimeout(err):
		return http.StatusGatewayTimeout, true
	}
	return http.StatusBadGateway, true
}

// brokenOutcome is the outcome of a response the target broke after its
// header, with status code: the version's failure, unless the client had
// left (gone), which makes it a 499.
func brokenOutcome(code int, gone bool) (int, bool) {
	if gone {
		return StatusClientClosedRequest, false
	}
	return code, true
}

// clientFaultStatus is the status for a request whose body the client broke
// with err; gone reports that the client's connection is gone.
func clientFaultStatus(err error, gone bool) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case isTimeout(err):
		return http.StatusRequestTimeout
	case errors.Is(err, io.ErrUnexpectedEOF), gone:
		return StatusClientClosedRequest
	}
	return http.StatusBadRequest
}

// countOnly counts a request that says nothing about the version (the
// client broke it, or no target could take it): in requests_total under its
// code, nowhere that judges the version.
func (p *Proxy) countOnly(v *version, code int) {
	v.counter(code).Inc()
}
