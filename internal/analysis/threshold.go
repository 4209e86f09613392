// Package analysis turns measurements into verdicts. It does no I/O: the
// runner's analyzer reads the measurements (the proxy's windows, a
// Prometheus query) and feeds the verdicts to the rollout engine.
package analysis

import (
	"fmt"
	"math"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Built-in metric names (defined by internal/spec).
const (
	MetricSuccessRate = spec.MetricRequestSuccessRate
	MetricDuration    = spec.MetricRequestDuration
)

// Measurement is what the canary did over one analysis interval, as the
// built-in metrics see it.
type Measurement struct {
	Requests int64
	Errors   int64
	// Generated is how many of Requests the load generator sent.
	Generated int64
	// Latency is the request duration at the metric's quantile, in
	// milliseconds; valid when Requests > 0.
	Latency float64
}

// Evaluate checks one built-in metric of one interval. A window with fewer
// than the metric's minSamples requests is inconclusive, never failed:
// one error among a handful of requests says little about a version.
func Evaluate(m spec.Metric, x Measurement) rollout.Verdict {
	if min := int64(max(m.MinSamples, 1)); x.Requests < min {
		return rollout.Verdict{Metric: m.Name, Result: rollout.VerdictInconclusive, Samples: x.Requests,
			Reason: fmt.Sprintf("%d requests in the interval, need at least %d (minSamples)", x.Requests, min)}
	}
	var v float64
	switch m.Name {
	case MetricSuccessRate:
		v = 100 * float64(x.Requests-x.Errors) / float64(x.Requests)
	case MetricDuration:
		v = x.Latency
	default:
		return rollout.Verdict{Metric: m.Name, Result: rollout.VerdictError, Samples: x.Requests,
			Reason: fmt.Sprintf("metric %q has no built-in measurement", m.Name)}
	}
	out := Judge(m, v)
	out.Samples = x.Requests
	if out.Reason != "" {
		out.Reason += fmt.Sprintf(" over %d requests", x.Requests)
		if x.Generated > 0 {
			out.Reason += fmt.Sprintf(" (%d generated)", x.Generated)
		}
	}
	return out
}

// Judge checks one value of a metric against its thresholdRange or its
// conditions. NaN and ±Inf (a query dividing by no traffic) are
// inconclusive: they are no evidence either way.
func Judge(m spec.Metric, value float64) rollout.Verdict {
	v := rollout.Verdict{Metric: m.Name, Value: value}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		v.Value = 0
		v.Result = rollout.VerdictInconclusive
		v.Reason = fmt.Sprintf("%s is %v: no evidence either way", m.Name, value)
		return v
	}
	shown := fmt.Sprintf("%s is %s%s", m.Name, formatValue(value), unit(m))
	if m.SuccessCondition != "" || m.FailureCondition != "" {
		return judgeConditions(m, v, shown)
	}
	r := m.ThresholdRange
	switch {
	case r.Min != nil && value < *r.Min:
		v.Result = rollout.VerdictFailed
		v.Reason = fmt.Sprintf("%s, below the minimum %g%s", shown, *r.Min, unit(m))
	case r.Max != nil && value > *r.Max:
		v.Result = rollout.VerdictFailed
		v.Reason = fmt.Sprintf("%s, above the maximum %g%s", shown, *r.Max, unit(m))
	default:
		v.Result = rollout.VerdictPassed
		v.Reason = shown
	}
	return v
}

func judgeConditions(m spec.Metric, v rollout.Verdict, shown string) rollout.Verdict {
	eval := func(src string) (bool, error) {
		c, err := spec.CompileCondition(src)
		if err != nil {
			return false, err
		}
		return c.Eval(v.Value)
	}
	if m.FailureCondition != "" {
		failed, err := eval(m.FailureCondition)
		if err != nil {
			v.Result, v.Reason = rollout.VerdictError, fmt.Sprintf("failureCondition %q: %v", m.FailureCondition, err)
			return v
		}
		if failed {
			v.Result, v.Reason = rollout.VerdictFailed, fmt.Sprintf("%s: failureCondition %q holds", shown, m.FailureCondition)
			return v
		}
	}
	if m.SuccessCondition != "" {
		ok, err := eval(m.SuccessCondition)
		if err != nil {
			v.Result, v.Reason = rollout.VerdictError, fmt.Sprintf("successCondition %q: %v", m.SuccessCondition, err)
			return v
		}
		if !ok {
			v.Result, v.Reason = rollout.VerdictFailed, fmt.Sprintf("%s: successCondition %q does not hold", shown, m.SuccessCondition)
			return v
		}
	}
	v.Result, v.Reason = rollout.VerdictPassed, shown
	return v
}

func unit(m spec.Metric) string {
	if m.Provider != spec.ProviderBuiltin {
		return ""
	}
	switch m.Name {
	case MetricSuccessRate:
		return "%"
	case MetricDuration:
		return "ms"
	}
	return ""
}

func formatValue(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return fmt.Sprintf("%.0f", f)
	}
	if math.Abs(f) >= 1 {
		return fmt.Sprintf("%.2f", f)
	}
	return fmt.Sprintf("%.4g", f)
}
