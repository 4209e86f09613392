package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// pattern returns n deterministic bytes that differ at every offset of a
// short period, so a lost, repeated or reordered piece shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}

// newStreamBackend serves the long responses of TestLongStreams:
//
//	/sse?n=N          N events, one a second (chunked, text/event-stream)
//	/big?n=N          N bytes of pattern at once (known length)
//	/slow?n=N&d=D     N bytes of pattern, spread evenly over D (known length)
func newStreamBackend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		rc := http.NewResponseController(w)
		switch r.URL.Path {
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := range n {
				if _, err := fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
				if i < n-1 {
					select {
					case <-tick.C:
					case <-r.Context().Done():
						return
					}
				}
			}
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(n))
			_, _ = w.Write(pattern(n))
		case "/slow":
			d, _ := time.ParseDuration(r.URL.Query().Get("d"))
			body := pattern(n)
			w.Header().Set("Content-Length", strconv.Itoa(n))
			const pieces = 100
			tick := time.NewTicker(d / pieces)
			defer tick.Stop()
			for i := range pieces {
				if _, err := w.Write(body[i*n/pieces : (i+1)*n/pieces]); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
				select {
				case <-tick.C:
				case <-r.Context().Done():
					return
				}
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestLongStreams sends responses that last far longer than every client
// timeout (header 2 s, request 5 s) through both front ends and checks them
// byte for byte: an event stream of 30 s, 10 MiB read by a client at
// 500 kB/s, and 2 MB that the target writes over 20 s. A stream lasts as
// long as both sides keep it going; the request timeouts bound reading the
// request, never the response.
func TestLongStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("streams last 20-30 s")
	}
	be := newStreamBackend(t)
	p := newTestProxy(t, nil)
	svc := testService("web", "v1", ver("v1", &backend{Server: be}))
	svc.Spec.Proxy.ReadHeaderTimeout.Duration = 2 * time.Second
	svc.Spec.Proxy.ReadTimeout.Duration = 5 * time.Second
	mustApply(t, p, svc)
	addr := p.Addr("web").String()

	const sseEvents = 30
	var sse bytes.Buffer
	for i := range sseEvents {
		fmt.Fprintf(&sse, "id: %d\ndata: event %d\n\n", i, i)
	}
	cases := []struct {
		name, path string
		want       []byte
		readRate   int // bytes a second the client reads (0: as fast as it can)
	}{
		{"event stream 30s", fmt.Sprintf("/sse?n=%d", sseEvents), sse.Bytes(), 0},
		{"slow reader 10MiB", "/big?n=10485760", pattern(10 << 20), 500_000},
		{"slow writer 2MB over 20s", "/slow?n=2000000&d=20s", pattern(2_000_000), 0},
	}
	fronts := []struct {
		name   string
		header http.Header
	}{
		{"fast path", nil},
		{"net/http", http.Header{handoffHeader: {"1"}}},
	}
	// All six at once, not as parallel subtests: -parallel defaults to the
	// two cores here, which would triple the wall time.
	var wg sync.WaitGroup
	for _, fe := range fronts {
		for _, tc := range cases {
			wg.Go(func() {
				got, err := streamGet(addr, tc.path, fe.header, tc.readRate)
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Errorf("%s, %s: GET %s: %d of %d bytes (first difference at %d), error %v; want every byte", fe.name, tc.name, tc.path, len(got), len(tc.want), firstDiff(got, tc.want), err)
				}
			})
		}
	}
	wg.Wait()
	if n := p.services["web"].lis.handoffs.Load(); n != int64(len(cases)) {
		t.Errorf("%d hand-offs to net/http, want %d", n, len(cases))
	}
	if w := p.Window("web", "v1", time.Minute); w.Errors != 0 {
		t.Errorf("Window: %d errors, want 0", w.Errors)
	}
}

// streamGet does one GET on a fresh connection with no client timeout and
// reads the body at rate bytes a second (0: unthrottled).
func streamGet(addr, path string, hdr http.Header, rate int) ([]byte, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok && rate > 0 {
		// A small receive window so the client, not the kernel's buffers,
		// sets the pace.
		_ = tc.SetReadBuffer(64 << 10)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", res.StatusCode)
	}
	if rate == 0 {
		return io.ReadAll(res.Body)
	}
	var out bytes.Buffer
	const every = 100 * time.Millisecond
	step := int64(rate) * int64(every) / int64(time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, err := io.CopyN(&out, res.Body, step)
		if err == io.EOF || err == nil && n < step {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		<-tick.C
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
