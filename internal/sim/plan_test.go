package sim

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func TestTimeline(t *testing.T) {
	type step struct {
		at     time.Duration
		weight int
		what   string
	}
	for _, c := range []struct {
		judge string
		want  []step
	}{
		{spec.JudgeSequential, []step{
			{0, 0, "health gate"}, {0, 5, "5% for 30s"}, {30 * time.Second, 10, "10% for 30s"},
			{time.Minute, 20, "20% for 30s"}, {90 * time.Second, 50, "50% for 30s"},
			{2 * time.Minute, 50, "hold at 50% until the judge decides"},
		}},
		{spec.JudgeThresholds, []step{
			{0, 0, "health gate"}, {0, 10, "10% for 1m0s"}, {time.Minute, 20, "20% for 1m0s"},
			{2 * time.Minute, 30, "30% for 1m0s"}, {3 * time.Minute, 40, "40% for 1m0s"},
			{4 * time.Minute, 50, "50% for 1m0s"}, {5 * time.Minute, 50, "switch: 100% to the new version"},
		}},
	} {
		p, _, err := PolicyFor(TableService(c.judge), rollout.StrategyCanary)
		if err != nil {
			t.Fatal(err)
		}
		var got []step
		for _, e := range Timeline(p) {
			got = append(got, step{e.At, e.Weight, e.What})
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s timeline:\n got %v\nwant %v", c.judge, got, c.want)
		}
	}
}

func TestPolicyForNotSimulated(t *testing.T) {
	svc := TableService(spec.JudgeThresholds)
	svc.Spec.Analysis = nil
	if _, _, err := PolicyFor(svc, rollout.StrategyCanary); !errors.Is(err, ErrNotSimulated) {
		t.Errorf("no analysis: %v, want ErrNotSimulated", err)
	}
	svc = TableService(spec.JudgeThresholds)
	if _, _, err := PolicyFor(svc, "linear"); err == nil || errors.Is(err, ErrNotSimulated) {
		t.Errorf("unknown strategy: %v, want an error", err)
	}
}

// TestSequentialConfig: every field of analysis.sequential reaches the
// judge's configuration.
func TestSequentialConfig(t *testing.T) {
	q := &spec.Sequential{AlphaRollback: 0.01, AlphaLatency: 0.02, AlphaPromotion: 0.1, ErrorMargin: 1, SlowMargin: 2,
		Tolerance: 1.5, Quantiles: []float64{0.9, 0.99}, MinBaseline: 500, MinExposure: spec.D(2 * time.Minute), MaxDuration: spec.D(time.Hour)}
	c := SequentialConfig(q)
	if c.AlphaRollback != 0.01 || c.AlphaLatency != 0.02 || c.AlphaPromotion != 0.1 || c.ErrorMargin != 1 || c.SlowMargin != 2 ||
		c.Tolerance != 1.5 || !slices.Equal(c.Quantiles, q.Quantiles) || c.MinBaseline != 500 || c.MinExposure != 2*time.Minute || c.MaxDuration != time.Hour {
		t.Errorf("SequentialConfig(%+v) = %+v", q, c)
	}
}
