package sim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/analysis/sequential"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Judges a Policy can simulate.
const (
	// JudgeSequential is the sequential judge on Switchyard's ramp.
	JudgeSequential = spec.JudgeSequential
	// JudgeThresholds is Switchyard's threshold checks (analysis.metrics).
	JudgeThresholds = spec.JudgeThresholds
	// JudgeFlagger is Flagger's threshold checks and schedule.
	JudgeFlagger = "flagger"
)

// Policy is how a simulated rollout moves traffic and is judged.
type Policy struct {
	Judge string
	// Strategy and Steps are the rollout's compiled steps (rollout.Machine
	// Steps): the weights and pauses of the sequential and threshold
	// judges. Flagger's schedule is its own.
	Strategy rollout.StrategyKind
	Steps    []rollout.Step
	// Sequential is the judge's configuration; Baseline how much stable
	// traffic before the rollout it freezes thresholds from.
	Sequential sequential.Config
	Baseline   time.Duration
	// Metrics, Threshold and ErrorLimit are Switchyard's threshold checks
	// (built-in metrics only, defaulted by the spec).
	Metrics []spec.Metric
	// Gated: the service has threshold checks (any provider), which hold
	// its pauses and switch until they pass (Timeline says so).
	Gated      bool
	Threshold  int
	ErrorLimit int
	// Flagger is the Flagger judge's analysis block.
	Flagger Flagger
	// Limit ends a run without a decision.
	Limit time.Duration
	// Watch keeps a sequential judge observing after a hold (maxDuration),
	// until Limit: error-control runs watch for an hour.
	Watch bool
}

// Flagger is the part of a Flagger Canary's analysis block the Flagger
// judge models, with the two built-in metrics.
type Flagger struct {
	Interval   time.Duration
	Threshold  int
	StepWeight int
	MaxWeight  int
	// MinSuccessRate is request-success-rate's thresholdRange.min (percent);
	// MaxP99 request-duration's thresholdRange.max.
	MinSuccessRate float64
	MaxP99         time.Duration
}

// FlaggerDefaults is the Flagger configuration the design note compares
// with: interval 1m, threshold 5, stepWeight 10, maxWeight 50, success
// rate at least 99%, p99 at most 500 ms.
func FlaggerDefaults() Flagger {
	return Flagger{Interval: time.Minute, Threshold: 5, StepWeight: 10, MaxWeight: 50,
		MinSuccessRate: 99, MaxP99: 500 * time.Millisecond}
}

// DefaultLimit is how long a run may go without a decision.
const DefaultLimit = 2 * time.Hour

// SequentialConfig is the judge's configuration from a defaulted
// analysis.sequential block (nil: the judge's defaults).
func SequentialConfig(q *spec.Sequential) sequential.Config { return sequential.ConfigFrom(q) }

// ErrNotSimulated is returned for an analysis the simulation cannot model.
var ErrNotSimulated = errors.New("cannot be simulated")

// PolicyFor is the policy of a rollout of strategy kind of a defaulted,
// validated service, with notes on what the simulation leaves out
// (prometheus checks, hooks and gates taken as instant). A service without
// analysis, or with only prometheus checks, returns ErrNotSimulated.
func PolicyFor(svc *spec.Service, kind rollout.StrategyKind) (Policy, []string, error) {
	m, err := rollout.New(svc)
	if err != nil {
		return Policy{}, nil, err
	}
	steps, err := m.Steps(kind)
	if err != nil {
		return Policy{}, nil, err
	}
	p := Policy{Strategy: kind, Steps: steps, Limit: DefaultLimit}
	var notes []string
	if slices.ContainsFunc(steps, func(st rollout.Step) bool {
		return st.Kind == rollout.StepHook || st.Kind == rollout.StepGate || st.Kind == rollout.StepPause && st.Duration == 0
	}) {
		notes = append(notes, "hooks, gates and pauses that wait for a person are taken as passing at once; the times below leave them out")
	}
	a := svc.Spec.Analysis
	if a == nil {
		return p, notes, fmt.Errorf("%w: no analysis is configured, so nothing judges the new version", ErrNotSimulated)
	}
	if a.Breaker != nil {
		notes = append(notes, "the breaker (analysis.breaker) is not simulated: it can only roll back sooner")
	}
	if a.Load != nil {
		notes = append(notes, "the load generator (analysis.load) is not simulated: the rate is all the traffic")
	}
	var prom []string
	for _, mt := range a.Metrics {
		if mt.Provider == spec.ProviderPrometheus {
			prom = append(prom, mt.Name)
			continue
		}
		p.Metrics = append(p.Metrics, mt)
	}
	p.Threshold, p.ErrorLimit, p.Gated = a.Threshold, a.ConsecutiveErrorLimit, len(a.Metrics) > 0
	switch a.Judge {
	case spec.JudgeSequential:
		p.Judge = JudgeSequential
		p.Sequential = SequentialConfig(a.Sequential)
		p.Baseline = spec.DefaultBaselineWindow
		if a.Sequential != nil && a.Sequential.BaselineWindow.Duration > 0 {
			p.Baseline = a.Sequential.BaselineWindow.Duration
		}
		if len(a.Metrics) > 0 {
			notes = append(notes, "the metrics checked beside the judge are not simulated")
		}
	default:
		p.Judge = JudgeThresholds
		if len(p.Metrics) == 0 {
			return p, notes, fmt.Errorf("%w: only prometheus checks are configured (%s), and their values come from queries the simulation cannot model", ErrNotSimulated, strings.Join(prom, ", "))
		}
		if len(prom) > 0 {
			notes = append(notes, fmt.Sprintf("prometheus checks cannot be simulated (%s); the simulation takes them as passing", strings.Join(prom, ", ")))
		}
	}
	return p, notes, nil
}
