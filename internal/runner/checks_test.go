package runner

import (
	"context"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// TestChecksReportTheWindowTheyMeasured: a built-in check of 500ms reads
// whole seconds, reaching back up to two seconds; its verdict says so, or
// the machine would count data of the previous weight (the version's
// error-free traffic while it was still the stable one passed a canary
// failing 10%).
func TestChecksReportTheWindowTheyMeasured(t *testing.T) {
	since := time.Now().Add(-1800 * time.Millisecond)
	src := metrics.WindowFunc(func(_, _ string, d time.Duration) metrics.Sample {
		return metrics.Sample{Requests: 500, Since: since}
	})
	c := NewChecks(metrics.Sources{spec.ProviderBuiltin: src}, nil, nil)
	min := 99.0
	m := spec.Metric{Name: spec.MetricRequestSuccessRate, Provider: spec.ProviderBuiltin, MinSamples: 100, ThresholdRange: spec.ThresholdRange{Min: &min}}
	v := c.measure(context.Background(), "web", rollout.StartAnalysis{Canary: "green"}, m, 500*time.Millisecond)
	if v.Result != rollout.VerdictPassed {
		t.Fatalf("verdict %+v, want passed", v)
	}
	if v.Window < 1800*time.Millisecond {
		t.Errorf("verdict window %v, want at least the 1.8s the data covers", v.Window)
	}
}
