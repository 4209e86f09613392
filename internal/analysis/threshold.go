// Package analysis turns measurements into verdicts. It does no I/O: the
// daemon reads the measurements (from the proxy's windows, later from
// Prometheus) and feeds the verdicts to the rollout engine.
package analysis

import (
	"fmt"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Built-in metric names (defined by internal/spec).
const (
	MetricSuccessRate = spec.MetricRequestSuccessRate
	MetricDuration    = spec.MetricRequestDuration
)

// Measurement is what the canary did over one analysis interval.
type Measurement struct {
	Requests int64
	Errors   int64
	// P99 is the 99th percentile latency in milliseconds; valid when Requests > 0.
	P99 float64
}

// MinRequests is the fewest requests an interval needs for a verdict; with
// fewer the check is inconclusive and the rollout waits.
const MinRequests = 10

// Evaluate checks one metric of one interval against its threshold range.
func Evaluate(m spec.Metric, x Measurement) rollout.Verdict {
	v := rollout.Verdict{Metric: m.Name, Samples: x.Requests}
	if x.Requests < MinRequests {
		v.Result = rollout.VerdictInconclusive
		v.Reason = fmt.Sprintf("%d requests in the interval, need at least %d", x.Requests, MinRequests)
		return v
	}
	var unit string
	switch m.Name {
	case MetricSuccessRate:
		v.Value = 100 * float64(x.Requests-x.Errors) / float64(x.Requests)
		unit = "%"
	case MetricDuration:
		v.Value = x.P99
		unit = "ms"
	default:
		v.Result = rollout.VerdictInconclusive
		v.Reason = fmt.Sprintf("metric %q has no built-in source", m.Name)
		return v
	}
	r := m.ThresholdRange
	switch {
	case r.Min != nil && v.Value < *r.Min:
		v.Result = rollout.VerdictFailed
		v.Reason = fmt.Sprintf("%s is %.2f%s, below the minimum %g%s", m.Name, v.Value, unit, *r.Min, unit)
	case r.Max != nil && v.Value > *r.Max:
		v.Result = rollout.VerdictFailed
		v.Reason = fmt.Sprintf("%s is %.2f%s, above the maximum %g%s", m.Name, v.Value, unit, *r.Max, unit)
	default:
		v.Result = rollout.VerdictPassed
		v.Reason = fmt.Sprintf("%s is %.2f%s over %d requests", m.Name, v.Value, unit, x.Requests)
	}
	return v
}
