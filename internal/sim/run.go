package sim

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/analysis/sequential"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Result is how a simulated rollout ended.
type Result string

// Results.
const (
	Rollback Result = "rollback"
	Promote  Result = "promote"
	// None: no decision (maxDuration passed, the rollout paused on too
	// little data, or the run reached its Limit).
	None Result = "none"
)

// Outcome is one simulated rollout.
type Outcome struct {
	Result Result
	// Reason is the test or check that decided, or why there was none.
	Reason string
	// At is when the decision was taken, from the start of the rollout.
	At time.Duration
	// Exposure up to the decision: requests the canary served, those that
	// failed, and those it served slower than the stable version would
	// have (the scenario's added latency).
	CanaryRequests, Failed, Slowed int64
	// Pushed is how many of Slowed the regression took above stable's
	// p99 (the design note's count of slowed requests).
	Pushed int64
}

// decision is what a controller decided at a second.
type decision struct {
	result Result
	reason string
}

// controller is one judge with its way of moving traffic. At the start
// of every second t (from 0, the start of the rollout) at applies what
// was measured before t and may decide; weight is then the canary's
// percentage for second t, whose traffic feed receives.
type controller interface {
	at(t int64) (decision, bool)
	weight() int
	feed(t int64, c, s *window)
}

// Run simulates one rollout of sc under p with seed.
func Run(sc Scenario, p Policy, seed uint64) (Outcome, error) {
	ctl, err := p.controller(sc, seed)
	if err != nil {
		return Outcome{}, err
	}
	tr := newTraffic(sc, seed, 0x7261666669635f31) // the rollout's requests
	var c, s window
	var out Outcome
	limit := int64(p.Limit / time.Second)
	if limit <= 0 {
		limit = int64(DefaultLimit / time.Second)
	}
	for t := int64(0); ; t++ {
		if d, ok := ctl.at(t); ok {
			out.Result, out.Reason, out.At = d.result, d.reason, time.Duration(t)*time.Second
			return out, nil
		}
		if t >= limit {
			out.Result, out.Reason, out.At = None, fmt.Sprintf("no decision within %s", p.Limit), time.Duration(t)*time.Second
			return out, nil
		}
		tr.second(float64(ctl.weight())/100, &c, &s)
		out.CanaryRequests += c.requests
		out.Failed += c.errors
		out.Slowed += c.slowed
		out.Pushed += c.pushed
		ctl.feed(t, &c, &s)
	}
}

// Runs simulates n rollouts, run i with seed seed+i, on every core; the
// outcomes are in run order (the same whatever the scheduling).
func Runs(sc Scenario, p Policy, n int, seed uint64) ([]Outcome, error) {
	out := make([]Outcome, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = Run(sc, p, seed+uint64(i))
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p Policy) controller(sc Scenario, seed uint64) (controller, error) {
	switch p.Judge {
	case JudgeSequential:
		var base window
		newTraffic(sc, seed, 0x626173656c696e65).baseline(p.Baseline, &base)
		cfg := p.Sequential
		cfg.Phases = rollout.JudgePhases(p.Steps)
		j, err := sequential.New(cfg, base.Window())
		if err != nil {
			return nil, err
		}
		return &seqController{p: &p, judge: j}, nil
	case JudgeThresholds:
		c := &thresholdController{p: &p}
		for _, m := range p.Metrics {
			iv := int64(max(m.Interval.Duration.Round(time.Second)/time.Second, 1))
			c.checks = append(c.checks, &check{metric: m, interval: iv})
		}
		return c, nil
	case JudgeFlagger:
		f := p.Flagger
		if f.Interval < time.Second || f.StepWeight < 1 || f.MaxWeight < f.StepWeight || f.Threshold < 1 {
			return nil, fmt.Errorf("flagger judge: interval %s, stepWeight %d, maxWeight %d, threshold %d: out of range", f.Interval, f.StepWeight, f.MaxWeight, f.Threshold)
		}
		return &flaggerController{f: f, interval: int64(f.Interval / time.Second)}, nil
	}
	return nil, fmt.Errorf("unknown judge %q", p.Judge)
}

// ramp walks compiled steps: the weight they set and when their pauses
// end. Hooks, gates and pauses that wait for a person are taken as
// passing at once (the simulation has no person and no hook).
type ramp struct {
	steps     []rollout.Step
	canary    bool
	idx       int
	stepStart int64
	w         int
}

// sequential judge on the ramp (the semantics of judge: sequential): the
// weight follows the steps while no test has fired; a rollback decision
// rolls back at once, at any step; a promotion skips the remaining steps
// and gives the canary all traffic; when a canary's steps run out (its
// Switch) the rollout holds at its last weight until the judge decides or
// maxDuration passes, which holds for a person: no decision. The judge
// watches from the first second with traffic on the new version.
type seqController struct {
	p       *Policy
	judge   *sequential.Judge
	r       ramp
	started bool
	pending *sequential.Decision
	init    bool
}

func (c *seqController) at(t int64) (decision, bool) {
	if !c.init {
		c.r = ramp{steps: c.p.Steps, canary: c.p.Strategy == rollout.StrategyCanary}
		c.init = true
	}
	if d := c.pending; d != nil {
		c.pending = nil
		switch d.Kind {
		case sequential.Rollback:
			return decision{Rollback, d.Test}, true
		case sequential.Promote:
			return decision{Promote, d.Test}, true
		case sequential.Hold:
			if !c.p.Watch {
				return decision{None, "maxDuration passed without a decision: the rollout holds for a person"}, true
			}
		}
	}
	r := &c.r
	for r.idx < len(r.steps) {
		st := r.steps[r.idx]
		switch st.Kind {
		case rollout.StepSetWeight:
			if st.Weight != r.w {
				c.judge.NewPhase() // the runner's judge does so at every new weight
			}
			r.w = st.Weight
		case rollout.StepPause:
			if st.Duration > 0 && t < r.stepStart+int64(st.Duration/time.Second) {
				return decision{}, false
			}
		case rollout.StepBake:
			return decision{}, false // a judged bake ends on the judge's promotion only
		case rollout.StepSwitch:
			if r.canary {
				return decision{}, false // hold at the last weight
			}
			r.w = 100
		}
		r.idx++
		r.stepStart = t
	}
	return decision{Promote, "steps done"}, true
}

func (c *seqController) weight() int { return c.r.w }

func (c *seqController) feed(t int64, cw, sw *window) {
	if c.r.w == 0 && !c.started {
		return
	}
	c.started = true
	if d, ok := c.judge.Observe(t+1, cw.Window(), sw.Window()); ok {
		c.pending = &d
	}
}

// thresholdController is Switchyard's threshold checks on the ramp
// (internal/rollout's engine and internal/runner's Checks): each metric
// is measured every interval over the canary's last interval, the checks
// restarting at every weight change; a pause ends once its time passed
// and every metric's latest check passed over a window measured entirely
// at the current weight (a bake: since the switch); failed checks count
// for the whole rollout and the threshold-th rolls back at once;
// errorLimit inconclusive checks in a row pause the rollout (no decision).
type thresholdController struct {
	p          *Policy
	r          ramp
	init       bool
	checks     []*check
	failed     int
	since      int64 // the current weight's start
	switchedAt int64
	switched   bool
}

type check struct {
	metric   spec.Metric
	interval int64
	next     int64
	acc      window
	has      bool
	passed   bool
	failedV  bool
	from     int64
	unjudged int
}

func (c *thresholdController) restart(t int64) {
	for _, k := range c.checks {
		k.next = t + k.interval
		k.acc.reset()
	}
}

func (c *thresholdController) at(t int64) (decision, bool) {
	if !c.init {
		c.r = ramp{steps: c.p.Steps, canary: c.p.Strategy == rollout.StrategyCanary}
		c.init = true
		c.restart(0)
	}
	for _, k := range c.checks {
		if t != k.next {
			continue
		}
		x := analysis.Measurement{Requests: k.acc.requests, Errors: k.acc.errors}
		if x.Requests > 0 {
			x.Latency = float64(k.acc.quantile(quantileOf(k.metric))) / float64(time.Millisecond)
		}
		v := analysis.Evaluate(k.metric, x)
		k.acc.reset()
		k.next += k.interval
		k.has, k.from = true, t-k.interval
		k.passed, k.failedV = v.Result == rollout.VerdictPassed, v.Result == rollout.VerdictFailed
		switch v.Result {
		case rollout.VerdictFailed:
			k.unjudged = 0
			c.failed++
			if c.failed >= max(c.p.Threshold, 1) {
				return decision{Rollback, fmt.Sprintf("%s (failed check %d of %d)", v.Reason, c.failed, c.p.Threshold)}, true
			}
		case rollout.VerdictInconclusive, rollout.VerdictError:
			// Before a blue-green switch the new version has no traffic:
			// nothing to count.
			if c.r.w > 0 {
				k.unjudged++
				if c.p.ErrorLimit > 0 && k.unjudged >= c.p.ErrorLimit {
					return decision{None, fmt.Sprintf("paused: %d inconclusive checks in a row (%s)", k.unjudged, v.Reason)}, true
				}
			}
		default:
			k.unjudged = 0
		}
	}
	r := &c.r
	for r.idx < len(r.steps) {
		st := r.steps[r.idx]
		switch st.Kind {
		case rollout.StepSetWeight:
			if r.w != st.Weight {
				r.w, c.since = st.Weight, t
				c.restart(t)
			}
		case rollout.StepPause, rollout.StepGate:
			if st.Kind == rollout.StepPause && st.Duration > 0 && t < r.stepStart+int64(st.Duration/time.Second) {
				return decision{}, false
			}
			if !c.ok(false) {
				return decision{}, false
			}
		case rollout.StepSwitch:
			if !c.ok(false) {
				return decision{}, false
			}
			r.w, c.switched, c.switchedAt = 100, true, t
		case rollout.StepBake:
			if t < r.stepStart+int64(st.Duration/time.Second) || !c.ok(true) {
				return decision{}, false
			}
		}
		r.idx++
		r.stepStart = t
	}
	return decision{Promote, "all steps passed"}, true
}

// ok is the engine's analysisHold == "".
func (c *thresholdController) ok(bake bool) bool {
	for _, k := range c.checks {
		if k.has && k.failedV {
			return false
		}
	}
	since := c.since
	switch {
	case bake:
		since = c.switchedAt
	case !c.r.canary:
		return true
	}
	for _, k := range c.checks {
		if !k.has || !k.passed || k.from < since {
			return false
		}
	}
	return true
}

func (c *thresholdController) weight() int { return c.r.w }

func (c *thresholdController) feed(_ int64, cw, _ *window) {
	for _, k := range c.checks {
		k.acc.merge(cw)
	}
}

// flaggerController is Flagger's schedule and checks, as
// fluxcd/flagger pkg/controller/scheduler.go (advanceCanary, runCanary)
// runs them every analysis interval:
//   - the first run (canary weight 0, no iterations) starts the analysis
//     and sets the weight to stepWeight without checking anything;
//   - every later run first rolls back if failedChecks >= threshold,
//     then runs the checks over the last interval; a failed check
//     increments failedChecks (never reset by a passing one) and leaves
//     the weight; a passing one adds stepWeight below maxWeight, and at
//     maxWeight promotes (phase Promoting; the traffic shift follows on
//     the next run, which we count as the decision's moment: the check).
//
// So the threshold-th failed check rolls back one interval later. The
// built-in metrics are the canary's alone: request-success-rate (non-5xx
// share, percent) at least MinSuccessRate, request-duration p99 at most
// MaxP99; an interval without canary requests is a failed check (Flagger's
// "no values found" halts advancement and counts as failed).
type flaggerController struct {
	f        Flagger
	interval int64
	w        int
	failed   int
	acc      window
	started  bool
}

func (c *flaggerController) at(t int64) (decision, bool) {
	if !c.started {
		c.acc.reset()
		c.started = true
	}
	if t%c.interval != 0 {
		return decision{}, false
	}
	defer c.acc.reset()
	if t == 0 {
		c.w = c.f.StepWeight
		return decision{}, false
	}
	if c.failed >= c.f.Threshold {
		return decision{Rollback, fmt.Sprintf("failed checks threshold reached %d", c.failed)}, true
	}
	ok := c.acc.requests > 0
	if ok {
		sr := 100 * float64(c.acc.requests-c.acc.errors) / float64(c.acc.requests)
		ok = sr >= c.f.MinSuccessRate && c.acc.quantile(0.99) <= c.f.MaxP99
	}
	if !ok {
		c.failed++
		return decision{}, false
	}
	if c.w < c.f.MaxWeight {
		c.w = min(c.w+c.f.StepWeight, 100)
		return decision{}, false
	}
	return decision{Promote, "checks passed at maxWeight"}, true
}

func (c *flaggerController) weight() int { return c.w }

func (c *flaggerController) feed(_ int64, cw, _ *window) { c.acc.merge(cw) }

// quantileOf is request-duration's quantile (the spec defaults it).
func quantileOf(m spec.Metric) float64 {
	if m.Quantile > 0 {
		return m.Quantile
	}
	return spec.DefaultQuantile
}
