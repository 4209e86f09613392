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
