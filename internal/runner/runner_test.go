package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// journal is the shared, ordered record of what the fakes were asked to
// do, so a test can tell what happened before what.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.lines = append(j.lines, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

func (j *journal) count(prefix string) int {
	n := 0
	for _, l := range j.all() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// memStore is an in-memory Store that can be told to fail.
type memStore struct {
	j       *journal
	mu      sync.Mutex
	state   rollout.State
	found   bool
	history []rollout.HistoryEntry
	fail    error
}

func (s *memStore) Save(_ context.Context, service string, st rollout.State, h ...rollout.HistoryEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		s.j.add("save failed")
		return s.fail
	}
	s.state, s.found = st, true
	s.history = append(s.history, h...)
	s.j.add("save %s phase=%s weights=%s", service, st.Phase, rollout.FormatWeights(st.Weights))
	return nil
}

func (s *memStore) Load(context.Context, string) (rollout.State, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.found, nil
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	s.fail = err
	s.mu.Unlock()
}

func (s *memStore) historyKinds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, h := range s.history {
		out = append(out, h.Kind)
	}
	return out
}

// fakeRouter records routes and versions, and fails while fail is set.
type fakeRouter struct {
	j    *journal
	mu   sync.Mutex
	fail error
}

func (r *fakeRouter) Route(_ context.Context, _ string, rt rollout.Routing) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		r.j.add("route failed %s", rollout.FormatWeights(rt.Weights))
		return r.fail
	}
	r.j.add("route %s", rollout.FormatWeights(rt.Weights))
	return nil
}

func (r *fakeRouter) setFail(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

func (r *fakeRouter) SetVersion(_, version string, _ []string) error {
	r.j.add("register %s", version)
	return nil
}

func (r *fakeRouter) RemoveVersion(_, version string) error {
	r.j.add("retire %s", version)
	return nil
}

// fakeAnalyzer hands out the send function of every analysis it starts.
type fakeAnalyzer struct {
	mu    sync.Mutex
	sends []func(rollout.Verdict)
}

func (a *fakeAnalyzer) Start(ctx context.Context, _ *spec.Service, _ rollout.StartAnalysis, send func(rollout.Verdict)) func() {
	a.mu.Lock()
	a.sends = append(a.sends, send)
	a.mu.Unlock()
	return func() {}
}

// latest returns the send function of the analysis started last.
func (a *fakeAnalyzer) latest() func(rollout.Verdict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sends[len(a.sends)-1]
}

// fakeExecutor runs hooks until released (or their context ends).
type fakeExecutor struct {
	j       *journal
	release chan string // the error to answer with ("" for success)
}

func (e *fakeExecutor) Execute(ctx context.Context, _ *spec.Service, a rollout.Action) rollout.Event {
	h := a.(rollout.RunHook)
	e.j.add("hook %s attempt %d", h.Name, h.Attempt)
	select {
	case msg := <-e.release:
		return rollout.HookDone{Rollout: h.Rollout, Step: h.Step, Attempt: h.Attempt, Name: h.Name, Err: msg}
	case <-ctx.Done():
		e.j.add("hook %s stopped: %v", h.Name, context.Cause(ctx))
		return rollout.HookDone{Rollout: h.Rollout, Step: h.Step, Attempt: h.Attempt, Name: h.Name, Err: ctx.Err().Error()}
	}
}

// world is one service's runner over fakes, inside a synctest bubble.
type world struct {
	t        *testing.T
	j        *journal
	store    *memStore
	router   *fakeRouter
	analyzer *fakeAnalyzer
	exec     *fakeExecutor
	svc      *spec.Service
	m        *rollout.Machine
	r        *Runner
	cancel   context.CancelFunc
}

const serviceDoc = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: 127.0.0.1:8080
  versions:
    - {name: blue, targets: ["127.0.0.1:9001"]}
    - {name: green, targets: ["127.0.0.1:9101"]}
  stable: blue
  strategy:
    canary:
      steps: [{setWeight: 20}, {pause: {}}]
  analysis:
    interval: 10s
    threshold: 1
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}}
`

func newWorld(t *testing.T) *world {
	t.Helper()
	svcs, err := spec.Parse("web.yaml", []byte(serviceDoc))
	if err != nil {
		t.Fatal(err)
	}
	m, err := rollout.New(svcs[0])
	if err != nil {
		t.Fatal(err)
	}
	j := &journal{}
	return &world{t: t, j: j, store: &memStore{j: j}, router: &fakeRouter{j: j}, analyzer: &fakeAnalyzer{},
		exec: &fakeExecutor{j: j, release: make(chan string)}, svc: svcs[0], m: m}
}

// start runs a runner from what the store holds (a restart, after the
// first), and waits until its restored state is in force.
func (w *world) start() {
	w.t.Helper()
	st, err := Restore(context.Background(), w.store, "web")
	if err != nil {
		w.t.Fatal(err)
	}
	w.r = New(Options{Store: w.store, Router: w.router, Targets: w.router, Analyzer: w.analyzer, Executor: w.exec, Tick: time.Second}, w.svc, w.m, st)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.r.Run(ctx)
	if err := w.r.WaitStarted(ctx); err != nil {
		w.t.Fatal(err)
	}
	w.r.HealthChanged("blue", 1, 1)
	w.r.HealthChanged("green", 1, 1)
	synctest.Wait()
}

// stop ends the runner as a crash would: nothing more reaches the store.
func (w *world) stop() {
	w.cancel()
	<-w.r.Done()
}

func (w *world) submit(e rollout.Event) error {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := w.r.Submit(ctx, e)
	synctest.Wait()
	return err
}

func (w *world) state() rollout.State {
	_, st := w.r.Snapshot()
	return st
}

// TestPersistBeforeActing: every action of a transition happens after the
// transition's state was saved.
func TestPersistBeforeActing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.start()
		defer w.stop()
		before := len(w.j.all())
		if err := w.submit(rollout.Deploy{Version: "green", By: "test"}); err != nil {
			t.Fatal(err)
		}
		lines := w.j.all()[before:]
		route := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "route ") })
		save := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "weights=blue:80,green:20") })
		if route < 0 || save < 0 || save > route {
			t.Fatalf("journal %q: want the state with weights blue:80,green:20 saved before the route", lines)
		}
	})
}

// TestFailedSaveExecutesNothing: when the store refuses a transition, no
// action runs and the state in force is the old one.
func TestFailedSaveExecutesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.start()
		defer w.stop()
		w.store.setFail(errors.New("disk full"))
		before := len(w.j.all())
		err := w.submit(rollout.Deploy{Version: "green", By: "test"})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("deploy with a failing store: %v, want the store's error", err)
		}
		for _, l := range w.j.all()[before:] {
			if !strings.HasPrefix(l, "save failed") {
				t.Errorf("after a failed save: %q happened, want nothing", l)
			}
		}
		if st := w.state(); st.Rollout != nil || st.Weights["blue"] != 100 {
			t.Fatalf("state after a failed save: rollout %+v, weights %v; want the old one", st.Rollout, st.Weights)
		}
		w.store.setFail(nil)
		if err := w.submit(rollout.Deploy{Version: "green", By: "test"}); err != nil {
			t.Fatalf("deploy once the store works: %v", err)
		}
	})
}

// TestStaleVerdictDropped: a verdict of an earlier rollout, delivered after
// the next one started, does not count for it.
func TestStaleVerdictDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.start()
		defer w.stop()
		if err := w.submit(rollout.Deploy{Version: "green", By: "test"}); err != nil {
			t.Fatal(err)
		}
		first := w.state().Rollout.ID
		if err := w.submit(rollout.Abort{By: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := w.submit(rollout.Retry{By: "test"}); err != nil {
			t.Fatal(err)
		}
		id := w.state().Rollout.ID
		// A verdict the old analysis measured, queued after the new rollout
		// started.
		w.r.verdicts <- verdict{rollout: first, Verdict: rollout.Verdict{Metric: "request-success-rate", Result: rollout.VerdictFailed, Value: 50, Samples: 100}}
		synctest.Wait()
		if st := w.state(); st.Rollout == nil || st.Rollout.ID != id || st.Rollout.FailedChecks != 0 {
			t.Fatalf("after a stale failed verdict: rollout %+v, want #%d with no failed check", st.Rollout, id)
		}
		// The current analysis's verdicts do count (threshold 1).
		w.analyzer.latest()(rollout.Verdict{Metric: "request-success-rate", Result: rollout.VerdictFailed, Value: 50, Samples: 100})
		synctest.Wait()
		if st := w.state(); st.Rollout != nil || st.Last.Result != rollout.ResultRolledBack {
			t.Fatalf("after a current failed verdict: last %+v, want rolled back", st.Last)
		}
	})
}

// TestRouterFailureFedBack: a router error becomes the machine's
// RouterFailed (Degraded, nothing advances) and every tick asks again.
func TestRouterFailureFedBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.start()
		defer w.stop()
		w.router.setFail(errors.New("nginx -t failed"))
		if err := w.submit(rollout.Deploy{Version: "green", By: "test"}); err != nil {
			t.Fatal(err)
		}
		st := w.state()
		if st.Phase != rollout.PhaseDegraded || !strings.Contains(st.RouterError, "nginx -t failed") {
			t.Fatalf("after a router failure: phase %s, router error %q; want Degraded with the error", st.Phase, st.RouterError)
		}
		retries := w.j.count("route failed")
		time.Sleep(3 * time.Second) // fake time: three ticks
		synctest.Wait()
		if n := w.j.count("route failed"); n < retries+3 {
			t.Fatalf("%d routes asked in 3 ticks, want one a tick", n-retries)
		}
		w.router.setFail(nil)
		time.Sleep(time.Second)
		synctest.Wait()
		if st := w.state(); st.Phase != rollout.PhaseProgressing || st.RouterError != "" {
			t.Fatalf("after the router recovered: phase %s, error %q; want Progressing", st.Phase, st.RouterError)
		}
	})
}

// TestRestartReplaysNothingTwice: a runner restarted from the store
// re-asserts registrations and weights (idempotent) but records and
// notifies nothing again, and keeps the rollout where it was.
func TestRestartReplaysNothingTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.start()
		if err := w.submit(rollout.Deploy{Version: "green", By: "test"}); err != nil {
			t.Fatal(err)
		}
		before := w.state()
		w.stop()
		hist := w.store.historyKinds()
		lines := len(w.j.all())

		w.start()
		defer w.stop()
		after := w.state()
		if after.Rollout == nil || after.Rollout.StepIndex != before.Rollout.StepIndex || !maps.Equal(after.Weights, before.Weights) {
			t.Fatalf("after restart: rollout %+v weights %v; want step %d, weights %v", after.Rollout, after.Weights, before.Rollout.StepIndex, before.Weights)
		}
		if got := w.store.historyKinds(); !slices.Equal(got, hist) {
			t.Errorf("history after restart %v, want unchanged %v", got, hist)
		}
		for _, l := range w.j.all()[lines:] {
			if !strings.HasPrefix(l, "save ") && !strings.HasPrefix(l, "register ") && l != "route blue:80,green:20" {
				t.Errorf("restart did %q; want only saves, registrations and the weights in force", l)
			}
		}
	})
}

// hookWorld is a world whose canary runs a hook after its health gate
// (hooks have no spec surface yet: the plan is set on the stored state).
func hookWorld(t *testing.T, timeout time.Duration) *world {
	w := newWorld(t)
	now := time.Now()
	st, _ := w.m.Reconcile(rollout.State{}, now)
	st, _, err := w.m.Step(st, rollout.HealthChanged{Version: "blue", Healthy: 1, Total: 1}, now)
	if err != nil {
		t.Fatal(err)
	}
	st, _, err = w.m.Step(st, rollout.Deploy{Version: "green", By: "test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	st.Rollout.Steps = []rollout.Step{{Kind: rollout.StepHealthGate}, {Kind: rollout.StepHook, Name: "validateService", Timeout: timeout}, {Kind: rollout.StepSwitch}}
	st.Rollout.Analysis = false
	if err := w.store.Save(context.Background(), "web", st); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestHookRunsAsynchronously: while a hook runs, commands and ticks are
// answered at once; its result then advances the rollout.
func TestHookRunsAsynchronously(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := hookWorld(t, time.Hour)
		w.start()
		defer w.stop()
		if n := w.j.count("hook validateService attempt 1"); n != 1 {
			t.Fatalf("hook started %d times, want once", n)
		}
		// The runner is free while the hook runs.
		if err := w.submit(rollout.Pause{By: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := w.submit(rollout.Resume{By: "test"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := w.j.count("hook validateService"); n != 1 {
			t.Fatalf("hook started %d times after commands and ticks, want once", n)
		}
		w.exec.release <- ""
		synctest.Wait()
		if st := w.state(); st.Rollout != nil || st.Last.Result != rollout.ResultPromoted {
			t.Fatalf("after the hook succeeded: rollout %+v, last %+v; want promoted", st.Rollout, st.Last)
		}
	})
}

// TestHookResumedAfterCrash: a hook running when the process died runs
// again after the restart, and only then.
func TestHookResumedAfterCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := hookWorld(t, time.Hour)
		w.start()
		w.stop() // the hook is stopped with the process
		if n := w.j.count("hook validateService attempt 1"); n != 1 {
			t.Fatalf("hook started %d times before the crash, want once", n)
		}
		w.start()
		defer w.stop()
		if n := w.j.count("hook validateService attempt 1"); n != 2 {
			t.Fatalf("hook started %d times in all after the restart, want 2", n)
		}
		w.exec.release <- "exit status 1"
		synctest.Wait()
		if st := w.state(); st.Last == nil || st.Last.Result != rollout.ResultRolledBack || !strings.Contains(st.Last.Reason, "exit status 1") {
			t.Fatalf("after the resumed hook failed: last %+v, want rolled back with its error", st.Last)
		}
	})
}

// TestHookDeadline: a hook that hangs past its timeout rolls the rollout
// back at the next tick, and is stopped.
func TestHookDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := hookWorld(t, 30*time.Second)
		w.start()
		defer w.stop()
		time.Sleep(31 * time.Second)
		synctest.Wait()
		st := w.state()
		if st.Last == nil || st.Last.Result != rollout.ResultRolledBack || !strings.Contains(st.Last.Reason, "did not finish within 30s") {
			t.Fatalf("after the hook's timeout: last %+v, want rolled back", st.Last)
		}
		if w.j.count("hook validateService stopped") != 1 {
			t.Fatalf("journal %q: want the hung hook stopped", w.j.all())
		}
	})
}

// TestNoExecutorFailsHooks: without an executor a hook fails rather than
// being skipped.
func TestNoExecutorFailsHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := hookWorld(t, time.Minute)
		w.exec = nil
		st, _ := Restore(context.Background(), w.store, "web")
		w.r = New(Options{Store: w.store, Router: w.router, Targets: w.router}, w.svc, w.m, st)
		ctx, cancel := context.WithCancel(context.Background())
		defer func() { cancel(); <-w.r.Done() }()
		go w.r.Run(ctx)
		if err := w.r.WaitStarted(ctx); err != nil {
			t.Fatal(err)
		}
		w.r.HealthChanged("green", 1, 1)
		synctest.Wait()
		if st := w.state(); st.Last == nil || st.Last.Result != rollout.ResultRolledBack || !strings.Contains(st.Last.Reason, "no executor") {
			t.Fatalf("hook without an executor: last %+v, want rolled back saying why", st.Last)
		}
	})
}

// TestAnalysisRestartsPerWeight: each new canary weight gets a fresh
// analysis (its first check measures a whole interval at that weight); a
// reload at the same weight keeps the running one.
func TestAnalysisRestartsPerWeight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.start()
		defer w.stop()
		if err := w.submit(rollout.Deploy{Version: "green", By: "test"}); err != nil {
			t.Fatal(err)
		}
		w.analyzer.mu.Lock()
		started := len(w.analyzer.sends)
		w.analyzer.mu.Unlock()
		if started != 2 {
			t.Fatalf("%d analyses started by a deploy that reached 20%%, want 2 (at 0%% and at 20%%)", started)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.r.Reconfigure(ctx, w.svc, w.m); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		w.analyzer.mu.Lock()
		defer w.analyzer.mu.Unlock()
		if len(w.analyzer.sends) != started {
			t.Fatalf("a reload at the same weight restarted the analysis (%d starts, want %d)", len(w.analyzer.sends), started)
		}
	})
}
