package analysis

import (
	"math"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func ptr(f float64) *float64 { return &f }

func TestEvaluate(t *testing.T) {
	success := spec.Metric{Name: MetricSuccessRate, Provider: spec.ProviderBuiltin, MinSamples: 100, ThresholdRange: spec.ThresholdRange{Min: ptr(99)}}
	duration := spec.Metric{Name: MetricDuration, Provider: spec.ProviderBuiltin, MinSamples: 10, Quantile: 0.95, ThresholdRange: spec.ThresholdRange{Max: ptr(500)}}
	tests := []struct {
		name   string
		metric spec.Metric
		in     Measurement
		want   rollout.VerdictResult
		value  float64
	}{
		{"no traffic is inconclusive", success, Measurement{}, rollout.VerdictInconclusive, 0},
		{"one error in a thin window is inconclusive, not failed", success, Measurement{Requests: 30, Errors: 1}, rollout.VerdictInconclusive, 0},
		{"all good", success, Measurement{Requests: 1000, Errors: 5}, rollout.VerdictPassed, 99.5},
		{"exactly at the minimum passes", success, Measurement{Requests: 100, Errors: 1}, rollout.VerdictPassed, 99},
		{"below the minimum fails", success, Measurement{Requests: 100, Errors: 2}, rollout.VerdictFailed, 98},
		{"fast enough", duration, Measurement{Requests: 100, Latency: 120}, rollout.VerdictPassed, 120},
		{"too slow", duration, Measurement{Requests: 100, Latency: 501}, rollout.VerdictFailed, 501},
		{"unknown metric is an error", spec.Metric{Name: "custom", MinSamples: 1}, Measurement{Requests: 100}, rollout.VerdictError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.metric, tt.in)
			if got.Result != tt.want || got.Value != tt.value {
				t.Errorf("Evaluate(%s, %+v) = %s %.2f (%s), want %s %.2f", tt.metric.Name, tt.in, got.Result, got.Value, got.Reason, tt.want, tt.value)
			}
			if got.Samples != tt.in.Requests {
				t.Errorf("Samples = %d, want %d", got.Samples, tt.in.Requests)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	rate := spec.Metric{Name: "error-rate", Provider: spec.ProviderPrometheus, ThresholdRange: spec.ThresholdRange{Max: ptr(0.01)}}
	cond := spec.Metric{Name: "error-rate", Provider: spec.ProviderPrometheus, SuccessCondition: "result < 0.01", FailureCondition: "result > 0.5"}
	tests := []struct {
		name   string
		metric spec.Metric
		value  float64
		want   rollout.VerdictResult
		reason string
	}{
		{"below max", rate, 0.001, rollout.VerdictPassed, "error-rate is 0.001"},
		{"above max", rate, 0.05, rollout.VerdictFailed, "above the maximum 0.01"},
		{"NaN", rate, math.NaN(), rollout.VerdictInconclusive, "no evidence"},
		{"+Inf", rate, math.Inf(1), rollout.VerdictInconclusive, "no evidence"},
		{"success condition holds", cond, 0.001, rollout.VerdictPassed, ""},
		{"success condition fails", cond, 0.1, rollout.VerdictFailed, `successCondition "result < 0.01" does not hold`},
		{"failure condition holds", cond, 0.9, rollout.VerdictFailed, `failureCondition "result > 0.5" holds`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Judge(tt.metric, tt.value)
			if got.Result != tt.want || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("Judge(%v) = %s (%s), want %s with %q", tt.value, got.Result, got.Reason, tt.want, tt.reason)
			}
		})
	}
}
