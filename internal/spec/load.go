package spec

import (
	"fmt"
	"net/http"
	"strings"
)

// Load is the built-in load generator, for services with too little
// traffic to judge: while analysis runs, it sends Rate requests a second
// through the proxy to the canary, like users' traffic; the history says
// how much of each sample it generated.
type Load struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000

	// Rate is the requests a second it sends.
	Rate int `json:"rate" range:"1,10000"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256

	// Concurrency is how many requests may be in flight at once.
	Concurrency int `json:"concurrency,omitempty" range:"1,256"`
	// Path is the request path (and query), starting with "/".
	Path string `json:"path,omitempty"`
	// Method is the HTTP method (default GET).
	Method string `json:"method,omitempty"`
	// Headers are added to every request.
	Headers map[string]string `json:"headers,omitempty"`
}

// Load defaults.
const (
	DefaultLoadConcurrency = 4
	DefaultLoadPath        = "/"
)

func (l *Load) defaults() {
	setInt(&l.Concurrency, DefaultLoadConcurrency)
	setString(&l.Path, DefaultLoadPath)
	setString(&l.Method, http.MethodGet)
}

func (v *validator) load() {
	a := v.s.Spec.Analysis
	if a == nil || a.Load == nil {
		return
	}
	l := a.Load
	const p = "spec.analysis.load"
	if !strings.HasPrefix(l.Path, "/") || strings.ContainsAny(l.Path, " \r\n") {
		v.add(p+".path", quote(l.Path), `must start with "/" and hold no spaces, like "/api/health?probe=1"`)
	}
	if !isToken(l.Method) {
		v.add(p+".method", quote(l.Method), "must be an HTTP method, like GET or POST")
	}
	for k, val := range l.Headers {
		if !isToken(k) {
			v.add(fmt.Sprintf("%s.headers[%q]", p, k), quote(k), tokenWant)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(fmt.Sprintf("%s.headers[%q]", p, k), quote(val), "must not contain CR, LF or NUL")
		}
	}
}
