package proxy

import (
	"github.com/switchyard/switchyard/internal/testenv"

	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

var ioReadFull = io.ReadFull

// newWSBackend is a minimal WebSocket-style upgrade echo server: it
// answers 101 and then echoes raw bytes (no framing needed for a proxy test).
func newWSBackend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			return // health checks
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	}))
	t.Cleanup(s.Close)
	return s
}

func dialWebSocket(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Read the response head byte by byte so no echoed byte is buffered away.
	var head []byte
	b := make([]byte, 1)
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := conn.Read(b); err != nil {
			t.Fatalf("reading upgrade response %q: %v", head, err)
		}
		head = append(head, b[0])
	}
	if !strings.HasPrefix(string(head), "HTTP/1.1 101") {
		t.Fatalf("upgrade response = %q, want 101", head)
	}
	conn.SetReadDeadline(time.Time{})
	return conn
}

func TestWebSocket(t *testing.T) {
	ws := newWSBackend(t)
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", &backend{Server: ws})))
	conn := dialWebSocket(t, p.Addr("web").String())
	defer conn.Close()
	for _, m := range []string{"hello", "world", strings.Repeat("x", 100000)} {
		echo(t, conn, m)
	}
}

// TestServerSentEventsFlushImmediately checks that an event stream's first
// event arrives before the stream ends, and that it is served by the fast
// path (no hand-off to net/http), whether or not the client says it wants
// an event stream.
func TestServerSentEventsFlushImmediately(t *testing.T) {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	}))
	defer s.Close()
	defer close(release)
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", &backend{Server: s})))
	for _, accept := range []string{"", "text/event-stream"} {
		req, _ := http.NewRequest(http.MethodGet, proxyURL(t, p, "web")+"/events", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res, err := newClient(1).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(res.Body).ReadString('\n')
		res.Body.Close()
		if err != nil || line != "data: first\n" {
			t.Fatalf("Accept %q: first event = %q, %v; want it before the stream ends", accept, line, err)
		}
	}
	if n := p.services["web"].lis.handoffs.Load(); n != 0 {
		t.Errorf("%d hand-offs, want event streams on the fast path", n)
	}
}

func TestH2CAndTrailers(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("Trailer", "Grpc-Status")
		w.Header().Set("X-Backend-Proto", r.Proto)
		w.Header().Set("Content-Type", "application/grpc")
		_, _ = io.Copy(w, r.Body)
		w.Header().Set("Grpc-Status", "0")
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Config.Protocols.SetHTTP1(true)
	s.Start()
	defer s.Close()
	p := newTestProxy(t, nil)
	v := spec.Version{Name: "v1", Targets: []string{"h2c://" + strings.TrimPrefix(s.URL, "http://")}}
	mustApply(t, p, testService("grpc", "v1", v))

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, proxyURL(t, p, "grpc")+"/pkg.Svc/Method", strings.NewReader("ping"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.Header.Get("X-Backend-Proto") != "HTTP/2.0" {
		t.Errorf("client proto %s, backend proto %q; want HTTP/2 on both legs", res.Proto, res.Header.Get("X-Backend-Proto"))
	}
	if string(body) != "ping" {
		t.Errorf("body = %q, want ping", body)
	}
	if got := res.Trailer.Get("Grpc-Status"); got != "0" {
		t.Errorf("trailer Grpc-Status = %q, want 0", got)
	}
}

func TestTLSHTTP2(t *testing.T) {
	b := newBackend(t, "v1")
	certFile, keyFile := writeCert(t)
	p := newTestProxy(t, nil)
	s := testService("web", "v1", ver("v1", b))
	s.Spec.TLS = &spec.TLS{CertFile: certFile, KeyFile: keyFile}
	mustApply(t, p, s)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + p.Addr("web").String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.Header.Get("X-Backend-Version") != "v1" {
		t.Errorf("got %s from %q, want HTTP/2 from v1", res.Proto, res.Header.Get("X-Backend-Version"))
	}

	// A reload with a missing key file is refused and the old config serves.
	bad := testService("web", "v1", ver("v1", b))
	bad.Spec.TLS = &spec.TLS{CertFile: certFile, KeyFile: filepath.Join(t.TempDir(), "missing.pem")}
	if err := p.Apply(t.Context(), []*spec.Service{bad}); err == nil {
		t.Fatal("Apply with a missing key file succeeded")
	}
	res, err = (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + p.Addr("web").String() + "/")
	if err != nil {
		t.Fatalf("after refused reload: %v", err)
	}
	res.Body.Close()
}

func writeCert(t *testing.T) (certFile, keyFile string) { return testenv.WriteCert(t) }

func TestSizeLimits(t *testing.T) {
	b := newBackend(t, "v1")
	p := newTestProxy(t, nil)
	s := testService("web", "v1", ver("v1", b))
	s.Spec.Proxy.MaxBodyBytes = 100
	s.Spec.Proxy.MaxHeaderBytes = 1024
	mustApply(t, p, s)
	url := proxyURL(t, p, "web")
	cases := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"small body passes", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("ok"))
			return r
		}, 200},
		{"content-length over limit", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(strings.Repeat("x", 1000)))
			return r
		}, http.StatusRequestEntityTooLarge},
		{"chunked body over limit", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, url, io.MultiReader(strings.NewReader(strings.Repeat("x", 1000))))
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge},
		{"headers over limit", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, url, nil)
			r.Header.Set("X-Big", strings.Repeat("h", 8000))
			return r
		}, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := newClient(1).Do(tc.req())
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Errorf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
}

func TestRequestIDAndVersionHeader(t *testing.T) {
	var seen []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			seen = append(seen, r.Header.Get("X-Request-Id"))
		}
	}))
	defer s.Close()
	p := newTestProxy(t, nil)
	svc := testService("web", "v1", ver("v1", &backend{Server: s}))
	svc.Spec.Proxy.VersionHeader = "x-served-by"
	mustApply(t, p, svc)
	c := newClient(1)
	req, _ := http.NewRequest(http.MethodGet, proxyURL(t, p, "web"), nil)
	req.Header.Set("X-Request-Id", "abc")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("X-Served-By"); got != "v1" {
		t.Errorf("X-Served-By = %q, want v1", got)
	}
	if _, _, err := get(c, proxyURL(t, p, "web"), nil); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0] != "abc" || len(seen[1]) != 32 {
		t.Errorf("request ids at the backend = %q, want [abc <32 hex>]", seen)
	}
}
