package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

func TestSwitchUnderLoad(t *testing.T) {
	blue1, blue2 := newBackend(t, "blue"), newBackend(t, "blue")
	green1, green2 := newBackend(t, "green"), newBackend(t, "green")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "blue", ver("blue", blue1, blue2), ver("green", green1, green2)))
	url := proxyURL(t, p, "web")

	// phase is even while no switch is in progress; expected[phase/2] is the
	// version in force then. A request that starts and ends in the same even
	// phase must be served by that phase's version.
	var phase atomic.Int64
	expected := []string{"blue"}
	var expMu sync.RWMutex
	expect := func(ph int64) string {
		expMu.RLock()
		defer expMu.RUnlock()
		return expected[ph/2]
	}

	const clients = 24
	switches := 120
	if testing.Short() {
		switches = 100
	}
	stop := make(chan struct{})
	var total, failed, stale atomic.Int64
	var firstErr atomic.Pointer[string]
	var wg sync.WaitGroup
	for range clients {
		c := newClient(1)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ph := phase.Load()
				code, v, err := get(c, url, nil)
				total.Add(1)
				if err != nil || code != 200 {
					failed.Add(1)
					msg := fmt.Sprintf("%d %v", code, err)
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				if ph%2 == 0 && phase.Load() == ph && v != expect(ph) {
					stale.Add(1)
				}
			}
		})
	}
	eventually(t, 5*time.Second, "load to start", func() bool { return total.Load() > 100 })
	cur := "blue"
	for i := range switches {
		next := map[string]string{"blue": "green", "green": "blue"}[cur]
		phase.Add(1) // odd: switching
		mustRoute(t, p, "web", rollout.Routing{Stable: next, Weights: rollout.Weights{next: 100}})
		expMu.Lock()
		expected = append(expected, next)
		expMu.Unlock()
		phase.Add(1) // even: next is in force
		cur = next
		// Let some requests run in each phase.
		before := total.Load()
		eventually(t, 5*time.Second, fmt.Sprintf("requests after switch %d", i), func() bool { return total.Load() > before+clients })
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests over %d switches, %d failed, %d reached the old version after Route returned", total.Load(), switches, failed.Load(), stale.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed; first: %s", failed.Load(), *firstErr.Load())
	}
	if stale.Load() != 0 {
		t.Errorf("%d requests reached the old version after Route returned", stale.Load())
	}
}

// TestTargetKilledUnderLoad kills one of three targets abruptly (listener and
// live connections closed) while GETs and POSTs flow.
func TestTargetKilledUnderLoad(t *testing.T) {
	bs := []*backend{newBackend(t, "v1"), newBackend(t, "v1"), newBackend(t, "v1")}
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", bs...)))
	url := proxyURL(t, p, "web")

	stop := make(chan struct{})
	var gets, getFails, posts, postFails, seq atomic.Int64
	var firstErr atomic.Pointer[string]
	var wg sync.WaitGroup
	for i := range 16 {
		c := newClient(1)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if i%4 == 0 {
					id := fmt.Sprint(seq.Add(1))
					req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader("payload"))
					req.Header.Set("X-Post-Id", id)
					res, err := c.Do(req)
					posts.Add(1)
					if err != nil || res.StatusCode != 200 {
						postFails.Add(1)
					}
					if err == nil {
						res.Body.Close()
					}
					continue
				}
				code, _, err := get(c, url, nil)
				gets.Add(1)
				if err != nil || code != 200 {
					getFails.Add(1)
					msg := fmt.Sprintf("%d %v", code, err)
					firstErr.CompareAndSwap(nil, &msg)
				}
			}
		})
	}
	eventually(t, 5*time.Second, "load to start", func() bool { return gets.Load() > 300 })
	victim := bs[1]
	victim.Listener.Close()
	victim.CloseClientConnections()
	before := gets.Load()
	eventually(t, 10*time.Second, "load after the kill", func() bool { return gets.Load() > before+2000 })
	close(stop)
	wg.Wait()

	t.Logf("%d GETs (%d failed), %d POSTs (%d failed)", gets.Load(), getFails.Load(), posts.Load(), postFails.Load())
	if getFails.Load() != 0 {
		t.Errorf("%d GETs failed; first: %s", getFails.Load(), *firstErr.Load())
	}
	for _, b := range bs {
		b.mu.Lock()
		for id, n := range b.posts {
			if n > 1 {
				t.Errorf("POST %s received %d times by one backend", id, n)
			}
		}
		b.mu.Unlock()
	}
	seen := map[string]int{}
	for _, b := range bs {
		b.mu.Lock()
		for id, n := range b.posts {
			seen[id] += n
		}
		b.mu.Unlock()
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("POST %s received %d times across backends", id, n)
		}
	}
	eventually(t, 5*time.Second, "the killed target reported down", func() bool {
		for _, h := range p.Health("web") {
			if h.Address == victim.addr() {
				return !h.Healthy
			}
		}
		return false
	})
}

// TestSlowClients opens many connections that send a request one byte at a
// time and checks they are closed at ReadHeaderTimeout while normal traffic
// is served.
func TestSlowClients(t *testing.T) {
	b := newBackend(t, "v1")
	p := newTestProxy(t, nil)
	s := testService("web", "v1", ver("v1", b))
	s.Spec.Proxy.ReadHeaderTimeout.Duration = 300 * time.Millisecond
	mustApply(t, p, s)
	addr := p.Addr("web").String()
	n := 1000
	if testing.Short() {
		n = 100
	}
	var closed atomic.Int64
	var tooEarly atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	for range n {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", closed.Load(), err)
		}
		wg.Go(func() {
			defer conn.Close()
			opened := time.Now()
			msg := []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000))
			buf := make([]byte, 512)
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := conn.Write(msg[i%len(msg) : i%len(msg)+1]); err != nil {
					break
				}
				conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if _, err := conn.Read(buf); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						continue
					}
					break // closed by the server
				}
				break // any response (408 or close) ends the slow request
			}
			if time.Since(opened) < 250*time.Millisecond {
				tooEarly.Add(1)
			}
			closed.Add(1)
		})
	}
	c := newClient(4)
	served := 0
	for closed.Load() < int64(n) && ctx.Err() == nil {
		code, _, err := get(c, "http://"+addr, nil)
		if err != nil || code != 200 {
			t.Fatalf("normal request during slow clients: %d %v", code, err)
		}
		served++
	}
	wg.Wait()
	if closed.Load() != int64(n) {
		t.Fatalf("%d of %d slow connections were still open after %v", int64(n)-closed.Load(), n, time.Since(start))
	}
	if tooEarly.Load() != 0 {
		t.Errorf("%d slow connections closed before the header timeout", tooEarly.Load())
	}
	t.Logf("%d slow connections closed in %v while %d normal requests were served", n, time.Since(start).Round(time.Millisecond), served)
	if served == 0 {
		t.Error("no normal request was served while slow clients were connected")
	}
}

// TestRemovedTargetDrains removes a version while a WebSocket to it is open:
// the WebSocket keeps working until drainTimeout, then is closed.
func TestRemovedTargetDrains(t *testing.T) {
	ws := newWSBackend(t)
	b2 := newBackend(t, "v2")
	p := newTestProxy(t, nil)
	s := testService("web", "v1", ver("v1", &backend{Server: ws}), ver("v2", b2))
	s.Spec.Proxy.DrainTimeout.Duration = 500 * time.Millisecond
	mustApply(t, p, s)
	conn := dialWebSocket(t, p.Addr("web").String())
	defer conn.Close()
	mustRoute(t, p, "web", rollout.Routing{Stable: "v2", Weights: rollout.Weights{"v2": 100}})
	if err := p.RemoveVersion("web", "v1"); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	echo(t, conn, "still here after the switch")
	if code, v, err := get(newClient(1), proxyURL(t, p, "web"), nil); err != nil || code != 200 || v != "v2" {
		t.Fatalf("after removal: %d %q %v", code, v, err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	_, err := conn.Read(buf)
	if err == nil {
		t.Fatal("WebSocket read data after drain, want close")
	}
	if d := time.Since(removed); d < 400*time.Millisecond {
		t.Errorf("WebSocket closed %v after removal, before the 500ms drain timeout", d)
	}
}

func echo(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := ioReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, []byte(msg)) {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
	conn.SetDeadline(time.Time{})
}
