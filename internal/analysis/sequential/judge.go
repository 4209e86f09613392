// Package sequential is the sequential judge (analysis.judge: sequential):
// anytime-valid tests that compare a canary with the stable version serving
// in the same seconds, evaluated after every second, whose false-alarm rate
// holds whatever the monitoring schedule (../shared/design/sequential-judge.md,
// docs/judge.md).
//
//   - Errors: the label test. Each error is the canary's or the stable's;
//     if the canary is no worse, an error is the canary's with probability
//     at most its share of the second's requests. A mixture of likelihood
//     ratios over relative risks 1.25 … 86 is an e-process; it rolls back
//     at 1/α_err.
//   - Latency: the same test on "slower than τ_j" events, τ_j the stable
//     baseline's p50, p90, p99, p99.9, averaged, rolling back at 2/α_lat;
//     and time-uniform quantile confidence sequences (double stitching),
//     rolling back when the canary's lower band clears stable's upper band
//     at a monitored quantile (each band at α_lat/4).
//   - Promotion: non-inferiority. Beta-binomial mixture confidence
//     sequences of each version's error rate and rate of requests slower
//     than stable's p99; promote when the canary's upper bound is within a
//     margin of stable's lower bound for both, after a minimum exposure.
//
// When no stable traffic flows in a second (after a blue-green switch, in a
// canary's bake at 100%), the canary is tested against the baseline
// instead: its error and exceedance rates against the baseline's upper
// confidence bounds (one-sample e-processes, in the same product).
//
// The package is pure: it is fed seconds and reads no clock.
package sequential

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Config is the judge's parameters (spec.Sequential, defaulted).
type Config struct {
	// AlphaRollback bounds the chance that a canary no worse than stable is
	// rolled back for errors; AlphaLatency the same for latency.
	AlphaRollback float64
	AlphaLatency  float64
	// AlphaPromotion bounds the chance that a canary worse than stable by
	// a margin is promoted (split over the four bounds it compares).
	AlphaPromotion float64
	// ErrorMargin and SlowMargin are the promotion margins in percentage
	// points: the canary's error rate, and its rate of requests slower than
	// stable's p99, may exceed stable's by at most that.
	ErrorMargin float64
	SlowMargin  float64
	// Tolerance is the relative risk of a bad event tolerated before a
	// rollback (1: the canary may be no worse than stable).
	Tolerance float64
	// Quantiles are the monitored latency quantiles (ascending).
	Quantiles []float64
	// MinExposure is how long the canary must have been watched before
	// it may be promoted; MaxDuration how long the judge may go without a
	// decision before it holds for a person.
	MinExposure time.Duration
	MaxDuration time.Duration
	// MinBaseline is the fewest baseline requests to freeze latency
	// thresholds from; with fewer, they are frozen from the stable
	// version's first MinBaseline requests of the rollout, and the latency
	// tests start then.
	MinBaseline int64
	// TuneSamples is the sample size the quantile bands are tightest at.
	TuneSamples float64
	// NoPromotion keeps the judge watching for regressions without ever
	// promoting (error-control simulations).
	NoPromotion bool
	// Phases are the canary weights of the rollout's phases, in order
	// (its setWeight steps). Promotion compares the versions over the
	// current phase's seconds only, so a latency or error rate that
	// drifts during a ramp (whose canary traffic comes later than
	// stable's) biases neither; the promotion α is split over the phases
	// in proportion to their weights squared (most where most evidence
	// comes).
	// Empty: one phase, the whole rollout.
	Phases []int
}

// Defaults are the design note's.
func Defaults() Config {
	return Config{
		AlphaRollback: 0.005, AlphaLatency: 0.005, AlphaPromotion: 0.05,
		ErrorMargin: 0.5, SlowMargin: 1, Tolerance: 1,
		Quantiles:   []float64{0.5, 0.9, 0.99, 0.999},
		MinExposure: time.Minute, MaxDuration: 30 * time.Minute,
		MinBaseline: 1000, TuneSamples: 1000,
	}
}

func (c Config) check() error {
	switch {
	case !(c.AlphaRollback > 0 && c.AlphaRollback < 1), !(c.AlphaLatency > 0 && c.AlphaLatency < 1),
		!(c.AlphaPromotion > 0 && c.AlphaPromotion < 1):
		return errors.New("alphas must be in (0, 1)")
	case !(c.ErrorMargin > 0), !(c.SlowMargin > 0):
		return errors.New("margins must be positive")
	case !(c.Tolerance >= 1):
		return errors.New("tolerance must be at least 1")
	case len(c.Quantiles) == 0:
		return errors.New("no quantiles")
	case c.MinBaseline < 1 || !(c.TuneSamples >= 1):
		return errors.New("minBaseline and tuneSamples must be at least 1")
	}
	for _, q := range c.Quantiles {
		if !(q > 0 && q < 1) {
			return fmt.Errorf("quantile %g not in (0, 1)", q)
		}
	}
	return nil
}

// Kind is what the judge decided.
type Kind string

const (
	None     Kind = ""
	Rollback Kind = "rollback"
	Promote  Kind = "promote"
	// Hold: MaxDuration passed without a decision; the rollout pauses
	// for a person. The judge goes on watching: a rollback can still
	// follow, and a promotion, which takes effect once a person resumes.
	Hold Kind = "hold"
)

// Decision is a test that fired, with the sentence that explains it.
type Decision struct {
	Kind Kind `json:"kind"`
	// Test is "errors", "latency" (exceedance), "quantile" or
	// "non-inferiority" (or "max-duration" for a hold).
	Test   string `json:"test"`
	At     int64  `json:"at"` // the Unix second it fired in
	Reason string `json:"reason"`
}

// tally is one version's counts since the judge started.
type tally struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Exceed counts requests slower than each frozen threshold, since the
	// thresholds were frozen; Since is how many requests that covers.
	Exceed []int64 `json:"exceed,omitempty"`
	Since  int64   `json:"since"`
	Hist   hist    `json:"hist"`
}

// base is what the judge froze from the baseline.
type base struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Thresholds are the buckets of the baseline's monitored quantiles,
	// nil until frozen; Rates the baseline's share of requests above each.
	Thresholds []int32   `json:"thresholds,omitempty"`
	Rates      []float64 `json:"rates,omitempty"`
	RateN      int64     `json:"rateN,omitempty"`
	// Slow is the index of the threshold that defines a slow request for
	// promotion: the highest monitored quantile at or below 0.99.
	Slow int `json:"slow"`
	// Pending collects the stable version's latencies until MinBaseline
	// requests freeze the thresholds (when the baseline had too few).
	Pending hist `json:"pending"`
}

// State is the judge's whole state: what Checkpoint saves and Restore
// resumes from.
type State struct {
	Start   int64      `json:"start"`
	Last    int64      `json:"last"`
	Base    base       `json:"base"`
	Err     eprocess   `json:"err"`
	Lat     []eprocess `json:"lat,omitempty"`
	Canary  tally      `json:"canary"`
	Stable  tally      `json:"stable"`
	Decided *Decision  `json:"decided,omitempty"`
	Held    bool       `json:"held,omitempty"`
	// Phase counts NewPhase calls; PCanary and PStable are the versions'
	// counts in the current phase, which promotion compares.
	Phase   int   `json:"phase,omitempty"`
	PCanary phase `json:"pcanary"`
	PStable phase `json:"pstable"`
}

// phase is one version's counts in the current promotion phase.
type phase struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Slow counts requests slower than the slow threshold among the
	// SlowOf requests counted since it was frozen.
	Slow   int64 `json:"slow"`
	SlowOf int64 `json:"slowOf"`
}

// Judge runs the tests of one rollout. Not safe for concurrent use.
type Judge struct {
	cfg Config
	st  State
}

// New starts a judge whose latency thresholds and null rates are frozen
// from baseline: the stable version's traffic before the rollout.
func New(cfg Config, baseline Window) (*Judge, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("sequential judge: %w", err)
	}
	j := &Judge{cfg: cfg}
	b := &j.st.Base
	b.Requests, b.Errors = baseline.Requests, baseline.Errors
	b.Slow = 0
	for i, q := range cfg.Quantiles {
		if q <= 0.99 {
			b.Slow = i
		}
	}
	var h hist
	h.add(baseline.Latency)
	if h.N >= cfg.MinBaseline {
		j.freeze(&h)
	}
	return j, nil
}

// Restore resumes a judge from a State a Checkpoint returned. Seconds
// missed between the two are not counted (skipping data keeps the tests
// valid; it only loses evidence).
func Restore(cfg Config, st State) (*Judge, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("sequential judge: %w", err)
	}
	if st.Base.Thresholds != nil && (len(st.Base.Thresholds) != len(cfg.Quantiles) || len(st.Lat) != len(cfg.Quantiles)) {
		return nil, errors.New("sequential judge: the checkpoint monitors other quantiles than the configuration")
	}
	return &Judge{cfg: cfg, st: st}, nil
}

// Checkpoint returns the judge's state (a deep copy), to persist.
func (j *Judge) Checkpoint() State {
	st := j.st
	st.Lat = append([]eprocess(nil), st.Lat...)
	st.Base.Thresholds = append([]int32(nil), st.Base.Thresholds...)
	st.Base.Rates = append([]float64(nil), st.Base.Rates...)
	st.Base.Pending.C = append([]int64(nil), st.Base.Pending.C...)
	for _, t := range []*tally{&st.Canary, &st.Stable} {
		t.Exceed = append([]int64(nil), t.Exceed...)
		t.Hist.C = append([]int64(nil), t.Hist.C...)
	}
	if st.Decided != nil {
		d := *st.Decided
		st.Decided = &d
	}
	return st
}

// freeze fixes the latency thresholds from h: from then on, requests
// slower than each are bad events of its family.
func (j *Judge) freeze(h *hist) {
	b := &j.st.Base
	b.Thresholds = make([]int32, len(j.cfg.Quantiles))
	b.Rates = make([]float64, len(j.cfg.Quantiles))
	for i, q := range j.cfg.Quantiles {
		b.Thresholds[i] = h.quantile(q)
		b.Rates[i] = float64(h.above(b.Thresholds[i])) / float64(h.N)
	}
	b.RateN = h.N
	b.Pending = hist{}
	j.st.Lat = make([]eprocess, len(j.cfg.Quantiles))
	j.st.Canary.Exceed = make([]int64, len(j.cfg.Quantiles))
	j.st.Stable.Exceed = make([]int64, len(j.cfg.Quantiles))
	j.st.Canary.Since, j.st.Stable.Since = 0, 0
}

// NewPhase starts a new promotion phase (a new weight): the promotion
// bounds compare the versions over the seconds from now on. The rollback
// tests are not affected. After the last of Phases it does nothing: the
// last phase goes on.
func (j *Judge) NewPhase() {
	if j.st.PCanary.Requests == 0 {
		// Nothing compared yet: start over without using up a phase.
		j.st.PStable = phase{}
		return
	}
	if j.st.Phase+1 >= len(j.cfg.Phases) {
		return
	}
	j.st.Phase++
	j.st.PCanary, j.st.PStable = phase{}, phase{}
}

// Decided returns the decision, if a test fired.
func (j *Judge) Decided() (Decision, bool) {
	if j.st.Decided == nil {
		return Decision{}, false
	}
	return *j.st.Decided, true
}

// Observe feeds one second: the canary's and the stable version's traffic
// in it. Seconds at or before the last one fed are ignored (a source that
// hands a second out twice). It returns the decision if a test fired (in
// this second or before).
func (j *Judge) Observe(sec int64, canary, stable Window) (Decision, bool) {
	st := &j.st
	if st.Decided != nil && st.Decided.Kind != Hold {
		return *st.Decided, true
	}
	if st.Start != 0 && sec <= st.Last {
		return Decision{}, false
	}
	if st.Start == 0 {
		if canary.Requests == 0 {
			// Not started: the judge's clock starts with the canary's
			// first request (a health gate or preview has none).
			j.count(Window{}, stable)
			return Decision{}, false
		}
		st.Start = sec
	}
	st.Last = sec
	j.count(canary, stable)
	if d, ok := j.decide(sec); ok {
		st.Decided = &d
		return d, true
	}
	return Decision{}, false
}

// count updates the tallies and the e-processes with one second.
func (j *Judge) count(c, s Window) {
	st, cfg := &j.st, j.cfg
	frozen := st.Base.Thresholds != nil
	for _, x := range []struct {
		t *tally
		p *phase
		w Window
	}{{&st.Canary, &st.PCanary, c}, {&st.Stable, &st.PStable, s}} {
		x.t.Requests += x.w.Requests
		x.t.Errors += x.w.Errors
		x.t.Hist.add(x.w.Latency)
		x.p.Requests += x.w.Requests
		x.p.Errors += x.w.Errors
		if frozen {
			x.t.Since += x.w.Requests
			for i, th := range st.Base.Thresholds {
				x.t.Exceed[i] += above(x.w.Latency, th)
			}
			x.p.SlowOf += x.w.Requests
			x.p.Slow += above(x.w.Latency, st.Base.Thresholds[st.Base.Slow])
		}
	}
	switch {
	case c.Requests > 0 && s.Requests > 0:
		rho := float64(c.Requests) / float64(c.Requests+s.Requests)
		st.Err.labels(c.Errors, s.Errors, rho, cfg.Tolerance)
		if frozen {
			for i, th := range st.Base.Thresholds {
				st.Lat[i].labels(above(c.Latency, th), above(s.Latency, th), rho, cfg.Tolerance)
			}
		}
	case c.Requests > 0:
		// No stable traffic: against the baseline.
		if p0, ok := j.baselineUpper(st.Base.Errors, st.Base.Requests); ok {
			st.Err.rate(c.Errors, c.Requests, math.Min(p0*cfg.Tolerance, 0.5))
		}
		if frozen {
			for i, th := range st.Base.Thresholds {
				if p0, ok := j.baselineUpper(int64(math.Round(st.Base.Rates[i]*float64(st.Base.RateN))), st.Base.RateN); ok {
					st.Lat[i].rate(above(c.Latency, th), c.Requests, math.Min(p0*cfg.Tolerance, 0.5))
				}
			}
		}
	}
	if !frozen && s.Requests > 0 {
		st.Base.Pending.add(s.Latency)
		if st.Base.Pending.N >= cfg.MinBaseline {
			p := st.Base.Pending
			j.freeze(&p)
		}
	}
}

// baselineUpper is the upper confidence bound of a baseline rate, at a
// tenth of the rollback α: the one-sample tests' null.
func (j *Judge) baselineUpper(bad, n int64) (float64, bool) {
	if n < j.cfg.MinBaseline {
		return 0, false
	}
	a, b := prior(float64(bad) / float64(n))
	_, hi := betaBinomial(bad, n, a, b, j.cfg.AlphaRollback/10)
	return hi, true
}

// decide runs the decision rules after a second.
func (j *Judge) decide(sec int64) (Decision, bool) {
	st, cfg := &j.st, j.cfg
	at := func(k Kind, test, format string, args ...any) (Decision, bool) {
		return Decision{Kind: k, Test: test, At: sec, Reason: fmt.Sprintf(format, args...)}, true
	}
	c, s := &st.Canary, &st.Stable
	share := 100 * float64(c.Requests) / float64(max(c.Requests+s.Requests, 1))
	if le := st.Err.logE(); le >= math.Log(1/cfg.AlphaRollback) {
		if s.Requests == 0 {
			return at(Rollback, "errors", "%d of %d canary requests failed against the baseline's %s; evidence %s reached 1/α = %s",
				c.Errors, c.Requests, pct(st.Base.Errors, st.Base.Requests), num(math.Exp(le)), num(1/cfg.AlphaRollback))
		}
		return at(Rollback, "errors", "%d of %d errors came from the canary, which served %.1f%% of the requests; evidence %s reached 1/α = %s after %d canary requests",
			c.Errors, c.Errors+s.Errors, share, num(math.Exp(le)), num(1/cfg.AlphaRollback), c.Requests)
	}
	if st.Base.Thresholds != nil {
		// Average of the families' e-values.
		var sum float64
		worst, wl := 0, math.Inf(-1)
		for i := range st.Lat {
			l := st.Lat[i].logE()
			sum += math.Exp(l)
			if l > wl {
				worst, wl = i, l
			}
		}
		if e := sum / float64(len(st.Lat)); e >= 2/cfg.AlphaLatency {
			th := BucketValue(st.Base.Thresholds[worst])
			q := quantileName(cfg.Quantiles[worst])
			return at(Rollback, "latency", "%d of %d requests slower than %s (the baseline's %s) came from the canary, which served %.1f%% of the requests; evidence %s reached 2/α = %s after %d canary requests",
				c.Exceed[worst], c.Exceed[worst]+s.Exceed[worst], ms(th), q, share, num(e), num(2/cfg.AlphaLatency), c.Requests)
		}
	}
	if d, ok := j.quantiles(sec); ok {
		return d, true
	}
	if !cfg.NoPromotion && st.Base.Thresholds != nil && time.Duration(sec-st.Start+1)*time.Second >= cfg.MinExposure {
		if d, ok := j.promotion(sec); ok {
			return d, true
		}
	}
	if cfg.MaxDuration > 0 && !st.Held && time.Duration(sec-st.Start+1)*time.Second >= cfg.MaxDuration {
		st.Held = true
		return at(Hold, "max-duration", "no decision after %s (maxDuration): %s", cfg.MaxDuration, j.Status().Summary)
	}
	return Decision{}, false
}

// quantiles compares the versions' latency quantile bands.
func (j *Judge) quantiles(sec int64) (Decision, bool) {
	st, cfg := &j.st, j.cfg
	c, s := &st.Canary.Hist, &st.Stable.Hist
	if c.N == 0 || s.N == 0 {
		return Decision{}, false
	}
	a := cfg.AlphaLatency / 8 // each side of each band: bands at α_lat/4
	for _, q := range cfg.Quantiles {
		lo, ok := lowerBand(c, q, a, cfg.TuneSamples)
		if !ok {
			continue
		}
		hi, ok := upperBand(s, q, a, cfg.TuneSamples)
		if !ok || lo <= hi {
			continue
		}
		return Decision{Kind: Rollback, Test: "quantile", At: sec, Reason: fmt.Sprintf(
			"the canary's %s is at least %s and stable's at most %s (confidence sequences at α = %s each) after %d canary and %d stable requests",
			quantileName(q), ms(BucketValue(lo)), ms(BucketValue(hi+1)), num(cfg.AlphaLatency/4), c.N, s.N)}, true
	}
	return Decision{}, false
}

// lowerBand is the lower end of the time-uniform band of h's q-quantile.
func lowerBand(h *hist, q, alpha, tOpt float64) (int32, bool) {
	t := float64(h.N)
	k := int64(math.Floor(t*q-doubleStitching(1-q, t, alpha, tOpt))) + 1
	if k < 1 {
		return 0, false
	}
	return h.order(k), true
}

// upperBand is the upper end of the band of h's q-quantile.
func upperBand(h *hist, q, alpha, tOpt float64) (int32, bool) {
	t := float64(h.N)
	k := int64(math.Ceil(t*q + doubleStitching(q, t, alpha, tOpt)))
	if k > h.N {
		return 0, false
	}
	return h.order(k), true
}

// bounds is a promotion comparison of one bad-event family.
type bounds struct {
	CanaryUpper, StableLower float64 // rates, 0..1
}

func (b bounds) within(marginPoints float64) bool {
	return b.CanaryUpper-b.StableLower < marginPoints/100
}

// promotionBounds computes the non-inferiority bounds of errors and slow
// requests (each of the four bounds at α_pr/4). Without stable traffic the
// baseline stands in for the stable version.
func (j *Judge) promotionBounds() (errs, slow bounds, ok bool) {
	st, cfg := &j.st, j.cfg
	if st.Base.Thresholds == nil || st.PCanary.Requests == 0 {
		return bounds{}, bounds{}, false
	}
	a := cfg.AlphaPromotion / 4 * j.phaseShare()
	rate := func(bad, n int64, p0 float64, upper bool) float64 {
		pa, pb := prior(p0)
		lo, hi := betaBinomial(bad, n, pa, pb, a)
		if upper {
			return hi
		}
		return lo
	}
	pc, ps := &st.PCanary, &st.PStable
	sErr, sN := ps.Errors, ps.Requests
	if sN == 0 {
		sErr, sN = st.Base.Errors, st.Base.Requests
	}
	p0 := float64(sErr) / float64(max(sN, 1))
	errs = bounds{CanaryUpper: rate(pc.Errors, pc.Requests, p0, true), StableLower: rate(sErr, sN, p0, false)}
	i := st.Base.Slow
	sSlow, sOf := ps.Slow, ps.SlowOf
	if sOf == 0 {
		sSlow, sOf = int64(math.Round(st.Base.Rates[i]*float64(st.Base.RateN))), st.Base.RateN
	}
	p1 := st.Base.Rates[i]
	if pc.SlowOf == 0 {
		return errs, bounds{CanaryUpper: 1}, true
	}
	slow = bounds{CanaryUpper: rate(pc.Slow, pc.SlowOf, p1, true), StableLower: rate(sSlow, sOf, p1, false)}
	return errs, slow, true
}

// phaseShare is the current phase's share of the promotion α.
func (j *Judge) phaseShare() float64 {
	ph := j.cfg.Phases
	if len(ph) <= 1 {
		return 1
	}
	// In proportion to the square of the weight: at weight w a phase of
	// given length sees w times the canary requests, and the last, heaviest
	// phase is where the rollout holds until the judge decides.
	sq := func(w int) float64 { return float64(max(w, 1)) * float64(max(w, 1)) }
	var sum float64
	for _, w := range ph {
		sum += sq(w)
	}
	return sq(ph[min(j.st.Phase, len(ph)-1)]) / sum
}

func (j *Judge) promotion(sec int64) (Decision, bool) {
	errs, slow, ok := j.promotionBounds()
	if !ok || !errs.within(j.cfg.ErrorMargin) || !slow.within(j.cfg.SlowMargin) {
		return Decision{}, false
	}
	st := &j.st
	return Decision{Kind: Promote, Test: "non-inferiority", At: sec, Reason: fmt.Sprintf(
		"after %d canary requests over %s (%d at this weight), the canary's error rate is at most %s against stable's at least %s (margin %s points), and its share of requests slower than %s (the baseline's %s) at most %s against %s (margin %s points)",
		st.Canary.Requests, time.Duration(sec-st.Start+1)*time.Second, st.PCanary.Requests, pctf(errs.CanaryUpper), pctf(errs.StableLower), num(j.cfg.ErrorMargin),
		ms(BucketValue(st.Base.Thresholds[st.Base.Slow])), quantileName(j.cfg.Quantiles[st.Base.Slow]),
		pctf(slow.CanaryUpper), pctf(slow.StableLower), num(j.cfg.SlowMargin))}, true
}

// Status is the judge's evidence now: what the ledger records (the
// latency evidence is 0 until the thresholds are frozen, the promotion
// bounds until they can be computed), and where it stands in a sentence.
type Status struct {
	rollout.Evidence
	Summary string `json:"summary"`
}

// Status reports the evidence so far.
func (j *Judge) Status() Status {
	st := &j.st
	s := Status{Evidence: rollout.Evidence{
		CanaryRequests: st.Canary.Requests, CanaryErrors: st.Canary.Errors,
		StableRequests: st.Stable.Requests, StableErrors: st.Stable.Errors,
		ErrorEvidence: math.Exp(st.Err.logE()),
	}}
	if st.Start != 0 {
		s.Seconds = st.Last - st.Start + 1
	}
	if st.Base.Thresholds != nil {
		var sum float64
		for i := range st.Lat {
			sum += math.Exp(st.Lat[i].logE())
		}
		s.LatencyEvidence = sum / float64(len(st.Lat))
	}
	errs, slow, ok := j.promotionBounds()
	if ok {
		s.CanaryErrorUpper, s.StableErrorLower = 100*errs.CanaryUpper, 100*errs.StableLower
		s.CanarySlowUpper, s.StableSlowLower = 100*slow.CanaryUpper, 100*slow.StableLower
	}
	switch {
	case st.Canary.Requests == 0:
		s.Summary = "no canary requests yet: no evidence either way"
	case st.Base.Thresholds == nil:
		s.Summary = fmt.Sprintf("%d canary and %d stable requests; error evidence %s of %s needed; latency thresholds not frozen yet (%d of %d stable requests)",
			st.Canary.Requests, st.Stable.Requests, num(s.ErrorEvidence), num(1/j.cfg.AlphaRollback), st.Base.Pending.N, j.cfg.MinBaseline)
	default:
		s.Summary = fmt.Sprintf("%d canary requests (%d errors), %d stable (%d errors); evidence of regression %s (errors, %s needed) and %s (latency, %s needed); promotion needs the canary's error rate within %s points (now up to %s above stable) and slow requests within %s (up to %s)",
			st.Canary.Requests, st.Canary.Errors, st.Stable.Requests, st.Stable.Errors,
			num(s.ErrorEvidence), num(1/j.cfg.AlphaRollback), num(s.LatencyEvidence), num(2/j.cfg.AlphaLatency),
			num(j.cfg.ErrorMargin), points(errs), num(j.cfg.SlowMargin), points(slow))
	}
	return s
}

func points(b bounds) string { return num(100*(b.CanaryUpper-b.StableLower)) + " points" }

func quantileName(q float64) string { return "p" + strconv.FormatFloat(100*q, 'g', 4, 64) }

func num(f float64) string {
	switch a := math.Abs(f); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", f)
	case a >= 10:
		return fmt.Sprintf("%.1f", f)
	}
	return fmt.Sprintf("%.3g", f)
}

func pct(bad, n int64) string { return pctf(float64(bad) / float64(max(n, 1))) }
func pctf(p float64) string   { return num(100*p) + "%" }
func ms(d time.Duration) string {
	return num(float64(d)/float64(time.Millisecond)) + " ms"
}

// ConfigFrom is the judge's configuration from an analysis.sequential
// block (defaulted or not; nil: the defaults). Phases is left to the
// caller (rollout.JudgePhases of the rollout's steps).
func ConfigFrom(q *spec.Sequential) Config {
	c := Defaults()
	if q == nil {
		return c
	}
	set := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.AlphaRollback, q.AlphaRollback)
	set(&c.AlphaLatency, q.AlphaLatency)
	set(&c.AlphaPromotion, q.AlphaPromotion)
	set(&c.ErrorMargin, q.ErrorMargin)
	set(&c.SlowMargin, q.SlowMargin)
	set(&c.Tolerance, q.Tolerance)
	if len(q.Quantiles) > 0 {
		c.Quantiles = slices.Clone(q.Quantiles)
	}
	if q.MinBaseline > 0 {
		c.MinBaseline = int64(q.MinBaseline)
	}
	if q.MinExposure.Duration > 0 {
		c.MinExposure = q.MinExposure.Duration
	}
	if q.MaxDuration.Duration > 0 {
		c.MaxDuration = q.MaxDuration.Duration
	}
	return c
}
