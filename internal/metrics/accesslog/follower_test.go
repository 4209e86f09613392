package accesslog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/testenv"
)

// t0 is the fake clock's start: 200 ms into a second.
var t0 = time.Unix(1764690000, 200e6)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newFollower returns a Follower of path on a fake clock at t0, with
// service web's versions blue (127.0.0.1:9001, :9002) and green
// (127.0.0.1:9003, [::1]:9004).
func newFollower(t *testing.T, path string) (*Follower, *fakeClock) {
	t.Helper()
	c := &fakeClock{now: t0}
	f := New(path, Options{Now: c.Now})
	if err := f.SetVersion("web", "blue", []string{"127.0.0.1:9001", "http://127.0.0.1:9002"}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetVersion("web", "green", []string{"127.0.0.1:9003", "h2c://[::1]:9004"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, c
}

// logLine is one line in LogFormat for service web ending at end.
func logLine(end time.Time, status int, reqTime, addrs, statuses, times string) string {
	return fmt.Sprintf("%d.%03d\tweb\t%d\t%s\t%s\t%s\t%s\n",
		end.Unix(), end.Nanosecond()/1e6, status, reqTime, addrs, statuses, times)
}

// ok is a line of a 200 from blue's first target at end.
func ok(end time.Time) string {
	return logLine(end, 200, "0.002", "127.0.0.1:9001", "200", "0.002")
}

// counts returns a version's requests and errors in second sec.
func counts(f *Follower, version string, sec int64) (int64, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.services["web"].versions[version]
	out := metrics.Sample{Latency: f.lb.NewSketch()}
	v.ring.add(&out, sec)
	return out.Requests, out.Errors
}

// TestAccounting: what each line shape charges to which version
// (package documentation, "What counts").
func TestAccounting(t *testing.T) {
	type vc struct{ req, err int64 }
	tests := []struct {
		name          string
		line          string
		blue, green   vc
		unknown       int64
		ignored, late int64
		malformed     int64
	}{
		{name: "200 from blue", line: logLine(t0, 200, "0.002", "127.0.0.1:9001", "200", "0.002"), blue: vc{1, 0}},
		{name: "scheme of the target is not part of the address", line: logLine(t0, 200, "0.002", "127.0.0.1:9002", "200", "0.002"), blue: vc{1, 0}},
		{name: "404 from blue is a success", line: logLine(t0, 404, "0.002", "127.0.0.1:9001", "404", "0.002"), blue: vc{1, 0}},
		{name: "500 from green", line: logLine(t0, 500, "0.002", "127.0.0.1:9003", "500", "0.002"), green: vc{1, 1}},
		{name: "503 from an ipv6 target of green", line: logLine(t0, 503, "0.002", "[::1]:9004", "503", "0.002"), green: vc{1, 1}},
		{name: "nginx's 504: green timed out", line: logLine(t0, 504, "1.000", "127.0.0.1:9003", "504", "1.000"), green: vc{1, 1}},
		{name: "green refused, nginx retried on blue", line: logLine(t0, 200, "0.010", "127.0.0.1:9003, 127.0.0.1:9001", "502, 200", "0.001, 0.009"),
			blue: vc{1, 0}, green: vc{1, 1}},
		{name: "blue timed out, retried on blue's other target: one request", line: logLine(t0, 200, "1.010", "127.0.0.1:9001, 127.0.0.1:9002", "504, 200", "1.000, 0.010"),
			blue: vc{1, 0}},
		{name: "both of blue's targets refused: one error", line: logLine(t0, 502, "0.002", "127.0.0.1:9001, 127.0.0.1:9002", "502, 502", "0.001, 0.001"),
			blue: vc{1, 1}},
		{name: "blue then green, green's 500 is final", line: logLine(t0, 500, "0.002", "127.0.0.1:9001, 127.0.0.1:9003", "502, 500", "0.001, 0.001"),
			blue: vc{1, 1}, green: vc{1, 1}},
		{name: "green refused, then no live upstreams", line: logLine(t0, 502, "0.001", "127.0.0.1:9003, web", "502, 502", "0.001, 0.000"),
			green: vc{1, 1}},
		{name: "client left while green worked (499)", line: logLine(t0, 499, "3.000", "127.0.0.1:9003", "-", "-"), green: vc{1, 0}},
		{name: "client left after green's 500 header", line: logLine(t0, 499, "3.000", "127.0.0.1:9003", "500", "3.000"), green: vc{1, 0}},
		{name: "green's 500 turned into 200 by error_page", line: logLine(t0, 200, "0.002", "127.0.0.1:9003", "500", "0.001"), green: vc{1, 1}},
		{name: "nginx answered 502 after green's header", line: logLine(t0, 502, "0.002", "127.0.0.1:9003", "200", "0.001"), green: vc{1, 1}},
		{name: "internal redirect from blue to green", line: logLine(t0, 200, "0.004", "127.0.0.1:9001 : 127.0.0.1:9003", "200 : 200", "0.002 : 0.002"),
			blue: vc{1, 0}, green: vc{1, 0}},
		{name: "no upstream attempt", line: logLine(t0, 404, "0.000", "-", "-", "-"), ignored: 1},
		{name: "no live upstreams", line: logLine(t0, 502, "0.000", "web", "502", "0.000"), ignored: 1},
		{name: "another service", line: strings.Replace(ok(t0), "\tweb\t", "\tapi\t", 1), ignored: 1},
		{name: "unknown address", line: logLine(t0, 200, "0.002", "10.9.9.9:80", "200", "0.002"), unknown: 1},
		{name: "unknown address, then blue", line: logLine(t0, 200, "0.002", "10.9.9.9:80, 127.0.0.1:9001", "502, 200", "0.001, 0.001"),
			unknown: 1, blue: vc{1, 0}},
		{name: "late: a second already completed", line: ok(t0.Add(-2 * time.Second)), late: 1},
		{name: "ahead of the clock", line: ok(t0.Add(3 * time.Second)), malformed: 1},
		{name: "malformed", line: "GET / HTTP/1.1 200\n", malformed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newFollower(t, filepath.Join(t.TempDir(), "access.log"))
			f.mu.Lock()
			f.through = t0.Unix() - 1
			f.lineLocked([]byte(strings.TrimSuffix(tt.line, "\n")), t0)
			f.mu.Unlock()
			for _, c := range []struct {
				ver  string
				want vc
			}{{"blue", tt.blue}, {"green", tt.green}} {
				if r, e := counts(f, c.ver, t0.Unix()); r != c.want.req || e != c.want.err {
					t.Errorf("%s: %d requests, %d errors; want %d, %d", c.ver, r, e, c.want.req, c.want.err)
				}
			}
			st := f.Stats()
			charged := int64(0)
			if tt.blue.req+tt.green.req > 0 {
				charged = 1
			}
			if st.Lines != 1 || st.Counted != charged || st.Unknown != tt.unknown || st.Ignored != tt.ignored ||
				st.Late != tt.late || st.Malformed != tt.malformed {
				t.Errorf("Stats = %+v; want 1 line, counted %d, unknown %d, ignored %d, late %d, malformed %d",
					st, charged, tt.unknown, tt.ignored, tt.late, tt.malformed)
			}
		})
	}
}

// TestRetryLatency: the final version's latency leaves out the time its
// request spent on another version's target; the other version's is its
// attempt's.
func TestRetryLatency(t *testing.T) {
	f, _ := newFollower(t, filepath.Join(t.TempDir(), "access.log"))
	f.mu.Lock()
	f.lineLocked([]byte(strings.TrimSuffix(logLine(t0, 200, "1.050", "127.0.0.1:9003, 127.0.0.1:9001", "504, 200", "1.000, 0.050"), "\n")), t0)
	f.through = t0.Unix()
	f.caughtUp = t0
	f.mu.Unlock()
	for ver, want := range map[string]time.Duration{"blue": 50 * time.Millisecond, "green": time.Second} {
		s, err := f.Window(context.Background(), "web", ver, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Quantile(0.5); math.Abs(float64(got-want)) > 0.02*float64(want) {
			t.Errorf("%s: median latency %v, want %v ±2%%", ver, got, want)
		}
	}
}

// writer appends to a log file the way nginx does: one descriptor opened
// with O_APPEND, one write per line, kept across renames until reopened.
type writer struct {
	t  *testing.T
	fd *os.File
}

func openWriter(t *testing.T, path string) *writer {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{t: t, fd: fd}
	t.Cleanup(func() { w.fd.Close() })
	return w
}

func (w *writer) write(s string) {
	w.t.Helper()
	if _, err := w.fd.WriteString(s); err != nil {
		w.t.Fatal(err)
	}
}

// lines writes n lines of 200s from blue ending at end.
func (w *writer) lines(n int, end time.Time) {
	w.t.Helper()
	w.write(strings.Repeat(ok(end), n))
}

// reopen is nginx -s reopen: the old descriptor closed, the path opened.
func (w *writer) reopen(path string) {
	w.t.Helper()
	w.fd.Close()
	*w = *openWriter(w.t, path)
}

// wantCounted fails unless the follower counted exactly n lines, all of
// them blue's in t0's second, and nothing else.
func wantCounted(t *testing.T, f *Follower, n int64) {
	t.Helper()
	st := f.Stats()
	if st.Lines != n || st.Counted != n || st.Malformed+st.Late+st.Unknown+st.Ignored != 0 {
		t.Errorf("Stats = %+v; want exactly %d lines, all counted", st, n)
	}
	if r, _ := counts(f, "blue", t0.Unix()); r != n {
		t.Errorf("blue has %d requests in its second, want %d", r, n)
	}
}

// TestRotationRename: logrotate's default. The file is renamed, nginx keeps
// writing to it until it reopens, then writes to the new file: every line
// of both is counted once.
func TestRotationRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w := openWriter(t, path)
	w.lines(7, t0) // before the follower started: not counted
	f, _ := newFollower(t, path)
	ctx := context.Background()
	f.poll(ctx)
	w.lines(10, t0)
	f.poll(ctx)
	wantCounted(t, f, 10)

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.lines(5, t0) // nginx still writes to the renamed file
	f.poll(ctx)    // the path is missing: the open file is still read
	if st := f.Stats(); st.Err != "" {
		t.Errorf("Stats().Err = %q while the renamed file is read, want none", st.Err)
	}
	create := openWriter(t, path) // logrotate's create
	create.fd.Close()
	w.lines(3, t0) // before the reopen reached the worker
	f.poll(ctx)
	w.lines(4, t0)
	w.reopen(path)
	w.lines(6, t0)
	f.poll(ctx)
	wantCounted(t, f, 10+5+3+4+6)
	if st := f.Stats(); st.Reopens != 1 || st.Truncations != 0 {
		t.Errorf("Stats = %+v; want 1 reopen, no truncation", st)
	}

	// A second rotation while the first old file is still drained.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.lines(2, t0)
	w.reopen(path)
	w.lines(2, t0)
	f.poll(ctx)
	wantCounted(t, f, 28+4)
	if st := f.Stats(); st.Reopens != 2 {
		t.Errorf("Stats().Reopens = %d, want 2", st.Reopens)
	}
}

// TestRotationCopyTruncate: logrotate's copytruncate truncates the file
// in place, nginx's O_APPEND descriptor writes from 0 again.
func TestRotationCopyTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	f, _ := newFollower(t, path)
	ctx := context.Background()
	f.poll(ctx)
	w.lines(10, t0)
	f.poll(ctx)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	w.lines(4, t0) // shorter than before the truncation
	f.poll(ctx)
	wantCounted(t, f, 14)

	// Truncated and written past the old offset again between two polls:
	// only the bytes before the offset tell.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	w.write(logLine(t0, 200, "0.1", "127.0.0.1:9001", "200", "0.1")) // another length
	w.lines(9, t0)
	f.poll(ctx)
	wantCounted(t, f, 24)
	if st := f.Stats(); st.Truncations != 2 || st.Reopens != 0 {
		t.Errorf("Stats = %+v; want 2 truncations, no reopen", st)
	}
}

// TestMissingDeletedRecreated: a file that does not exist yet is retried
// (Window fails meanwhile); a deleted file nginx still writes to is read to
// its end; a new file at the path is read from its start.
func TestMissingDeletedRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, _ := newFollower(t, path)
	ctx := context.Background()
	f.poll(ctx)
	st := f.Stats()
	if st.Err == "" || !strings.Contains(st.Err, "no such file") {
		t.Errorf("Stats().Err = %q, want the missing file", st.Err)
	}
	if _, err := f.Window(ctx, "web", "blue", time.Second); !errors.Is(err, ErrStale) {
		t.Errorf("Window before the file exists = %v, want ErrStale", err)
	}
	w := openWriter(t, path)
	w.lines(3, t0) // written before the follower saw the file: read from 0
	f.poll(ctx)
	wantCounted(t, f, 3)
	if _, err := f.Window(ctx, "web", "blue", time.Second); err != nil {
		t.Errorf("Window once read = %v, want nil", err)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.lines(4, t0) // to the deleted file
	f.poll(ctx)
	wantCounted(t, f, 7)
	w.reopen(path)
	w.lines(5, t0)
	f.poll(ctx)
	wantCounted(t, f, 12)
	if st := f.Stats(); st.Reopens != 2 || st.Err != "" {
		t.Errorf("Stats = %+v; want 2 reopens (appeared, recreated) and no error", st)
	}
}

// TestPartialLines: a line written in pieces is counted once, when its
// newline arrives; an overlong line is bounded and counted as malformed;
// a partial line left when the file is closed was cut short.
func TestPartialLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	w.write(ok(t0)[:20]) // a line being written when the follower starts
	f, _ := newFollower(t, path)
	ctx := context.Background()
	f.poll(ctx)
	w.write(ok(t0)[20:])
	f.poll(ctx)
	wantCounted(t, f, 1)

	full := ok(t0)
	for i := 0; i < len(full); i += 7 { // across many write and read boundaries
		w.write(full[i:min(i+7, len(full))])
		f.poll(ctx)
	}
	wantCounted(t, f, 2)

	huge := strings.Repeat("x", 3*DefaultMaxLine)
	for i := 0; i < len(huge); i += readChunk / 2 {
		w.write(huge[i:min(i+readChunk/2, len(huge))])
		f.poll(ctx)
	}
	w.write("\n")
	w.write(huge + "\n") // one overlong line in one read
	w.lines(2, t0)
	f.poll(ctx)
	st := f.Stats()
	if st.Malformed != 2 || st.Counted != 4 || st.Lines != 6 {
		t.Errorf("Stats = %+v; want 2 malformed (overlong), 4 counted of 6 lines", st)
	}
	if cap(f.cur.pending) > 2*DefaultMaxLine {
		t.Errorf("pending buffer grew to %d bytes, want it bounded by about MaxLine (%d)", cap(f.cur.pending), DefaultMaxLine)
	}
	w.write(ok(t0)[:30])
	f.poll(ctx)
	f.Close()
	if st := f.Stats(); st.Malformed != 3 {
		t.Errorf("Malformed = %d after closing with a partial line, want 3", st.Malformed)
	}
}

// TestStartsAtTheEnd: an existing file is read from its last complete
// line: the past is not in the windows.
func TestStartsAtTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	w.lines(50, t0)
	f, _ := newFollower(t, path)
	f.poll(context.Background())
	w.lines(2, t0)
	f.poll(context.Background())
	wantCounted(t, f, 2)
}

// TestCompletedSeconds: a second is handed out once a poll that began
// Grace after it ended read the file to its end; a line of a second handed
// out is late and dropped, so no second changes after it was read.
func TestCompletedSeconds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	f, clock := newFollower(t, path)
	ctx := context.Background()
	sec := t0.Unix()
	f.poll(ctx)
	w.lines(3, t0)
	w.write(logLine(t0, 500, "0.004", "127.0.0.1:9003", "500", "0.004"))
	w.write(logLine(t0, 200, "0.004", "127.0.0.1:9003", "200", "0.004"))

	clock.Set(time.Unix(sec+1, 400e6)) // 400 ms after the second: within Grace
	f.poll(ctx)
	got, err := f.Seconds(ctx, "web", []string{"blue", "green", "red"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Through != sec-1 || len(got.By["blue"]) != 0 {
		t.Errorf("Seconds within Grace = through %d, %v; want through %d, nothing", got.Through, got.By, sec-1)
	}

	clock.Set(time.Unix(sec+1, 600e6))
	f.poll(ctx)
	got, err = f.Seconds(ctx, "web", []string{"blue", "green", "red"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Through != sec {
		t.Errorf("Through = %d, want %d", got.Through, sec)
	}
	if b := got.By["blue"]; len(b) != 1 || b[0].Unix != sec || b[0].Requests != 3 || b[0].Errors != 0 {
		t.Errorf("blue's seconds = %+v, want one second %d of 3 requests", b, sec)
	}
	if g := got.By["green"]; len(g) != 1 || g[0].Requests != 2 || g[0].Errors != 1 {
		t.Errorf("green's seconds = %+v, want 2 requests, 1 error", g)
	}
	if _, ok := got.By["red"]; ok {
		t.Errorf("an unknown version has seconds")
	}
	if again, _ := f.Seconds(ctx, "web", []string{"blue"}, sec); len(again.By["blue"]) != 0 {
		t.Errorf("Seconds after %d = %v, want none", sec, again.By)
	}

	w.lines(2, t0) // too late: its second was handed out
	f.poll(ctx)
	if st := f.Stats(); st.Late != 2 {
		t.Errorf("Late = %d, want 2", st.Late)
	}
	s, err := f.Window(ctx, "web", "blue", 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 3 || !s.Since.Equal(time.Unix(sec-1, 0)) || s.Latency == nil {
		t.Errorf("Window(1.5s) = %d requests since %v; want 3 since %v (whole seconds)", s.Requests, s.Since, time.Unix(sec-1, 0))
	}
	if q := s.Quantile(0.5); q < 1900*time.Microsecond || q > 2100*time.Microsecond {
		t.Errorf("median = %v, want 2ms", q)
	}

	// Stale: not read to the end for StaleAfter.
	clock.Set(time.Unix(sec+1, 600e6).Add(DefaultStaleAfter + time.Millisecond))
	if _, err := f.Window(ctx, "web", "blue", time.Second); !errors.Is(err, ErrStale) {
		t.Errorf("Window when stale = %v, want ErrStale", err)
	}
	if _, err := f.Seconds(ctx, "web", []string{"blue"}, 0); !errors.Is(err, ErrStale) {
		t.Errorf("Seconds when stale = %v, want ErrStale", err)
	}
}

// TestBoundedHistory: whatever the traffic, a version keeps about 120
// seconds, and Window reaches back at most that far.
func TestBoundedHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	f, clock := newFollower(t, path)
	ctx := context.Background()
	f.poll(ctx)
	start := t0.Unix()
	for i := range int64(300) {
		clock.Set(time.Unix(start+i, 900e6))
		w.lines(2, time.Unix(start+i, 100e6))
		f.poll(ctx)
	}
	s, err := f.Window(ctx, "web", "blue", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 2*keptSeconds {
		t.Errorf("Window(1h) = %d requests, want %d (120 s of 2 a second)", s.Requests, 2*keptSeconds)
	}
	got, err := f.Seconds(ctx, "web", []string{"blue"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.By["blue"]); n != keptSeconds {
		t.Errorf("Seconds = %d seconds, want %d", n, keptSeconds)
	}
	if st := f.Stats(); st.Counted != 600 || st.Late != 0 {
		t.Errorf("Stats = %+v; want 600 counted, none late", st)
	}
}

// TestVersions: targets are replaced and removed; a removed version's
// lines are unknown; a host name is matched by its addresses; upstream
// names map lines to services.
func TestVersions(t *testing.T) {
	f, _ := newFollower(t, filepath.Join(t.TempDir(), "access.log"))
	account := func(line string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.lineLocked([]byte(strings.TrimSuffix(line, "\n")), t0)
	}
	if err := f.SetVersion("web", "green", []string{"127.0.0.1:9005"}); err != nil {
		t.Fatal(err)
	}
	account(logLine(t0, 200, "0.001", "127.0.0.1:9003", "200", "0.001")) // green's old target
	account(logLine(t0, 200, "0.001", "127.0.0.1:9005", "200", "0.001"))
	if r, _ := counts(f, "green", t0.Unix()); r != 1 {
		t.Errorf("green after SetVersion: %d requests, want 1 (its old target's line unknown)", r)
	}
	if err := f.RemoveVersion("web", "green"); err != nil {
		t.Fatal(err)
	}
	account(logLine(t0, 200, "0.001", "127.0.0.1:9005", "200", "0.001"))
	if st := f.Stats(); st.Unknown != 2 || st.Counted != 1 {
		t.Errorf("Stats = %+v; want 2 unknown, 1 counted", st)
	}

	if err := f.SetVersion("web", "blue", []string{"localhost:9101"}); err != nil {
		t.Fatal(err)
	}
	f.maybeResolve(context.Background(), t0)
	account(logLine(t0, 200, "0.001", "127.0.0.1:9101", "200", "0.001"))
	if r, _ := counts(f, "blue", t0.Unix()); r != 1 {
		t.Errorf("blue by host name: %d requests, want 1", r)
	}

	if err := f.SetVersion("api", "v1", []string{"127.0.0.1:9201"}); err != nil {
		t.Fatal(err)
	}
	if err := f.SetUpstreams("api", "api_v1", "api_v2"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetUpstreams("web", "api_v1"); err == nil {
		t.Errorf("SetUpstreams(web, api_v1) = nil, want an error: api's")
	}
	account(strings.Replace(logLine(t0, 200, "0.001", "127.0.0.1:9201", "200", "0.001"), "\tweb\t", "\tapi_v2\t", 1))
	account(strings.Replace(logLine(t0, 200, "0.001", "127.0.0.1:9201", "200", "0.001"), "\tweb\t", "\tapi\t", 1))
	f.mu.Lock()
	out := metrics.Sample{Latency: f.lb.NewSketch()}
	f.services["api"].versions["v1"].ring.add(&out, t0.Unix())
	f.mu.Unlock()
	if out.Requests != 1 {
		t.Errorf("api v1: %d requests, want 1 (upstream api_v2; api itself is no longer its name)", out.Requests)
	}
	if err := f.SetVersion("web", "blue", []string{"not a target"}); err == nil {
		t.Errorf("SetVersion(not a target) = nil, want an error")
	}
}

// TestLatencyMappingMatchesProxy: the follower's sketches merge with the
// built-in proxy's (the same mapping), so the analysis treats both alike.
func TestLatencyMappingMatchesProxy(t *testing.T) {
	p, err := proxy.New(proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	theirs := p.Window("none", "none", time.Second).Latency
	ours := metrics.NewLatencyBuckets().NewSketch()
	if err := ours.MergeWith(theirs); err != nil {
		t.Errorf("merging the proxy's sketch: %v", err)
	}
}

func TestCollector(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	f, _ := newFollower(t, path)
	f.poll(context.Background())
	w.lines(3, t0)
	w.write("junk\n")
	f.poll(context.Background())
	reg := prometheus.NewRegistry()
	other := New(filepath.Join(t.TempDir(), "other.log"), Options{})
	if err := reg.Register(f.Collector()); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(other.Collector()); err != nil {
		t.Fatalf("a second file's collector: %v", err)
	}
	want := fmt.Sprintf(`
# HELP switchyard_accesslog_lines_total Complete lines read from nginx's access log, malformed ones included.
# TYPE switchyard_accesslog_lines_total counter
switchyard_accesslog_lines_total{file=%q} 4
switchyard_accesslog_lines_total{file=%q} 0
# HELP switchyard_accesslog_malformed_lines_total Access log lines skipped: not in the switchyard log_format, too long, ahead of the clock, or cut short.
# TYPE switchyard_accesslog_malformed_lines_total counter
switchyard_accesslog_malformed_lines_total{file=%q} 1
switchyard_accesslog_malformed_lines_total{file=%q} 0
`, path, other.Path(), path, other.Path())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "switchyard_accesslog_lines_total", "switchyard_accesslog_malformed_lines_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// BenchmarkConsume: reading and accounting lines, the follower's hot path.
func BenchmarkConsume(b *testing.B) {
	f := New(filepath.Join(b.TempDir(), "access.log"), Options{Now: func() time.Time { return t0 }})
	_ = f.SetVersion("web", "blue", []string{"127.0.0.1:9001"})
	_ = f.SetVersion("web", "green", []string{"127.0.0.1:9003"})
	chunk := []byte(strings.Repeat(ok(t0)+logLine(t0, 200, "0.010", "127.0.0.1:9003, 127.0.0.1:9001", "502, 200", "0.001, 0.009"), 500))
	fl := &file{}
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		f.consume(fl, chunk)
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "lines/s")
}

// TestRunClose: Run follows until Close, which waits for it and is
// idempotent; a Run after Close returns at once.
func TestRunClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w := openWriter(t, path)
	f := New(path, Options{Poll: 10 * time.Millisecond})
	_ = f.SetVersion("web", "blue", []string{"127.0.0.1:9001"})
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(context.Background()) })
	testenv.WaitFor(t, 5*time.Second, func() bool { return !f.Stats().CaughtUp.IsZero() }, "the first read")
	w.lines(3, time.Now())
	testenv.WaitFor(t, 5*time.Second, func() bool { return f.Stats().Counted == 3 }, "3 lines counted")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // Close returned after Run did
	if err := f.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	f.Run(context.Background()) // returns at once
}
