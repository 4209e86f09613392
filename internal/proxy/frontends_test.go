package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/spec"
)

// seenRequest is what a target saw of one proxied request.
type seenRequest struct {
	line   string // method, request-URI and protocol
	host   string
	header http.Header
	body   string
}

// recorder is a target that keeps what it saw of the last request to each
// path and answers by path: /echo with hop-by-hop fields of its own, /reset
// by resetting the connection, /hang by waiting for the proxy to give up.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]seenRequest
	hung chan struct{} // receives when a /hang request arrived
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rc := &recorder{seen: make(map[string]seenRequest), hung: make(chan struct{}, 16)}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *recorder) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		return
	}
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.seen[r.URL.Path] = seenRequest{
		line: r.Method + " " + r.RequestURI + " " + r.Proto, host: r.Host,
		header: r.Header.Clone(), body: string(body),
	}
	rc.mu.Unlock()
	switch r.URL.Path {
	case "/echo":
		h := w.Header()
		h.Set("Connection", "X-Resp-Hop")
		h.Set("X-Resp-Hop", "dropped")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Connection", "keep-alive")
		h.Set("X-Kept", "kept")
		h.Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "echo:"+string(body))
	case "/reset":
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	case "/hang":
		rc.hung <- struct{}{}
		<-r.Context().Done()
	}
}

func (rc *recorder) last(path string) (seenRequest, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s, ok := rc.seen[path]
	delete(rc.seen, path)
	return s, ok
}

// seenResponse is what a client saw of one response.
type seenResponse struct {
	status int
	header http.Header
	body   string
}

// rawDo sends a request (its head without the final CRLF, and its body) on a
// fresh connection to addr and reads the response.
func rawDo(addr, method, head, body string) (seenResponse, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return seenResponse{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head+"\r\n"+body); err != nil {
		return seenResponse{}, err
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return seenResponse{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return seenResponse{}, err
	}
	h := res.Header.Clone()
	h.Del("Date") // the target's, or the proxy's when it answers itself
	if res.ContentLength >= 0 {
		// net/http keeps Content-Length in ReadResponse's header only when
		// it was sent; make "Content-Length: 0" and a known length agree.
		h.Set("Content-Length", fmt.Sprint(res.ContentLength))
	}
	return seenResponse{res.StatusCode, h, string(b)}, nil
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// normalised replaces what legitimately differs between two runs of the
// same request: a generated request id.
func (s seenRequest) normalised() seenRequest {
	s.header = s.header.Clone()
	if id := s.header.Get("X-Request-Id"); generatedID.MatchString(id) {
		s.header.Set("X-Request-Id", "<generated>")
	}
	return s
}

func diffHeader(a, b http.Header) []string {
	var out []string
	keys := make(map[string]bool)
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		if !slices.Equal(a[k], b[k]) {
			out = append(out, fmt.Sprintf("%s: fast %q, net/http %q", k, a[k], b[k]))
		}
	}
	slices.Sort(out)
	return out
}

// TestFrontEndsAgree sends the same requests through the fasthttp front end
// and the net/http one (forced with the hand-off header) and compares what
// the target sees (request line, header fields after hop-by-hop removal,
// X-Forwarded-*, X-Request-Id, body) and what the client sees (status,
// header fields, body), for plain proxying, a retry onto a second target
// after a connect failure, a target that resets (502), one that is too slow
// (504) and a client that leaves (499, counted the same way).
func TestFrontEndsAgree(t *testing.T) {
	rc := newRecorder(t)
	live := strings.TrimPrefix(rc.URL, "http://")
	// The dead target answers its first health probe, then stops
	// listening: connecting to it is refused from then on.
	gone := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer gone.Close()
	dead := strings.TrimPrefix(gone.URL, "http://")

	// One proxy per service: each needs a listener of its own on 127.0.0.1:0.
	proxies := make(map[string]*Proxy)
	svc := func(name string, targets ...string) *spec.Service {
		s := testService(name, "v1", spec.Version{Name: "v1", Targets: targets})
		// The dead target stays routable (no probe after the first, never
		// enough failures to eject it), so requests keep landing on it.
		s.Spec.HealthCheck.Interval.Duration = time.Hour
		s.Spec.HealthCheck.Passive.ConsecutiveFailures = 1000
		return s
	}
	slow := svc("slow", live)
	slow.Spec.Proxy.UpstreamTimeout.Duration = 300 * time.Millisecond
	for _, s := range []*spec.Service{svc("web", live), svc("retry", dead, live), slow} {
		p := newTestProxy(t, nil)
		mustApply(t, p, s)
		proxies[s.Metadata.Name] = p
	}
	addrOf := func(name string) string { return proxies[name].Addr(name).String() }
	targetOf := func(name, host string) *target {
		p := proxies[name]
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, tg := range p.services[name].versions["v1"].list() {
			if tg.host == host {
				return tg
			}
		}
		return nil
	}
	eventually(t, 5*time.Second, "the dead target's first probe", func() bool {
		return targetOf("retry", dead).health.Healthy(time.Now().UnixNano())
	})
	gone.Close()

	fronts := []struct{ name, extra string }{
		{"fast", ""},
		{"net/http", handoffHeader + ": 1\r\n"},
	}
	cases := []struct {
		name, svc, path string
		head            string // header fields after the request line, each ending in CRLF
		body            string
		status          int
	}{
		{"hop-by-hop fields", "web", "/echo?q=1",
			"Connection: X-Foo, keep-alive\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n" +
				"TE: gzip\r\nProxy-Authorization: Basic eA==\r\nX-Kept: yes\r\nUser-Agent: test/1\r\n", "", 200},
		{"te trailers kept", "web", "/echo", "TE: trailers\r\n", "", 200},
		{"request id kept", "web", "/echo", "X-Request-Id: client-id-1\r\n", "", 200},
		{"empty request id replaced", "web", "/echo", "X-Request-Id: \r\n", "", 200},
		{"forwarded fields set afresh", "web", "/echo", "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4\r\n", "", 200},
		{"post body", "web", "/echo", "Content-Type: text/plain\r\nContent-Length: 5\r\n", "hello", 200},
		{"head", "web", "/echo", "", "", 200},
		{"retry after connect failure", "retry", "/echo", "", "", 200},
		{"target resets", "web", "/reset", "", "", 502},
		{"upstream timeout", "slow", "/hang", "", "", 504},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			switch {
			case tc.body != "":
				method = "POST"
			case tc.name == "head":
				method = "HEAD"
			}
			var reqs []seenRequest
			var ress []seenResponse
			for _, fe := range fronts {
				// Several tries for the retry case: the first pick is random.
				n := 1
				if tc.svc == "retry" {
					n = 12
				}
				for range n {
					head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: app.example\r\n%s%s", method, tc.path, tc.head, fe.extra)
					res, err := rawDo(addrOf(tc.svc), method, head, tc.body)
					if err != nil {
						t.Fatalf("%s: %v", fe.name, err)
					}
					if res.status != tc.status {
						t.Errorf("%s: status %d, want %d", fe.name, res.status, tc.status)
					}
					path, _, _ := strings.Cut(tc.path, "?")
					seen, ok := rc.last(path)
					if !ok {
						t.Fatalf("%s: the target saw no request", fe.name)
					}
					reqs = append(reqs[:len(reqs):len(reqs)], seen.normalised())
					ress = append(ress[:len(ress):len(ress)], res)
				}
				if tc.status == 504 {
					<-rc.hung
				}
			}
			fast, slowFront := reqs[0], reqs[len(reqs)-1]
			if fast.line != slowFront.line || fast.host != slowFront.host || fast.body != slowFront.body {
				t.Errorf("target saw %q host %q body %q through the fast path, %q host %q body %q through net/http",
					fast.line, fast.host, fast.body, slowFront.line, slowFront.host, slowFront.body)
			}
			if d := diffHeader(fast.header, slowFront.header); len(d) > 0 {
				t.Errorf("target saw different header fields:\n%s", strings.Join(d, "\n"))
			}
			for _, h := range []string{"Connection", "X-Foo", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Upgrade", handoffHeader} {
				if v, ok := fast.header[h]; ok {
					t.Errorf("target saw %s: %q through the fast path", h, v)
				}
				if v, ok := slowFront.header[h]; ok {
					t.Errorf("target saw %s: %q through net/http", h, v)
				}
			}
			for _, s := range []seenRequest{fast, slowFront} {
				if s.header.Get("X-Forwarded-For") != "127.0.0.1" || s.header.Get("X-Forwarded-Host") != "app.example" || s.header.Get("X-Forwarded-Proto") != "http" {
					t.Errorf("X-Forwarded-For/-Host/-Proto = %q/%q/%q, want 127.0.0.1/app.example/http",
						s.header.Get("X-Forwarded-For"), s.header.Get("X-Forwarded-Host"), s.header.Get("X-Forwarded-Proto"))
				}
				if s.header.Get("X-Request-Id") == "" {
					t.Error("target saw no X-Request-Id")
				}
			}
			for _, r := range ress[1:] {
				a := ress[0]
				if a.status != r.status || a.body != r.body {
					t.Errorf("client saw %d %q through the fast path, %d %q through net/http", a.status, a.body, r.status, r.body)
				}
				if d := diffHeader(a.header, r.header); len(d) > 0 {
					t.Errorf("client saw different header fields:\n%s", strings.Join(d, "\n"))
				}
			}
			if tc.svc == "retry" {
				if targetOf("retry", dead).health.ConsecutiveFailures() == 0 {
					t.Error("no request was tried on the dead target first: the retry was not exercised")
				}
			}
		})
	}

	t.Run("client leaves", func(t *testing.T) {
		p := proxies["web"]
		count := func() float64 {
			return testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", "499"))
		}
		for _, fe := range fronts {
			before, errs := count(), p.Window("web", "v1", time.Minute).Errors
			c, err := net.Dial("tcp", addrOf("web"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "GET /hang HTTP/1.1\r\nHost: app.example\r\n%s\r\n", fe.extra)
			<-rc.hung
			c.Close()
			eventually(t, 5*time.Second, fe.name+": a 499 recorded", func() bool { return count() == before+1 })
			if e := p.Window("web", "v1", time.Minute).Errors; e != errs {
				t.Errorf("%s: a client that left counted as %d errors of the version, want none", fe.name, e-errs)
			}
		}
	})
}
