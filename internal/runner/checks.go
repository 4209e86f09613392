package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Checks is the Analyzer of threshold checks: every metric of the spec's
// analysis is measured from its provider's source at its interval and
// judged by internal/analysis.
type Checks struct {
	sources metrics.Sources
}

var _ Analyzer = (*Checks)(nil)

// NewChecks returns an Analyzer reading the given sources, by provider.
func NewChecks(sources metrics.Sources) *Checks { return &Checks{sources: sources} }

// Start implements Analyzer: one loop per metric, each on its own interval
// (the spec defaults a metric's interval to the analysis interval).
func (c *Checks) Start(ctx context.Context, svc *spec.Service, a rollout.StartAnalysis, send func(rollout.Verdict)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop = func() {
		cancel()
		wg.Wait()
	}
	if svc.Spec.Analysis == nil {
		return stop
	}
	name := svc.Metadata.Name
	for _, m := range svc.Spec.Analysis.Metrics {
		interval := m.Interval.Duration
		if interval <= 0 {
			// Validation requires a positive analysis interval and Default
			// copies it to every metric; refuse to spin if one slipped by.
			send(rollout.Verdict{Metric: m.Name, Result: rollout.VerdictInconclusive,
				Reason: fmt.Sprintf("interval %s is not positive", m.Interval)})
			continue
		}
		wg.Go(func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				send(c.measure(ctx, name, a.Canary, m, interval))
			}
		})
	}
	return stop
}

// measure takes one verdict of metric m for version over the last d. A
// source that fails makes the verdict inconclusive: the rollout waits,
// never promotes.
func (c *Checks) measure(ctx context.Context, service, version string, m spec.Metric, d time.Duration) rollout.Verdict {
	src, err := c.sources.For(m.Provider)
	if err != nil {
		return rollout.Verdict{Metric: m.Name, Result: rollout.VerdictInconclusive, Reason: err.Error()}
	}
	s, err := src.Window(ctx, service, version, d)
	if err != nil {
		return rollout.Verdict{Metric: m.Name, Result: rollout.VerdictInconclusive,
			Reason: fmt.Sprintf("metric source %s: %v", m.Provider, err)}
	}
	x := analysis.Measurement{Requests: s.Requests, Errors: s.Errors}
	if s.Requests > 0 {
		x.P99 = float64(s.Quantile(0.99)) / float64(time.Millisecond)
	}
	return analysis.Evaluate(m, x)
}
