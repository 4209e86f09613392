package proxy

import (
	"net/http"
	"time"
)

// proxied is the state both front ends keep for one proxied request (the
// fast path's fastReq and net/http's reqState embed it): the table it was
// routed by, its version, the target it is on and those it tried, and its
// outcome.
type proxied struct {
	tbl    *table
	ver    *version
	target *target
	tried  [4]*target
	ntried int
	start  time.Time
	code   int  // the status answered; 0 until known
	failed bool // the outcome counts as the version's error (outcome.go)
	// headerAt is set for WebSockets and event streams: their latency is the
	// time to the response header, not the life of the stream.
	headerAt time.Time
	// generated marks a request of the load generator.
	generated bool
}

// begin puts the request, admitted at start, on target t of version v.
func (s *proxied) begin(tbl *table, v *version, t *target, start time.Time) {
	s.tbl, s.ver, s.target, s.start = tbl, v, t, start
	s.tried[0], s.ntried = t, 1
	t.inflight.Add(1)
}

// retryTarget moves the request, whose attempt (0 for the first) failed
// with err in a way retryable allows, to a routable target of its version
// it has not tried, and returns that target; nil when the retries are used
// up or no such target is left.
func (s *proxied) retryTarget(p *Proxy, attempt int, err error) *target {
	if attempt >= s.tbl.retries || s.ntried >= len(s.tried) {
		return nil
	}
	next := s.ver.pick(time.Now().UnixNano(), s.tried[:s.ntried])
	if next == nil {
		return nil
	}
	s.target.inflight.Add(-1)
	next.inflight.Add(1)
	s.target = next
	s.tried[s.ntried] = next
	s.ntried++
	p.log.Debug("retrying on another target", "service", s.ver.service, "version", s.ver.name, "target", next.addr, "error", err)
	return next
}

// end takes the request off its target and records its outcome: as a
// request of the version, or, when the client caused it, only in
// requests_total (outcome.go). A request that never got a status is a 502.
func (s *proxied) end(p *Proxy, clientFault bool) {
	s.target.inflight.Add(-1)
	code := s.code
	if code == 0 {
		code = http.StatusBadGateway
	}
	if clientFault {
		p.countOnly(s.ver, code)
		return
	}
	p.recordUntil(s.ver, s.start, s.headerAt, code, s.failed, s.generated)
}
