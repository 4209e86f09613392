package analysis

import (
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func ptr(f float64) *float64 { return &f }

func TestEvaluate(t *testing.T) {
	success := spec.Metric{Name: MetricSuccessRate, ThresholdRange: spec.ThresholdRange{Min: ptr(99)}}
	duration := spec.Metric{Name: MetricDuration, ThresholdRange: spec.ThresholdRange{Max: ptr(500)}}
	tests := []struct {
		name   string
		metric spec.Metric
		in     Measurement
		want   rollout.VerdictResult
		value  float64
	}{
		{"no traffic is inconclusive", success, Measurement{}, rollout.VerdictInconclusive, 0},
		{"too few requests is inconclusive", success, Measurement{Requests: MinRequests - 1}, rollout.VerdictInconclusive, 0},
		{"all good", success, Measurement{Requests: 1000, Errors: 5}, rollout.VerdictPassed, 99.5},
		{"exactly at the minimum passes", success, Measurement{Requests: 100, Errors: 1}, rollout.VerdictPassed, 99},
		{"below the minimum fails", success, Measurement{Requests: 100, Errors: 2}, rollout.VerdictFailed, 98},
		{"fast enough", duration, Measurement{Requests: 100, P99: 120}, rollout.VerdictPassed, 120},
		{"too slow", duration, Measurement{Requests: 100, P99: 501}, rollout.VerdictFailed, 501},
		{"unknown metric is inconclusive", spec.Metric{Name: "custom"}, Measurement{Requests: 100}, rollout.VerdictInconclusive, 0},
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
