package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// malformedBodies are chunked request bodies a client may send broken; the
// proxy finds out only after the request header went to the target.
var malformedBodies = []struct{ name, body string }{
	{"negative size", "-5\r\nhello\r\n0\r\n\r\n"},
	{"hex prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
	{"plus sign", "+5\r\nhello\r\n0\r\n\r\n"},
	{"size overflow", "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
	{"bare LF", "5\nhello\r\n0\r\n\r\n"},
	{"good chunk then garbage", "5\r\nhello\r\nzz\r\n"},
	{"data longer than size", "2\r\nhello\r\n0\r\n\r\n"},
}

// rawExchange sends raw bytes on a new connection and reads one response;
// closed reports whether the proxy closed the connection after it.
func rawExchange(t *testing.T, addr, raw string) (code int, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response to %q: %v", raw, err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	return res.StatusCode, err == io.EOF
}

// TestMalformedBodiesAreTheClients floods a version with malformed chunked
// bodies between good requests: each is answered 400 and the connection
// closed, and none counts against the version (its window, its latency) or
// its targets' passive health; requests_total counts them under 400.
func TestMalformedBodiesAreTheClients(t *testing.T) {
	b1, b2 := newBackend(t, "v1"), newBackend(t, "v1")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", b1, b2)))
	addr := p.Addr("web").String()
	c := newClient(2)
	const rounds = 3
	good, bad := 0, 0
	for range rounds {
		for _, mb := range malformedBodies {
			for range 3 { // more than passive health's 3 consecutive failures
				raw := "POST /upload HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n" + mb.body
				code, closed := rawExchange(t, addr, raw)
				bad++
				if code != http.StatusBadRequest || !closed {
					t.Errorf("%s: status %d, connection closed %v; want 400 and closed", mb.name, code, closed)
				}
			}
			if code, _, err := get(c, "http://"+addr+"/", nil); code != 200 || err != nil {
				t.Fatalf("good request after %s: %d %v", mb.name, code, err)
			}
			good++
		}
	}
	for _, h := range p.Health("web") {
		if !h.Healthy || h.Ejected || h.LastError != "" {
			t.Errorf("target %s: healthy %v, ejected %v, last error %q; want untouched by clients' errors", h.Address, h.Healthy, h.Ejected, h.LastError)
		}
	}
	if w := p.Window("web", "v1", time.Minute); w.Errors != 0 || w.Requests != int64(good) {
		t.Errorf("Window = %d requests, %d errors; want %d, 0 (the good ones only)", w.Requests, w.Errors, good)
	}
	if got := testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", "400")); got != float64(bad) {
		t.Errorf("requests_total{code=400} = %v, want %d", got, bad)
	}
	for _, code := range []string{"502", "500", "504"} {
		if got := testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", code)); got != 0 {
			t.Errorf("requests_total{code=%s} = %v, want 0", code, got)
		}
	}
}

// TestClientBodyOutcomes covers the other ways a client breaks its own
// request body: too large (413), too slow (408) and gone mid-body (499).
// None is the version's error or a target's failure.
func TestClientBodyOutcomes(t *testing.T) {
	b1, b2 := newBackend(t, "v1"), newBackend(t, "v1")
	p := newTestProxy(t, nil)
	s := testService("web", "v1", ver("v1", b1, b2))
	s.Spec.Proxy.MaxBodyBytes = 1000
	s.Spec.Proxy.ReadTimeout.Duration = 500 * time.Millisecond
	mustApply(t, p, s)
	addr := p.Addr("web").String()
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 600, strings.Repeat("a", 600))
	for range 4 {
		// Chunked past maxBodyBytes: found while streaming.
		if code, closed := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk+chunk+"0\r\n\r\n"); code != http.StatusRequestEntityTooLarge || !closed {
			t.Errorf("chunked body over maxBodyBytes: %d, closed %v; want 413, closed", code, closed)
		}
		// A body that stops coming: readTimeout.
		if code, closed := rawExchange(t, addr, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk); code != http.StatusRequestTimeout || !closed {
			t.Errorf("body stalled past readTimeout: %d, closed %v; want 408, closed", code, closed)
		}
	}
	// A client that leaves mid-body.
	for range 4 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		before := b1.hits.Load() + b2.hits.Load()
		_, _ = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk)
		eventually(t, 5*time.Second, "the upload at a target", func() bool { return b1.hits.Load()+b2.hits.Load() > before })
		conn.Close()
	}
	eventually(t, 5*time.Second, "the abandoned uploads recorded", func() bool {
		return testutil.ToFloat64(p.met.requests.WithLabelValues("web", "v1", "499")) == 4
	})
	for _, h := range p.Health("web") {
		if !h.Healthy || h.Ejected || h.LastError != "" {
			t.Errorf("target %s: healthy %v, ejected %v, last error %q; want untouched", h.Address, h.Healthy, h.Ejected, h.LastError)
		}
	}
	if w := p.Window("web", "v1", time.Minute); w.Errors != 0 {
		t.Errorf("Window = %d requests, %d errors; want no errors", w.Requests, w.Errors)
	}
}
