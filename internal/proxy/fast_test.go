package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"

	"github.com/switchyard/switchyard/internal/spec"
)

// newMixedBackend serves HTTP/1.1 and h2c on one port: WebSocket-style
// upgrades echo raw bytes, other requests echo their body and report the
// protocol and the Expect header they arrived with.
func newMixedBackend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = brw.Flush()
			_, _ = io.Copy(conn, brw)
			return
		}
		w.Header().Set("X-Backend-Proto", r.Proto)
		w.Header().Set("X-Backend-Xff", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Backend-Host", r.Host)
		w.Header().Set("X-Backend-Conn", r.Header.Get("Connection")+"|"+r.Header.Get("X-Hop"))
		_, _ = io.Copy(w, r.Body)
	}))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetHTTP1(true)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// TestFastPathHandOff serves, on one plain listener, requests the fast path
// handles and those it hands to net/http: WebSocket upgrades, h2c with prior
// knowledge, Expect: 100-continue and chunked uploads.
func TestFastPathHandOff(t *testing.T) {
	be := newMixedBackend(t)
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", &backend{Server: be})))
	url := proxyURL(t, p, "web")
	l := p.services["web"].lis
	c := newClient(1)

	// Plain requests stay on the fast path, hop-by-hop fields are dropped and
	// Host and X-Forwarded-For are set as by httputil.
	req, _ := http.NewRequest(http.MethodPost, url+"/echo", strings.NewReader("fast body"))
	req.Host = "app.example"
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "secret")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "fast body" || res.Header.Get("X-Backend-Host") != "app.example" ||
		res.Header.Get("X-Backend-Xff") != "127.0.0.1" || res.Header.Get("X-Backend-Conn") != "|" {
		t.Errorf("fast POST: body %q, host %q, xff %q, hop fields %q; want the body, app.example, 127.0.0.1, none",
			body, res.Header.Get("X-Backend-Host"), res.Header.Get("X-Backend-Xff"), res.Header.Get("X-Backend-Conn"))
	}
	if n := l.handoffs.Load(); n != 0 {
		t.Fatalf("%d hand-offs after a plain POST, want 0", n)
	}

	t.Run("websocket", func(t *testing.T) {
		before := l.handoffs.Load()
		conn := dialWebSocket(t, p.Addr("web").String())
		defer conn.Close()
		echo(t, conn, "over the hand-off")
		if l.handoffs.Load() != before+1 {
			t.Errorf("WebSocket was not handed off to net/http")
		}
	})

	t.Run("h2c", func(t *testing.T) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		before := l.h2.Load()
		res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Post(url+"/h2", "text/plain", strings.NewReader("h2 body"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || string(body) != "h2 body" {
			t.Errorf("h2c: %s %q, want HTTP/2 and the body", res.Proto, body)
		}
		if l.h2.Load() != before+1 {
			t.Errorf("h2c connection not passed to net/http")
		}
	})

	t.Run("expect 100-continue", func(t *testing.T) {
		before := l.handoffs.Load()
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPut, url+"/upload", strings.NewReader("continued body"))
		req.Header.Set("Expect", "100-continue")
		res, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "continued body" {
			t.Errorf("Expect: 100-continue: %d %q", res.StatusCode, body)
		}
		if l.handoffs.Load() != before+1 {
			t.Errorf("Expect: 100-continue was not handed off")
		}
	})

	t.Run("chunked upload then keep-alive", func(t *testing.T) {
		before := l.handoffs.Load()
		// Raw, so the chunked request and a pipelined GET after it share
		// one connection: the hand-off must pass the rest of the stream on.
		conn, err := net.Dial("tcp", p.Addr("web").String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+
			"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(conn)
		for i, want := range []string{"hello", ""} {
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(body) != want {
				t.Errorf("response %d: %d %q, want 200 %q", i, res.StatusCode, body, want)
			}
		}
		if l.handoffs.Load() != before+1 {
			t.Errorf("chunked upload was not handed off")
		}
	})

}

// rawBackend answers every request with a fixed 200 and allocates nothing
// per request, so benchmarks count only the proxy's allocations.
func rawBackend(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	const res = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 {
						if _, err := io.WriteString(c, res); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkFastHandler measures the fast path's handler alone (routing,
// upstream exchange over loopback, recording) on a parsed request: the
// allocations are the proxy's only.
func BenchmarkFastHandler(b *testing.B) {
	addr := rawBackend(b)
	p := newTestProxy(b, nil)
	mustApply(b, p, testService("web", "v1", spec.Version{Name: "v1", Targets: []string{addr}}))
	l := p.services["web"].lis
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		raw := "GET /path HTTP/1.1\r\nHost: web\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			b.Fatal(err)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, peer, nil)
		for pb.Next() {
			ctx.Response.Reset()
			l.serveFast(&ctx)
			if ctx.Response.StatusCode() != 200 || string(ctx.Response.Body()) != "hello" {
				b.Fatalf("status %d body %q", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
}

// TestFastPathResponses checks response shapes through the fast path: read
// whole, streamed with a known length, chunked, without a body, and a
// target that closes its connection after answering.
func TestFastPathResponses(t *testing.T) {
	big := strings.Repeat("0123456789", 20000) // 200 kB: streamed
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Query", r.URL.RawQuery)
		w.Header().Set("X-Multi", strings.Join(r.Header.Values("X-Multi"), ","))
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			_, _ = io.WriteString(w, big)
		case "/chunked":
			_, _ = io.WriteString(w, "part1,")
			http.NewResponseController(w).Flush()
			_, _ = io.WriteString(w, "part2")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "closing")
		default:
			_, _ = io.WriteString(w, "small")
		}
	}))
	defer be.Close()
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", &backend{Server: be})))
	url := proxyURL(t, p, "web")
	c := newClient(1)
	cases := []struct {
		method, path string
		code         int
		body         string
		length       int64
	}{
		{"GET", "/small?a=1&b=%2F", 200, "small", 5},
		{"HEAD", "/small", 200, "", 5},
		{"GET", "/big", 200, big, int64(len(big))},
		{"HEAD", "/big", 200, "", int64(len(big))},
		{"GET", "/chunked", 200, "part1,part2", -1},
		{"GET", "/nocontent", 204, "", 0},
		{"GET", "/notmodified", 304, "", 0},
		{"GET", "/close", 200, "closing", 7},
		{"GET", "/close", 200, "closing", 7},
		{"GET", "/small", 200, "small", 5},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != tc.code || string(body) != tc.body {
			t.Errorf("%s %s = %d %q (%v), want %d %q", tc.method, tc.path, res.StatusCode, trunc(body), err, tc.code, trunc([]byte(tc.body)))
		}
		if tc.length != 0 && res.ContentLength != tc.length {
			t.Errorf("%s %s: Content-Length %d, want %d", tc.method, tc.path, res.ContentLength, tc.length)
		}
		if tc.code == 200 && res.Header.Get("X-Multi") != "a,b" {
			t.Errorf("%s %s: backend saw X-Multi %q, want a,b", tc.method, tc.path, res.Header.Get("X-Multi"))
		}
		if tc.path == "/small?a=1&b=%2F" && res.Header.Get("X-Query") != "a=1&b=%2F" {
			t.Errorf("query at the backend = %q, want it unchanged", res.Header.Get("X-Query"))
		}
	}
	if n := p.services["web"].lis.handoffs.Load(); n != 0 {
		t.Errorf("%d hand-offs, want none", n)
	}
	if w := p.Window("web", "v1", time.Minute); w.Requests != int64(len(cases)) || w.Errors != 0 {
		t.Errorf("Window = %d requests, %d errors; want %d, 0", w.Requests, w.Errors, len(cases))
	}
	if got := testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", "200")); got != 8 {
		t.Errorf("requests_total{code=200} = %v, want 8 (streamed bodies count when they end)", got)
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
