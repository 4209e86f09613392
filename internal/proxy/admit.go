package proxy

import (
	"net/http"
	"time"

	sources "github.com/switchyard/switchyard/internal/metrics"
)

// admission is what admit decided about one request.
type admission struct {
	ver    *version // nil when the service has no route
	target *target
	// status, when not 0, is the proxy's own answer (reason is its body):
	// the request goes no further. It has been counted already.
	status int
	reason string
	// netHTTP tells the fast path to hand the request to net/http (a
	// version has an https or h2c target); nothing was counted.
	netHTTP bool
	// newID reports that the request has no X-Request-Id: the proxy makes
	// one for the target.
	newID bool
	// generated marks a request of Switchyard's own load generator: it goes
	// to the canary and is counted apart (Sample.Generated).
	generated bool
}

// loadHeader carries the load generator's token (SetLoadToken); a request
// with the service's current token goes to the canary. It is never sent
// to a target.
const loadHeader = sources.LoadHeader

// admit is the admission step of both front ends, before anything is sent:
// route the request by tbl to a version and target ("no route" or "no
// target" 503), refuse a declared body larger than maxBodyBytes (413, the
// client's outcome), and decide whether it needs a request id. r is the
// request as routing sees it and contentLength its declared body length
// (-1 when unknown: a streamed body is limited as it is read). plainOnly
// asks for the fast path's limit: only plain http targets.
func (p *Proxy) admit(tbl *table, r request, contentLength int64, start time.Time, plainOnly bool) admission {
	if tbl == nil || tbl.stable == nil && len(tbl.picks) == 0 {
		return admission{status: http.StatusServiceUnavailable, reason: "no route"}
	}
	if plainOnly {
		for _, v := range tbl.versions {
			if !v.plainHTTP.Load() {
				return admission{netHTTP: true}
			}
		}
	}
	if a, ok := p.admitLoad(tbl, r, start, plainOnly); ok {
		return a
	}
	v, t := tbl.route(r, start)
	if t == nil {
		p.countOnly(v, http.StatusServiceUnavailable)
		return admission{ver: v, status: http.StatusServiceUnavailable, reason: "no target"}
	}
	if plainOnly && (t.scheme != "http" || t.h2c) {
		return admission{netHTTP: true} // a target changed since the check above
	}
	if tbl.maxBody > 0 && contentLength > tbl.maxBody {
		p.countOnly(v, http.StatusRequestEntityTooLarge)
		return admission{ver: v, target: t, status: http.StatusRequestEntityTooLarge, reason: "request body too large"}
	}
	id, _ := r.headerValue("X-Request-Id")
	return admission{ver: v, target: t, newID: id == ""}
}

// admitLoad routes a request of the load generator to the canary. While
// no generator runs it costs a request one string-length test.
func (p *Proxy) admitLoad(tbl *table, r request, start time.Time, plainOnly bool) (admission, bool) {
	if tbl.loadToken == "" || tbl.canary == nil {
		return admission{}, false
	}
	if h, ok := r.headerValue(loadHeader); !ok || h != tbl.loadToken {
		return admission{}, false
	}
	v := tbl.canary
	t := v.pick(start.UnixNano(), nil)
	if t == nil {
		p.countOnly(v, http.StatusServiceUnavailable)
		return admission{ver: v, status: http.StatusServiceUnavailable, reason: "no target"}, true
	}
	if plainOnly && (t.scheme != "http" || t.h2c) {
		return admission{netHTTP: true}, true
	}
	id, _ := r.headerValue("X-Request-Id")
	return admission{ver: v, target: t, newID: id == "", generated: true}, true
}
