package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/analysis/sequential"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Judge is the Analyzer of the sequential judge (analysis.judge:
// sequential): every second it feeds the canary's and the stable version's
// completed seconds to internal/analysis/sequential, and sends a verdict
// the moment a test fires (rollback, promote, or hold after maxDuration),
// plus one every analysis interval with the evidence so far (the ledger)
// and the judge's checkpoint (persisted with the state, so a restarted
// process resumes the same tests).
//
// Its evidence spans the weights of one rollout: the machine starts the
// analysis again at every weight, and the judge carries on.
type Judge struct {
	seconds func(*spec.Service) metrics.SecondSource

	mu        sync.Mutex
	runs      map[string]*judgeRun // by service: the latest rollout's judge
	baselines map[string]*baseline // by service
}

type judgeRun struct {
	rollout uint64
	weight  int // the weight it judges at; a new one starts a promotion phase
	judge   *sequential.Judge
	after   int64 // the last second fed
}

var _ Analyzer = (*Judge)(nil)

// NewJudge returns the judge, reading each service's seconds from the
// source seconds returns for it (the proxy's, nginx's access log).
func NewJudge(seconds func(*spec.Service) metrics.SecondSource) *Judge {
	return &Judge{seconds: seconds, runs: map[string]*judgeRun{}, baselines: map[string]*baseline{}}
}

// Window converts a source's sample to the judge's window.
func judgeWindow(s metrics.Sample) sequential.Window {
	return sequential.Window{Requests: s.Requests, Errors: s.Errors, Latency: sequential.FromSketch(s.Latency)}
}

// Start implements Analyzer. It does nothing for a service whose judge is
// not sequential.
func (j *Judge) Start(ctx context.Context, svc *spec.Service, a rollout.StartAnalysis, send func(rollout.Verdict)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
	}
	an := svc.Spec.Analysis
	if an == nil || an.Judge != spec.JudgeSequential {
		return stop
	}
	run, err := j.run(svc, a)
	if err != nil {
		send(rollout.Verdict{Metric: rollout.JudgeMetric, Result: rollout.VerdictError, Reason: err.Error()})
		return stop
	}
	src := j.seconds(svc)
	wg.Go(func() { j.watch(ctx, svc, a, run, src, an.Interval.Duration, send) })
	return stop
}

// run returns the judge of a's rollout: the one running (a new weight),
// else one restored from a's checkpoint (a restart), else a new one over
// the baseline kept for the service.
func (j *Judge) run(svc *spec.Service, a rollout.StartAnalysis) (*judgeRun, error) {
	name := svc.Metadata.Name
	cfg := sequential.ConfigFrom(svc.Spec.Analysis.Sequential)
	cfg.Phases = a.Phases
	j.mu.Lock()
	defer j.mu.Unlock()
	if r := j.runs[name]; r != nil && r.rollout == a.Rollout && a.Rollout != 0 {
		if a.Weight != r.weight {
			r.judge.NewPhase()
			r.weight = a.Weight
		}
		return r, nil
	}
	var (
		jd  *sequential.Judge
		err error
	)
	if len(a.Checkpoint) > 0 {
		var st sequential.State
		if err = json.Unmarshal(a.Checkpoint, &st); err != nil {
			return nil, fmt.Errorf("sequential judge: the saved checkpoint cannot be read (%v); abort and retry the rollout", err)
		}
		if jd, err = sequential.Restore(cfg, st); err != nil {
			return nil, err
		}
		r := &judgeRun{rollout: a.Rollout, weight: a.Weight, judge: jd, after: st.Last}
		j.runs[name] = r
		return r, nil
	}
	base := j.baselines[name].window(a.Stable, time.Now().Add(-svc.Spec.Analysis.Sequential.BaselineWindow.Duration))
	if jd, err = sequential.New(cfg, base); err != nil {
		return nil, err
	}
	// From now on: the seconds before the rollout are the baseline's.
	r := &judgeRun{rollout: a.Rollout, weight: a.Weight, judge: jd, after: time.Now().Unix() - 1}
	j.runs[name] = r
	return r, nil
}

// watch feeds run every second and sends verdicts until ctx ends or a
// decision other than hold is sent.
func (j *Judge) watch(ctx context.Context, svc *spec.Service, a rollout.StartAnalysis, run *judgeRun, src metrics.SecondSource, interval time.Duration, send func(rollout.Verdict)) {
	name := svc.Metadata.Name
	versions := []string{a.Canary, a.Stable}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	started := time.Now()
	next := started.Add(interval)
	var canaryInInterval int64
	var lastErr error
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		secs, err := src.Seconds(ctx, name, versions, run.after)
		if err != nil {
			lastErr = err
		} else {
			lastErr = nil
			for _, sec := range merge(secs, a.Canary, a.Stable, run.after) {
				canaryInInterval += sec.canary.Requests
				if d, ok := run.judge.Observe(sec.unix, sec.canary, sec.stable); ok {
					send(decisive(run.judge, d))
					if d.Kind != sequential.Hold {
						return
					}
				}
			}
			run.after = max(run.after, secs.Through)
		}
		now := time.Now()
		if now.Before(next) {
			continue
		}
		next = now.Add(interval)
		send(j.periodic(run.judge, canaryInInterval, interval, lastErr))
		canaryInInterval = 0
	}
}

type judgedSecond struct {
	unix           int64
	canary, stable sequential.Window
}

// merge lines up the canary's and the stable version's seconds after
// after, up to secs.Through; a second with traffic for neither is left
// out.
func merge(secs metrics.Seconds, canary, stable string, after int64) []judgedSecond {
	by := map[int64]*judgedSecond{}
	var order []int64
	for _, v := range []string{canary, stable} {
		for _, s := range secs.By[v] {
			if s.Unix <= after || s.Unix > secs.Through {
				continue
			}
			js := by[s.Unix]
			if js == nil {
				js = &judgedSecond{unix: s.Unix}
				by[s.Unix] = js
				order = append(order, s.Unix)
			}
			if v == canary {
				js.canary = judgeWindow(s.Sample)
			} else {
				js.stable = judgeWindow(s.Sample)
			}
		}
	}
	slices.Sort(order)
	out := make([]judgedSecond, len(order))
	for i, u := range order {
		out[i] = *by[u]
	}
	return out
}

func evidence(jd *sequential.Judge) *rollout.Evidence {
	ev := jd.Status().Evidence
	return &ev
}

func checkpoint(jd *sequential.Judge) json.RawMessage {
	b, err := json.Marshal(jd.Checkpoint())
	if err != nil {
		return nil // cannot happen for plain data; the judge then restarts fresh
	}
	return b
}

// decisive is the verdict of a decision.
func decisive(jd *sequential.Judge, d sequential.Decision) rollout.Verdict {
	ev := evidence(jd)
	ev.Decision, ev.Test = string(d.Kind), d.Test
	v := rollout.Verdict{Metric: rollout.JudgeMetric, Samples: ev.CanaryRequests, Reason: d.Reason,
		Evidence: ev, Checkpoint: checkpoint(jd), Value: ev.ErrorEvidence}
	switch d.Kind {
	case sequential.Rollback:
		v.Result, v.Breaker = rollout.VerdictFailed, true
	case sequential.Promote:
		v.Result, v.Promote = rollout.VerdictPassed, true
	case sequential.Hold:
		v.Result, v.Hold = rollout.VerdictInconclusive, true
	}
	return v
}

// periodic is the verdict of an interval without a decision: passed when
// the canary had traffic in it (the ramp may go on), inconclusive when it
// had none (the rollout holds at this step), an error when the source
// failed.
func (j *Judge) periodic(jd *sequential.Judge, canary int64, interval time.Duration, srcErr error) rollout.Verdict {
	st := jd.Status()
	ev := st.Evidence
	v := rollout.Verdict{Metric: rollout.JudgeMetric, Result: rollout.VerdictPassed, Samples: ev.CanaryRequests,
		Value: ev.ErrorEvidence, Window: interval, Evidence: &ev, Checkpoint: checkpoint(jd),
		Reason: "watching: " + st.Summary}
	switch {
	case srcErr != nil:
		v.Result, v.Reason = rollout.VerdictError, fmt.Sprintf("metric source: %v", srcErr)
	case canary == 0:
		v.Result = rollout.VerdictInconclusive
		v.Reason = fmt.Sprintf("holding: no canary requests in the last %s, so no evidence either way; %s", interval, st.Summary)
	}
	return v
}

// baseline keeps, per minute, a service's stable traffic (tagged with the
// version that was stable), so that a rollout's judge freezes its
// thresholds from the traffic before it started.
type baseline struct {
	mu      sync.Mutex
	minutes []baselineMinute // oldest first
}

type baselineMinute struct {
	unix    int64 // the minute's start
	version string
	w       sequential.Window
}

// maxBaselineMinutes bounds a baseline (spec: baselineWindow at most 24h).
const maxBaselineMinutes = 24 * 60

func (b *baseline) add(version string, s metrics.Second) {
	if b == nil || s.Requests == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := s.Unix - s.Unix%60
	if n := len(b.minutes); n == 0 || b.minutes[n-1].unix != m || b.minutes[n-1].version != version {
		b.minutes = append(b.minutes, baselineMinute{unix: m, version: version})
		if len(b.minutes) > maxBaselineMinutes {
			b.minutes = slices.Delete(b.minutes, 0, len(b.minutes)-maxBaselineMinutes)
		}
	}
	b.minutes[len(b.minutes)-1].w.Add(judgeWindow(s.Sample))
}

// trim forgets the minutes that ended before since.
func (b *baseline) trim(since time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := 0
	for i < len(b.minutes) && b.minutes[i].unix+60 <= since.Unix() {
		i++
	}
	b.minutes = slices.Delete(b.minutes, 0, i)
}

// window merges version's minutes since since.
func (b *baseline) window(version string, since time.Time) sequential.Window {
	var w sequential.Window
	if b == nil {
		return w
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.minutes {
		if m.version == version && m.unix+60 > since.Unix() {
			w.Add(m.w)
		}
	}
	return w
}

// Watch keeps the baseline of a service: every second, the stable
// version's completed seconds, until ctx ends. stable returns the
// service's spec in force (whose analysis.sequential.baselineWindow, 30m
// by default, bounds what is kept) and the version stable now.
func (j *Judge) Watch(ctx context.Context, service string, stable func() (*spec.Service, string)) {
	b := &baseline{}
	j.mu.Lock()
	j.baselines[service] = b
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		if j.baselines[service] == b {
			delete(j.baselines, service)
		}
		delete(j.runs, service)
		j.mu.Unlock()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var after int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		svc, v := stable()
		if svc == nil || v == "" {
			continue
		}
		secs, err := j.seconds(svc).Seconds(ctx, service, []string{v}, after)
		if err != nil {
			continue
		}
		for _, s := range secs.By[v] {
			if s.Unix > after && s.Unix <= secs.Through {
				b.add(v, s)
			}
		}
		after = max(after, secs.Through)
		keep := spec.DefaultBaselineWindow
		if a := svc.Spec.Analysis; a != nil && a.Sequential != nil && a.Sequential.BaselineWindow.Duration > 0 {
			keep = a.Sequential.BaselineWindow.Duration
		}
		b.trim(time.Now().Add(-keep))
	}
}

// Analyzers starts several analyzers as one.
type Analyzers []Analyzer

// Start implements Analyzer.
func (as Analyzers) Start(ctx context.Context, svc *spec.Service, a rollout.StartAnalysis, send func(rollout.Verdict)) (stop func()) {
	stops := make([]func(), len(as))
	for i, an := range as {
		stops[i] = an.Start(ctx, svc, a, send)
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
