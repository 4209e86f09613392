package accesslog

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/testenv"
)

// backend is a toy target that counts what it answered.
type backend struct {
	*httptest.Server
	hits, failed atomic.Int64
}

// newBackend starts a target on loopback that answers 500 to every
// failEvery-th request (never when failEvery is 0) and 200 otherwise.
func newBackend(t *testing.T, failEvery int64) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.hits.Add(1)
		if failEvery > 0 && n%failEvery == 0 {
			b.failed.Add(1)
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// TestNginx follows a real nginx's access log: blue (a live target and one
// that refuses connections) and green (a target answering 500 to every
// fourth request) behind one upstream group, the log renamed and nginx
// reopened (USR1, as nginx -s reopen) in the middle of the traffic. Every
// request is counted once, for the version that served it, and every
// attempt nginx retried after blue's dead target refused it is blue's error.
func TestNginx(t *testing.T) {
	testenv.Integration(t)
	blue, green := newBackend(t, 0), newBackend(t, 4)
	dead := testenv.FreeAddr(t)
	conf := LogFormat + fmt.Sprintf(`
upstream web {
    server %s max_fails=0;
    server %s max_fails=0;
    server %s max_fails=0;
}
server {
    listen {{.Addr}};
    access_log {{.Dir}}/access.log %s;
    location / { proxy_pass http://web; }
}
`, blue.addr(), dead, green.addr(), FormatName)
	n := testenv.StartNginx(t, conf)
	path := filepath.Join(n.Dir, "access.log")

	f := New(path, Options{Poll: 50 * time.Millisecond})
	if err := f.SetVersion("web", "blue", []string{blue.addr(), dead}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetVersion("web", "green", []string{"http://" + green.addr()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		f.Close()
	})
	testenv.WaitFor(t, 10*time.Second, func() bool { return !f.Stats().CaughtUp.IsZero() }, "the follower's first read")

	const clients, each = 4, 75
	hc := &http.Client{Timeout: 10 * time.Second}
	var sent, got500, other atomic.Int64
	send := func(k int) {
		for range k {
			resp, err := hc.Get("http://" + n.Addr + "/")
			if err != nil {
				t.Errorf("GET through nginx: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			sent.Add(1)
			switch resp.StatusCode {
			case http.StatusOK:
			case http.StatusInternalServerError:
				got500.Add(1)
			default:
				other.Add(1)
			}
		}
	}
	burst := func() {
		var cw sync.WaitGroup
		for range clients {
			cw.Go(func() { send(each) })
		}
		cw.Wait()
	}
	// The analysis reads while Run records (the race detector watches).
	readers, stopReading := context.WithCancel(ctx)
	var rd sync.WaitGroup
	rd.Go(func() {
		reg := prometheus.NewRegistry()
		reg.MustRegister(f.Collector())
		for readers.Err() == nil {
			_, _ = f.Window(readers, "web", "green", time.Minute)
			_, _ = f.Seconds(readers, "web", []string{"blue", "green"}, 0)
			_, _ = reg.Gather()
			_ = f.SetVersion("web", "red", []string{"127.0.0.1:1"})
			time.Sleep(time.Millisecond) // a reader's pace, not synchronisation
		}
	})
	burst()
	// logrotate's default: rename, then reopen, while traffic goes on.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	var rw sync.WaitGroup
	rw.Go(burst)
	if err := n.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	rw.Wait()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		_, err := os.Stat(path)
		return err == nil
	}, "nginx to reopen its log")
	burst()
	stopReading()
	rd.Wait()
	done := time.Now().Unix()
	total := sent.Load()

	testenv.WaitFor(t, 15*time.Second, func() bool {
		st := f.Stats()
		return st.Lines >= total && st.Through > done
	}, "every line read and the last request's second completed")
	st := f.Stats()
	if st.Lines != total || st.Malformed+st.Late+st.Unknown+st.Ignored != 0 || st.Reopens != 1 {
		t.Errorf("Stats = %+v; want exactly %d lines, none malformed, late, unknown or ignored, 1 reopen", st, total)
	}
	if other.Load() != 0 || got500.Load() != green.failed.Load() {
		t.Errorf("clients got %d 500s and %d other non-200s; want %d 500s (green's) and no other: nginx retries the dead target", got500.Load(), other.Load(), green.failed.Load())
	}

	// The retries nginx logged: blue's dead target, then green.
	var deadThenGreen int64
	for _, p := range []string{path + ".1", path} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		deadThenGreen += int64(strings.Count(string(b), "\t"+dead+", "+green.addr()+"\t"))
	}
	if deadThenGreen == 0 {
		t.Errorf("no line with a retry from %s to %s; want nginx's round robin to have made some", dead, green.addr())
	}

	bs, err := f.Window(ctx, "web", "blue", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := f.Window(ctx, "web", "green", 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if gs.Requests != green.hits.Load() || gs.Errors != green.failed.Load() {
		t.Errorf("green: %d requests, %d errors; want %d, %d (what green answered)", gs.Requests, gs.Errors, green.hits.Load(), green.failed.Load())
	}
	if bs.Requests != blue.hits.Load()+deadThenGreen || bs.Errors != deadThenGreen {
		t.Errorf("blue: %d requests, %d errors; want %d+%d, %d (what blue answered, and its dead target's refusals that green then served)",
			bs.Requests, bs.Errors, blue.hits.Load(), deadThenGreen, deadThenGreen)
	}
	if q := gs.Quantile(0.99); q <= 0 || q > 5*time.Second {
		t.Errorf("green's p99 = %v, want a positive latency", q)
	}

	// The judge's view: the same requests, second by second.
	secs, err := f.Seconds(ctx, "web", []string{"blue", "green"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for ver, want := range map[string]int64{"blue": bs.Requests, "green": gs.Requests} {
		var sum int64
		for _, s := range secs.By[ver] {
			sum += s.Requests
		}
		if sum != want {
			t.Errorf("%s's seconds add up to %d requests, want %d (its window)", ver, sum, want)
		}
	}
}

// TestNginxOutcomes: the shapes of line a real nginx writes for each kind
// of outcome, and what each charges: a timeout (504) and a 500 are the
// version's errors, a client that left (499) its request without error,
// two refused targets one error, "no live upstreams" and a static answer
// nobody's, and an intercepted 500 served by another group (error_page,
// an internal redirect) an error of the first version and a success of
// the second.
func TestNginxOutcomes(t *testing.T) {
	testenv.Integration(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	fail, fallback := newBackend(t, 1), newBackend(t, 0)
	dead1, dead2 := testenv.FreeAddr(t), testenv.FreeAddr(t)
	hostOf := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	conf := LogFormat + fmt.Sprintf(`
upstream slow { server %s; }
upstream dead { server %s; server %s; }
upstream fail { server %s; }
upstream fallback { server %s; }
server {
    listen {{.Addr}};
    access_log {{.Dir}}/access.log %s;
    location /timeout { proxy_pass http://slow; proxy_read_timeout 300ms; }
    location /abandoned { proxy_pass http://slow; }
    location /dead { proxy_pass http://dead; }
    location /fail { proxy_pass http://fail; proxy_intercept_errors on; error_page 500 = @fallback; }
    location @fallback { proxy_pass http://fallback; }
    location /static { return 200 "static"; }
}
`, hostOf(slow), dead1, dead2, fail.addr(), fallback.addr(), FormatName)
	n := testenv.StartNginx(t, conf)

	f := New(filepath.Join(n.Dir, "access.log"), Options{Poll: 50 * time.Millisecond})
	for ver, targets := range map[string][]string{
		"slow": {hostOf(slow)}, "dead": {dead1, dead2}, "fail": {fail.addr()}, "fallback": {fallback.addr()},
	} {
		if err := f.SetVersion("web", ver, targets); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SetUpstreams("web", "slow", "dead", "fail", "fallback"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	testenv.WaitFor(t, 10*time.Second, func() bool { return !f.Stats().CaughtUp.IsZero() }, "the follower's first read")

	get := func(path string, timeout time.Duration, want int) {
		t.Helper()
		resp, err := (&http.Client{Timeout: timeout}).Get("http://" + n.Addr + path)
		if want == 0 { // the client gives up
			if err == nil {
				resp.Body.Close()
				t.Errorf("GET %s answered %d, want the client to time out", path, resp.StatusCode)
			}
			return
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	get("/timeout", 5*time.Second, http.StatusGatewayTimeout)
	get("/abandoned", 300*time.Millisecond, 0)
	get("/dead", 5*time.Second, http.StatusBadGateway) // both refuse: both marked failed
	get("/dead", 5*time.Second, http.StatusBadGateway) // no live upstreams
	get("/fail", 5*time.Second, http.StatusOK)
	get("/static", 5*time.Second, http.StatusOK)
	const lines = 6
	// nginx logs the abandoned request once it notices the client left.
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.Stats().Lines >= lines }, "6 lines")
	done := time.Now().Unix()
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.Stats().Through > done }, "the last second completed")

	if st := f.Stats(); st.Lines != lines || st.Counted != 4 || st.Ignored != 2 || st.Malformed+st.Late+st.Unknown != 0 {
		t.Errorf("Stats = %+v; want 6 lines: 4 counted, 2 ignored (no live upstreams, static)", st)
	}
	for ver, want := range map[string][2]int64{"slow": {2, 1}, "dead": {1, 1}, "fail": {1, 1}, "fallback": {1, 0}} {
		s, err := f.Window(ctx, "web", ver, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if s.Requests != want[0] || s.Errors != want[1] {
			t.Errorf("%s: %d requests, %d errors; want %d, %d", ver, s.Requests, s.Errors, want[0], want[1])
		}
	}
	if s, _ := f.Window(ctx, "web", "slow", time.Minute); s.Quantile(1) < 250*time.Millisecond {
		t.Errorf("slow's slowest request took %v, want about 300ms (the timeout and the client's)", s.Quantile(1))
	}
}
