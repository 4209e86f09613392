package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingBackend counts the connections a backend accepted and closed.
type countingBackend struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func newCountingBackend(t *testing.T, h http.HandlerFunc) *countingBackend {
	t.Helper()
	cb := &countingBackend{Server: httptest.NewUnstartedServer(h)}
	cb.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			cb.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			cb.closed.Add(1)
		}
	}
	cb.Start()
	t.Cleanup(cb.Close)
	return cb
}

func (cb *countingBackend) host() string { return strings.TrimPrefix(cb.URL, "http://") }

// newTestUpstream returns an upstream whose fallback fails the test.
func newTestUpstream(t *testing.T, idleTimeout time.Duration) *upstream {
	t.Helper()
	fb := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		t.Errorf("%s %s went to the fallback transport", r.Method, r.URL)
		return nil, errors.New("fallback")
	})
	d := &net.Dialer{Timeout: 5 * time.Second}
	u := newUpstream(d.DialContext, fb, 4, idleTimeout)
	t.Cleanup(u.CloseIdleConnections)
	return u
}

// do sends one request through u and reads the whole body.
func do(t *testing.T, u *upstream, method, url, body string, hdr http.Header) (int, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := u.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

func ok(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func TestUpstreamReusesConnections(t *testing.T) {
	be := newCountingBackend(t, ok)
	u := newTestUpstream(t, time.Minute)
	for i := range 20 {
		if code, body, err := do(t, u, http.MethodGet, be.URL, "", nil); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q %v", i, code, body, err)
		}
	}
	if n := be.opened.Load(); n != 1 {
		t.Errorf("20 sequential requests opened %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if code, _, err := do(t, u, http.MethodGet, be.URL, "", nil); err != nil || code != 200 {
					t.Errorf("concurrent GET: %d %v", code, err)
				}
			}
		})
	}
	wg.Wait()
	if n := be.opened.Load(); n > 4 {
		t.Errorf("4 concurrent clients opened %d connections, want at most 4", n)
	}
	if n := u.idleCount(be.host()); n < 1 || n > 4 {
		t.Errorf("%d idle connections, want 1-4", n)
	}
}

// staleBackend answers the first request of every connection and, in
// "drop" mode, reads later requests on it whole and closes the connection
// without answering: a keep-alive the target closed as the request arrived.
type staleBackend struct {
	*countingBackend
	mu    sync.Mutex
	seen  map[string]int // requests per remote address
	gets  atomic.Int64
	posts atomic.Int64
}

func newStaleBackend(t *testing.T) *staleBackend {
	sb := &staleBackend{seen: make(map[string]int)}
	sb.countingBackend = newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodPost {
			sb.posts.Add(1)
		} else {
			sb.gets.Add(1)
		}
		sb.mu.Lock()
		sb.seen[r.RemoteAddr]++
		n := sb.seen[r.RemoteAddr]
		sb.mu.Unlock()
		if n > 1 {
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				c.Close()
			}
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	return sb
}

func TestUpstreamStaleConnection(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string
		body       string
		hdr        http.Header
		wantOK     bool
		wantSent   int64 // requests of method the backend received, first one included
		wantOpened int64
	}{
		{name: "GET is replayed on a fresh connection", method: http.MethodGet, wantOK: true, wantSent: 3, wantOpened: 2},
		{name: "HEAD is replayed on a fresh connection", method: http.MethodHead, wantOK: true, wantSent: 3, wantOpened: 2},
		{name: "POST with Idempotency-Key is replayed", method: http.MethodPost, hdr: http.Header{"Idempotency-Key": {"k"}}, wantOK: true, wantSent: 3, wantOpened: 2},
		{name: "POST with a body is never replayed", method: http.MethodPost, body: "payload", wantOK: false, wantSent: 2, wantOpened: 1},
		{name: "DELETE is never replayed", method: http.MethodDelete, wantOK: false, wantSent: 2, wantOpened: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := newStaleBackend(t)
			u := newTestUpstream(t, time.Minute)
			// The first request leaves one idle keep-alive connection.
			if code, _, err := do(t, u, tc.method, sb.URL, tc.body, tc.hdr); err != nil || code != 200 {
				t.Fatalf("first request: %d %v", code, err)
			}
			code, _, err := do(t, u, tc.method, sb.URL, tc.body, tc.hdr)
			if tc.wantOK && (err != nil || code != 200) {
				t.Errorf("second request: %d %v, want 200", code, err)
			}
			if !tc.wantOK && err == nil {
				t.Errorf("second request: %d, want an error", code)
			}
			sent := sb.gets.Load()
			if tc.method == http.MethodPost {
				sent = sb.posts.Load()
			}
			if sent != tc.wantSent {
				t.Errorf("backend received %d %s requests, want %d", sent, tc.method, tc.wantSent)
			}
			if n := sb.opened.Load(); n != tc.wantOpened {
				t.Errorf("%d connections opened, want %d", n, tc.wantOpened)
			}
		})
	}
}

// TestUpstreamClosedWhileIdle: the target closed an idle keep-alive; a GET
// finds out on its first read and is replayed, a POST is not sent on it.
func TestUpstreamClosedWhileIdle(t *testing.T) {
	for _, tc := range []struct{ name, method, body string }{
		{"GET", http.MethodGet, ""},
		{"POST", http.MethodPost, "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var posts atomic.Int64
			be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					posts.Add(1)
				}
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = io.WriteString(w, "ok")
			})
			u := newTestUpstream(t, time.Minute)
			if code, _, err := do(t, u, tc.method, be.URL, tc.body, nil); err != nil || code != 200 {
				t.Fatalf("first request: %d %v", code, err)
			}
			be.CloseClientConnections()
			eventually(t, 5*time.Second, "the backend to close the idle connection", func() bool { return be.closed.Load() == 1 })
			if code, _, err := do(t, u, tc.method, be.URL, tc.body, nil); err != nil || code != 200 {
				t.Fatalf("request after the target closed the idle connection: %d %v", code, err)
			}
			if n := be.opened.Load(); n != 2 {
				t.Errorf("%d connections opened, want 2", n)
			}
			if tc.method == http.MethodPost && posts.Load() != 2 {
				t.Errorf("backend received %d POSTs, want 2", posts.Load())
			}
		})
	}
}

func TestUpstreamIdleTimeout(t *testing.T) {
	be := newCountingBackend(t, ok)
	u := newTestUpstream(t, 50*time.Millisecond)
	if code, _, err := do(t, u, http.MethodGet, be.URL, "", nil); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	eventually(t, 5*time.Second, "the idle connection to be closed", func() bool { return be.closed.Load() == 1 })
	if n := u.idleCount(be.host()); n != 0 {
		t.Errorf("%d idle connections after the idle timeout, want 0", n)
	}
	// The pool still works, and the sweep re-arms.
	if code, _, err := do(t, u, http.MethodGet, be.URL, "", nil); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	eventually(t, 5*time.Second, "the second idle connection to be closed", func() bool { return be.closed.Load() == 2 })
}

func TestUpstreamCloseIdleConnections(t *testing.T) {
	be := newCountingBackend(t, ok)
	u := newTestUpstream(t, time.Minute)
	if code, _, err := do(t, u, http.MethodGet, be.URL, "", nil); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	if n := u.idleCount(be.host()); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	u.CloseIdleConnections()
	if n := u.idleCount(be.host()); n != 0 {
		t.Errorf("%d idle connections after CloseIdleConnections, want 0", n)
	}
	eventually(t, 5*time.Second, "the backend to see the connection closed", func() bool { return be.closed.Load() == 1 })
}

func TestUpstreamNotPooled(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		read    func(io.Reader) error
	}{
		{"Connection: close", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}, func(r io.Reader) error { _, err := io.ReadAll(r); return err }},
		{"body not read to the end", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, big)
		}, func(r io.Reader) error { _, err := r.Read(make([]byte, 1)); return err }},
		{"unbounded HTTP/1.0 style body", func(w http.ResponseWriter, _ *http.Request) {
			c, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\n\r\nuntil close")
			_ = brw.Flush()
		}, func(r io.Reader) error { _, err := io.ReadAll(r); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := newCountingBackend(t, tc.handler)
			u := newTestUpstream(t, time.Minute)
			req, _ := http.NewRequest(http.MethodGet, be.URL, nil)
			res, err := u.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.read(res.Body); err != nil {
				t.Fatalf("read body: %v", err)
			}
			res.Body.Close()
			if n := u.idleCount(be.host()); n != 0 {
				t.Errorf("%d idle connections, want 0", n)
			}
			eventually(t, 5*time.Second, "the connection to be closed", func() bool { return be.closed.Load() == 1 })
			if code, _, err := do(t, u, http.MethodGet, be.URL, "", nil); err != nil || code != 200 {
				t.Fatalf("next GET: %d %v", code, err)
			}
			if n := be.opened.Load(); n != 2 {
				t.Errorf("%d connections opened, want 2 (the first one not reused)", n)
			}
		})
	}
}

func TestUpstreamCancelMidResponse(t *testing.T) {
	release := make(chan struct{})
	be := newCountingBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	u := newTestUpstream(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
	res, err := u.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatalf("read the first part: %v", err)
	}
	cancel()
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Error("reading after cancellation succeeded, want an error")
	}
	res.Body.Close()
	eventually(t, 5*time.Second, "the connection to be closed", func() bool { return be.closed.Load() == 1 })
	if n := u.idleCount(be.host()); n != 0 {
		t.Errorf("%d idle connections after cancellation, want 0", n)
	}
}

func TestUpstreamCancelBeforeResponse(t *testing.T) {
	be := newCountingBackend(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	u := newTestUpstream(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
	_, err := u.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	eventually(t, 5*time.Second, "the connection to be closed", func() bool { return be.closed.Load() == 1 })
}

func TestUpstreamFallback(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(url string) *http.Request
		fast bool
	}{
		{"GET", func(u string) *http.Request { r, _ := http.NewRequest("GET", u, nil); return r }, true},
		{"small POST", func(u string) *http.Request { r, _ := http.NewRequest("POST", u, strings.NewReader("x")); return r }, true},
		{"large POST", func(u string) *http.Request {
			r, _ := http.NewRequest("POST", u, strings.NewReader(strings.Repeat("x", maxFastBody+1)))
			return r
		}, false},
		{"streamed POST", func(u string) *http.Request {
			r, _ := http.NewRequest("POST", u, io.NopCloser(strings.NewReader("x")))
			return r
		}, false},
		{"upgrade", func(u string) *http.Request {
			r, _ := http.NewRequest("GET", u, nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}, false},
		{"expect continue", func(u string) *http.Request {
			r, _ := http.NewRequest("POST", u, strings.NewReader("x"))
			r.Header.Set("Expect", "100-continue")
			return r
		}, false},
		{"https", func(string) *http.Request { r, _ := http.NewRequest("GET", "https://127.0.0.1:1/", nil); return r }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fast(tc.req("http://127.0.0.1:1/")); got != tc.fast {
				t.Errorf("fast = %v, want %v", got, tc.fast)
			}
		})
	}
}

// TestUpstreamTrailersAndChunked: a chunked response with trailers keeps
// its trailers and the connection is reused afterwards.
func TestUpstreamTrailersAndChunked(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "b")
		w.Header().Set("X-Sum", "2")
	})
	u := newTestUpstream(t, time.Minute)
	for i := range 2 {
		req, _ := http.NewRequest(http.MethodGet, be.URL, nil)
		res, err := u.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || string(b) != "ab" || res.Trailer.Get("X-Sum") != "2" {
			t.Errorf("request %d: body %q, trailer %v, error %v", i, b, res.Trailer, err)
		}
	}
	if n := be.opened.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
}

// TestUpstream1xx: informational responses reach the client trace and the
// final response follows.
func TestUpstream1xx(t *testing.T) {
	be := newCountingBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "ok")
	})
	u := newTestUpstream(t, time.Minute)
	var got []int
	ctx := httptraceWith1xx(context.Background(), func(code int) { got = append(got, code) })
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, be.URL, nil)
	res, err := u.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "ok" || len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Errorf("status %d body %q 1xx %v, want 200 \"ok\" [103]", res.StatusCode, b, got)
	}
}

func httptraceWith1xx(ctx context.Context, fn func(int)) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { fn(code); return nil },
	})
}

// TestWriteRequest: the hand-written request header reads back the same as
// Request.Write's.
func TestWriteRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		url    string
		host   string
		hdr    http.Header
		body   string
	}{
		{name: "GET", method: "GET", url: "http://10.0.0.1:80/a/b", hdr: http.Header{"Accept": {"*/*"}, "User-Agent": {"curl/8"}}},
		{name: "HEAD with query and Host kept", method: "HEAD", url: "http://10.0.0.1:80/p?q=1&r=%20", host: "example.com:8080"},
		{name: "no User-Agent gets Go's", method: "GET", url: "http://h/"},
		{name: "empty User-Agent is left out", method: "GET", url: "http://h/", hdr: http.Header{"User-Agent": {""}}},
		{name: "repeated header keeps its order", method: "GET", url: "http://h/", hdr: http.Header{"X-A": {"1", "2", "3"}, "Cookie": {"a=b; c=d"}}},
		{name: "escaped path", method: "GET", url: "http://h/a%2Fb/c d"},
		{name: "IPv6 host", method: "GET", url: "http://[::1]:8080/"},
		{name: "newline in a value falls back", method: "GET", url: "http://h/", hdr: http.Header{"X-Bad": {"a\r\nX-Injected: 1"}}},
		{name: "bad header name falls back", method: "GET", url: "http://h/", hdr: http.Header{"X Bad": {"v"}}},
		{name: "padded value falls back", method: "GET", url: "http://h/", hdr: http.Header{"X-Pad": {" v "}}},
		{name: "POST falls back", method: "POST", url: "http://h/", body: "data"},
		{name: "DELETE falls back", method: "DELETE", url: "http://h/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mk := func() *http.Request {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				r, err := http.NewRequest(tc.method, tc.url, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tc.hdr {
					r.Header[k] = v
				}
				if tc.host != "" {
					r.Host = tc.host
				}
				return r
			}
			var want, got strings.Builder
			if err := mk().Write(&want); err != nil {
				t.Fatal(err)
			}
			bw := bufio.NewWriter(&got)
			if err := writeRequest(bw, mk()); err != nil {
				t.Fatal(err)
			}
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			parse := func(s string) *http.Request {
				r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s)))
				if err != nil {
					t.Fatalf("parse %q: %v", s, err)
				}
				b, _ := io.ReadAll(r.Body)
				r.Header.Set("X-Test-Body", string(b))
				return r
			}
			w, g := parse(want.String()), parse(got.String())
			if g.Method != w.Method || g.RequestURI != w.RequestURI || g.Host != w.Host || !reflect.DeepEqual(g.Header, w.Header) {
				t.Errorf("hand-written request\n%q\nreads back differently from Request.Write's\n%q", got.String(), want.String())
			}
			if strings.Contains(got.String(), "X-Injected") && !strings.Contains(want.String(), "X-Injected") {
				t.Errorf("header injection: %q", got.String())
			}
		})
	}
}
