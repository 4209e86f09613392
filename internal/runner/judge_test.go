package runner

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// fakeSeconds serves, for every completed second, requests per version
// from perSecond (errors from errs), latency 10 ms.
type fakeSeconds struct {
	perSecond, errs map[string]int64
}

func (f fakeSeconds) Seconds(_ context.Context, _ string, versions []string, after int64) (metrics.Seconds, error) {
	through := time.Now().Unix() - 1
	out := metrics.Seconds{Through: through, By: map[string][]metrics.Second{}}
	for _, v := range versions {
		for sec := max(after+1, through-5); sec <= through; sec++ {
			n := f.perSecond[v]
			if n == 0 {
				continue
			}
			sk, _ := ddsketch.NewDefaultDDSketch(0.015)
			_ = sk.AddWithCount(0.01, float64(n))
			out.By[v] = append(out.By[v], metrics.Second{Unix: sec, Sample: metrics.Sample{Requests: n, Errors: f.errs[v], Latency: sk}})
		}
	}
	return out, nil
}

func judgedService(interval time.Duration) *spec.Service {
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}, {Name: "green", Targets: []string{"g:1"}}},
		Analysis: &spec.Analysis{Judge: spec.JudgeSequential, Interval: spec.D(interval),
			Sequential: &spec.Sequential{MinBaseline: 100}},
	}}
	svc.Default()
	return svc
}

type verdicts struct {
	mu sync.Mutex
	vs []rollout.Verdict
}

func (v *verdicts) send(x rollout.Verdict) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.vs = append(v.vs, x)
}

func (v *verdicts) wait(t *testing.T, timeout time.Duration, cond func(rollout.Verdict) bool) rollout.Verdict {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, x := range v.vs {
			if cond(x) {
				v.mu.Unlock()
				return x
			}
		}
		v.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t.Fatalf("no such verdict in %s; got %+v", timeout, v.vs)
	return rollout.Verdict{}
}

// TestJudgeHoldsWithoutCanaryTraffic: no canary requests give inconclusive
// verdicts that say the rollout holds, never a decision.
func TestJudgeHoldsWithoutCanaryTraffic(t *testing.T) {
	j := NewJudge(func(*spec.Service) metrics.SecondSource {
		return fakeSeconds{perSecond: map[string]int64{"blue": 50}}
	})
	var got verdicts
	stop := j.Start(context.Background(), judgedService(time.Second), rollout.StartAnalysis{Rollout: 1, Canary: "green", Stable: "blue"}, got.send)
	defer stop()
	v := got.wait(t, 5*time.Second, func(v rollout.Verdict) bool { return v.Metric == rollout.JudgeMetric })
	if v.Result != rollout.VerdictInconclusive || !strings.HasPrefix(v.Reason, "holding: no canary requests") || v.Evidence == nil {
		t.Fatalf("verdict without canary traffic: %+v", v)
	}
}

// TestJudgeRollsBackAndCarriesOn: a canary failing every request is
// rolled back within seconds by a decisive verdict with evidence; the
// judge of the same rollout started again (a new weight) keeps its
// evidence, and a new rollout starts afresh.
func TestJudgeRollsBackAndCarriesOn(t *testing.T) {
	src := fakeSeconds{perSecond: map[string]int64{"blue": 90, "green": 10}, errs: map[string]int64{"green": 1}}
	j := NewJudge(func(*spec.Service) metrics.SecondSource { return src })
	svc := judgedService(time.Second)
	a := rollout.StartAnalysis{Rollout: 7, Canary: "green", Stable: "blue"}
	var got verdicts
	stop := j.Start(context.Background(), svc, a, got.send)
	got.wait(t, 5*time.Second, func(v rollout.Verdict) bool { return v.Evidence != nil && v.Evidence.CanaryRequests > 0 })
	stop()
	first := j.runs["web"]
	stop = j.Start(context.Background(), svc, a, got.send)
	if j.runs["web"] != first {
		t.Fatal("the same rollout's judge was not carried on")
	}
	v := got.wait(t, 15*time.Second, func(v rollout.Verdict) bool { return v.Breaker })
	stop()
	if v.Result != rollout.VerdictFailed || v.Evidence.Decision != "rollback" || !strings.Contains(v.Reason, "errors came from the canary") || len(v.Checkpoint) == 0 {
		t.Fatalf("decisive verdict: %+v", v)
	}
	stop = j.Start(context.Background(), svc, rollout.StartAnalysis{Rollout: 8, Canary: "green", Stable: "blue"}, got.send)
	defer stop()
	if j.runs["web"] == first {
		t.Fatal("a new rollout reused the previous rollout's judge")
	}
}

// TestBaselineKeepsTheWindow: the baseline merges the stable version's
// minutes in the window, not another version's, and forgets older ones.
func TestBaselineKeepsTheWindow(t *testing.T) {
	var b baseline
	sk, _ := ddsketch.NewDefaultDDSketch(0.015)
	_ = sk.AddWithCount(0.1, 10)
	now := time.Now().Unix()
	for _, x := range []struct {
		v   string
		ago int64
	}{{"blue", 3600}, {"blue", 120}, {"green", 60}, {"blue", 5}} {
		b.add(x.v, metrics.Second{Unix: now - x.ago, Sample: metrics.Sample{Requests: 10, Errors: 1, Latency: sk}})
	}
	b.trim(time.Now().Add(-30 * time.Minute))
	if len(b.minutes) != 3 {
		t.Fatalf("after trimming to 30m: %d minutes kept, want 3", len(b.minutes))
	}
	w := b.window("blue", time.Now().Add(-30*time.Minute))
	if w.Requests != 20 || w.Errors != 2 || len(w.Latency) != 1 || w.Latency[0].Count != 20 {
		t.Fatalf("blue's baseline: %+v, want 20 requests of the last 30m", w)
	}
}
