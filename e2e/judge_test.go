package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/testenv"
)

// flaky is a toy app instance that takes a few milliseconds to answer and
// fails every failEvery-th request (0: never) with a 500.
type flaky struct {
	addr      string
	failEvery atomic.Int64
	n         atomic.Int64
}

func startFlaky(t *testing.T, version string, failEvery int64) *flaky {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{addr: ln.Addr().String()}
	f.failEvery.Store(failEvery)
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		// 2-6 ms, so that scheduling noise on a busy machine does not
		// dominate the latencies the judge compares.
		time.Sleep(time.Duration(2000+rand.IntN(4000)) * time.Microsecond)
		if e := f.failEvery.Load(); e > 0 && f.n.Add(1)%e == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, version+" failed")
			return
		}
		io.WriteString(w, version)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return f
}

// users send rate requests a second to addr, as independent users whose
// requests do not wait for each other, and count answers by version and
// the failed ones (a 5xx or no answer).
type users struct {
	mu     sync.Mutex
	ok     map[string]int
	failed map[string]int
	stop   func()
}

func startUsers(t *testing.T, addr string, rate int) *users {
	t.Helper()
	u := &users{ok: map[string]int{}, failed: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			wg.Go(func() {
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					if ctx.Err() == nil {
						u.count("", false)
					}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				version, _, _ := strings.Cut(string(b), " ")
				u.count(version, resp.StatusCode < 500)
			})
		}
	})
	u.stop = func() { cancel(); wg.Wait() }
	t.Cleanup(u.stop)
	return u
}

// waitBaseline waits until blue (the stable version) has answered enough
// requests for the judge's baseline: minBaseline (1000), plus the seconds
// serve's baseline keeper may lag behind (it reads completed seconds,
// once a second).
func (u *users) waitBaseline(t *testing.T) {
	t.Helper()
	if !testenv.Poll(60*time.Second, func() bool { return u.total("blue") >= 1300 }) {
		t.Fatalf("blue answered %d requests in 60s, want 1300 for the judge's baseline", u.total("blue"))
	}
}

func (u *users) count(version string, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if ok {
		u.ok[version]++
	} else {
		u.failed[version]++
	}
}

func (u *users) failedOf(version string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failed[version]
}

func (u *users) total(version string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ok[version] + u.failed[version]
}

// judgeService is a service file of blue (stable) and green whose canary
// goes 10% → 50% and is judged by analysis.
func judgeService(name, listen, blue, green, analysis string) string {
	return fmt.Sprintf(`apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: %s
spec:
  listen: %q
  stable: blue
  healthCheck: {path: /health, interval: 1s, timeout: 900ms, healthyThreshold: 1, unhealthyThreshold: 3}
  versions:
    - name: blue
      targets: [%q]
    - name: green
      targets: [%q]
  strategy:
    canary:
      steps:
        - setWeight: 10
        - pause: {duration: 2m}
        - setWeight: 50
        - pause: {duration: 2m}
  analysis:
%s`, name, listen, blue, green, analysis)
}

func endedAs(res rollout.Result) func(admin.ServiceStatus) bool {
	return func(st admin.ServiceStatus) bool {
		return st.Rollout == nil && st.LastRollout != nil && st.LastRollout.Result == res
	}
}

// TestJudgeRollsBackWithFewerFailures: a canary that fails 5% of its
// requests under 100 users' requests a second, judged by the sequential
// judge and, side by side in the same daemon and the same run, by
// threshold checks (success rate ≥ 99% every 10 s over at least 50
// requests, 2 failed checks roll back: already much quicker than Flagger's
// defaults of a minute and 5). Both roll back; the
// judge lets fewer user requests fail.
func TestJudgeRollsBackWithFewerFailures(t *testing.T) {
	seqAddr := testenv.FreeAddr(t)
	seqBlue, seqGreen := startFlaky(t, "blue", 0), startFlaky(t, "green", 20)
	thrBlue, thrGreen := startFlaky(t, "blue", 0), startFlaky(t, "green", 20)
	cfg := judgeService("seq", seqAddr, seqBlue.addr, seqGreen.addr, "    judge: sequential\n") + "---\n" +
		judgeService("thr", "%LISTEN%", thrBlue.addr, thrGreen.addr, `    interval: 10s
    threshold: 2
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        minSamples: 50
`)
	d := newDaemon(t, cfg)
	d.start()
	for _, svc := range []string{"seq", "thr"} {
		d.waitStatus(svc, 10*time.Second, "both versions healthy", func(st admin.ServiceStatus) bool {
			return healthy(st, "blue") == 1 && healthy(st, "green") == 1
		})
	}
	seqUsers, thrUsers := startUsers(t, seqAddr, 100), startUsers(t, d.listen, 100)
	seqUsers.waitBaseline(t)
	thrUsers.waitBaseline(t)
	d.mustRun(0, "deploy", "seq", "--version", "green")
	d.mustRun(0, "deploy", "thr", "--version", "green")
	seq := d.waitStatus("seq", 90*time.Second, "seq rolled back", endedAs(rollout.ResultRolledBack))
	thr := d.waitStatus("thr", 120*time.Second, "thr rolled back", endedAs(rollout.ResultRolledBack))
	seqUsers.stop()
	thrUsers.stop()

	seqFailed, thrFailed := seqUsers.failedOf("green"), thrUsers.failedOf("green")
	t.Logf("sequential judge: %d failed user requests (of %d to green) in %s: %s",
		seqFailed, seqUsers.total("green"), seq.LastRollout.FinishedAt.Sub(seq.LastRollout.StartedAt).Round(time.Second), seq.LastRollout.Reason)
	t.Logf("threshold checks: %d failed user requests (of %d to green) in %s: %s",
		thrFailed, thrUsers.total("green"), thr.LastRollout.FinishedAt.Sub(thr.LastRollout.StartedAt).Round(time.Second), thr.LastRollout.Reason)
	if !strings.Contains(seq.LastRollout.Reason, "sequential judge") || !strings.Contains(seq.LastRollout.Reason, "errors came from the canary") {
		t.Errorf("seq was not rolled back by the judge's error test: %s", seq.LastRollout.Reason)
	}
	if seqFailed > thrFailed {
		t.Errorf("the judge let %d user requests fail, the threshold checks %d: want no more", seqFailed, thrFailed)
	}
	if f := seqUsers.failedOf("blue") + thrUsers.failedOf("blue") + seqUsers.failedOf(""); f != 0 {
		t.Errorf("%d requests to blue (or unanswered) failed, want 0", f)
	}
	out := d.mustRun(0, "history", "seq")
	if !strings.Contains(out, "why: rollout #1 of green rolled-back: the sequential judge") {
		t.Errorf("history does not say why in one sentence:\n%s", out)
	}
}

// TestJudgePromotesGoodVersionAcrossKill9: a version as good as stable is
// promoted by the judge before its steps run out, and serve killed with
// SIGKILL in the middle resumes the judge from its persisted statistics:
// the first verdict after the restart counts the canary requests judged
// before the kill.
func TestJudgePromotesGoodVersionAcrossKill9(t *testing.T) {
	blue, green := startFlaky(t, "blue", 0), startFlaky(t, "green", 0)
	// slowMargin 5: loopback latencies of a few milliseconds drift with the
	// machine's load by more than a point between phases; this test is
	// about an early promotion surviving kill -9, not about the margin.
	cfg := strings.Replace(judgeService("web", "%LISTEN%", blue.addr, green.addr, `    judge: sequential
    interval: 2s
    sequential: {minExposure: 10s, slowMargin: 5}
`), "pause: {duration: 2m}\n        - setWeight: 50", "pause: {duration: 20s}\n        - setWeight: 50", 1)
	d := newDaemon(t, cfg)
	d.start()
	d.waitStatus("web", 10*time.Second, "both versions healthy", func(st admin.ServiceStatus) bool {
		return healthy(st, "blue") == 1 && healthy(st, "green") == 1
	})
	u := startUsers(t, d.listen, 100)
	u.waitBaseline(t)
	d.mustRun(0, "deploy", "web", "--version", "green")
	judged := func(st admin.ServiceStatus) int64 {
		for _, v := range st.LastVerdicts {
			if v.Metric == rollout.JudgeMetric && v.Evidence != nil {
				return v.Evidence.CanaryRequests
			}
		}
		return 0
	}
	before := judged(d.waitStatus("web", 30*time.Second, "the judge's evidence of 100 canary requests", func(st admin.ServiceStatus) bool {
		return judged(st) >= 100
	}))
	// A SIGKILL takes the data plane down with it: the requests in
	// flight then are lost whatever the judge does, so users pause.
	u.stop()
	killed := time.Now()
	d.kill(syscall.SIGKILL)
	d.start()
	u = startUsers(t, d.listen, 100)
	st := d.waitStatus("web", 150*time.Second, "green promoted", endedAs(rollout.ResultPromoted))
	u.stop()
	took := st.LastRollout.FinishedAt.Sub(st.LastRollout.StartedAt)
	t.Logf("promoted in %s (steps: 4m20s): %s", took.Round(time.Second), st.LastRollout.Reason)
	if !strings.Contains(st.LastRollout.Reason, "the sequential judge promoted it") {
		t.Fatalf("not promoted by the judge: %s", st.LastRollout.Reason)
	}
	if took >= 4*time.Minute {
		t.Errorf("promoted after %s: not before the steps ran out", took)
	}
	if f := u.failedOf("green") + u.failedOf("blue") + u.failedOf(""); f != 0 {
		t.Errorf("%d user requests failed after the restart, want 0", f)
	}
	var h []rollout.HistoryEntry
	if err := json.Unmarshal([]byte(d.mustRun(0, "history", "web", "--verdicts", "-o", "json")), &h); err != nil {
		t.Fatal(err)
	}
	var after *rollout.Evidence
	for _, e := range h {
		if e.Verdict != nil && e.Verdict.Metric == rollout.JudgeMetric && e.At.After(killed) && e.Verdict.Evidence != nil {
			after = e.Verdict.Evidence
			break
		}
	}
	if after == nil {
		t.Fatalf("no judge verdict after the restart in the history")
	}
	if after.CanaryRequests < before {
		t.Fatalf("the first verdict after the restart counts %d canary requests, fewer than the %d judged before the kill: the statistics were lost", after.CanaryRequests, before)
	}
	t.Logf("judged before the kill: %d canary requests; first verdict after the restart: %d", before, after.CanaryRequests)
}
