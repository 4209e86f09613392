package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// Checks is the Analyzer of threshold checks: every metric of the spec's
// analysis is measured from its provider at its interval and judged by
// internal/analysis.
type Checks struct {
	sources  metrics.Sources // windows, by provider (builtin)
	query    metrics.Querier // prometheus; nil: such checks are errors
	webhooks WebhookCaller   // rollout and rollback webhooks; nil: not called
	load     LoadTarget      // where spec.analysis.load sends; nil: no generator
}

var _ Analyzer = (*Checks)(nil)

// NewChecks returns an Analyzer reading windows from sources (by provider)
// and queries from query, and calling the rollout and rollback webhooks
// with webhooks.
func NewChecks(sources metrics.Sources, query metrics.Querier, webhooks WebhookCaller) *Checks {
	return &Checks{sources: sources, query: query, webhooks: webhooks}
}

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
				send(c.measure(ctx, name, a, m, interval))
			}
		})
	}
	if l := svc.Spec.Analysis.Load; l != nil && l.Rate > 0 {
		wg.Go(func() { c.generate(ctx, name, l) })
	}
	if b := svc.Spec.Analysis.Breaker; b != nil {
		wg.Go(func() { c.breaker(ctx, name, a, b, send) })
	}
	if c.webhooks != nil && svc.Spec.Analysis.Interval.Duration > 0 {
		for _, w := range svc.Spec.Webhooks {
			if w.Type == spec.WebhookRollout || w.Type == spec.WebhookRollback {
				wg.Go(func() { c.webhook(ctx, svc, w, a, svc.Spec.Analysis.Interval.Duration, send) })
			}
		}
	}
	return stop
}

// webhook calls a rollout or rollback webhook at the start of the analysis
// and then every interval, as Flagger does. A rollout webhook (a load test)
// is a check named webhook:NAME: its failure, after its retries, is a failed
// verdict that counts towards the threshold. A rollback webhook that
// answers 200 rolls back at once (a failed breaker verdict).
func (c *Checks) webhook(ctx context.Context, svc *spec.Service, w spec.Webhook, a rollout.StartAnalysis, interval time.Duration, send func(rollout.Verdict)) {
	metric := rollout.WebhookPrefix + w.Name
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if w.Type == spec.WebhookRollout {
			answer, err := c.webhooks.Call(ctx, svc, &w, a.Canary)
			if ctx.Err() != nil {
				return
			}
			v := rollout.Verdict{Metric: metric, Result: rollout.VerdictPassed, Value: 1, Window: interval, Reason: answer}
			if err != nil {
				v.Result, v.Value, v.Reason = rollout.VerdictFailed, 0, err.Error()
			}
			send(v)
		} else if yes, answer, _ := c.webhooks.Ask(ctx, svc, &w, a.Canary); yes {
			send(rollout.Verdict{Metric: metric, Result: rollout.VerdictFailed, Value: 1, Window: interval, Breaker: true,
				Reason: "rollback webhook " + w.Name + " answered " + answer})
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// breaker checks the canary's error rate over the breaker's sliding window
// every second and trips (one failed breaker verdict, which rolls back at
// once) when it reaches maxErrorRate over at least minRequests.
func (c *Checks) breaker(ctx context.Context, service string, a rollout.StartAnalysis, b *spec.Breaker, send func(rollout.Verdict)) {
	src, err := c.sources.For(spec.ProviderBuiltin)
	if err != nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, err := src.Window(ctx, service, a.Canary, b.Window.Duration)
		if err != nil || s.Requests < int64(b.MinRequests) {
			continue
		}
		rate := 100 * float64(s.Errors) / float64(s.Requests)
		if rate < b.MaxErrorRate {
			continue
		}
		send(rollout.Verdict{Metric: "breaker", Result: rollout.VerdictFailed, Value: rate, Samples: s.Requests,
			Window: b.Window.Duration, Breaker: true,
			Reason: fmt.Sprintf("%d of %d requests failed (%.1f%%) in the last %s, at or above maxErrorRate %g%%",
				s.Errors, s.Requests, rate, b.Window.Duration, b.MaxErrorRate)})
		return
	}
}

// measure takes one verdict of metric m for the canary over the last d. A
// source that fails makes the verdict an error, and one without data
// inconclusive: the rollout waits, never promotes.
func (c *Checks) measure(ctx context.Context, service string, a rollout.StartAnalysis, m spec.Metric, d time.Duration) rollout.Verdict {
	if m.Provider == spec.ProviderPrometheus {
		return c.measureQuery(ctx, service, a, m, d)
	}
	src, err := c.sources.For(m.Provider)
	if err != nil {
		return rollout.Verdict{Metric: m.Name, Result: rollout.VerdictError, Reason: err.Error()}
	}
	s, err := src.Window(ctx, service, a.Canary, d)
	if err != nil {
		return rollout.Verdict{Metric: m.Name, Result: rollout.VerdictError,
			Reason: fmt.Sprintf("metric source %s: %v", m.Provider, err)}
	}
	x := analysis.Measurement{Requests: s.Requests, Errors: s.Errors, Generated: s.Generated}
	if s.Requests > 0 {
		x.Latency = float64(s.Quantile(m.Quantile)) / float64(time.Millisecond)
	}
	v := analysis.Evaluate(m, x)
	// The window the data really covers decides which weight the verdict
	// counts for: whole seconds may reach back before "now minus d", into
	// the previous weight (a version's traffic as the stable one, even).
	v.Window = d
	if !s.Since.IsZero() {
		v.Window = max(d, time.Since(s.Since))
	}
	return v
}

// measureQuery runs a prometheus check: its template expanded for this
// rollout, one number judged; warnings are kept in the verdict's reason.
func (c *Checks) measureQuery(ctx context.Context, service string, a rollout.StartAnalysis, m spec.Metric, d time.Duration) rollout.Verdict {
	fail := func(res rollout.VerdictResult, format string, args ...any) rollout.Verdict {
		return rollout.Verdict{Metric: m.Name, Result: res, Reason: fmt.Sprintf(format, args...)}
	}
	if c.query == nil || m.Prometheus == nil {
		return fail(rollout.VerdictError, "no prometheus querier is configured")
	}
	q, err := spec.ExpandQuery(m.Prometheus.Query, spec.QueryVars{Service: service, Version: a.Canary, Stable: a.Stable, Interval: spec.PromDuration(d)})
	if err != nil {
		return fail(rollout.VerdictError, "query %s", err)
	}
	qctx, cancel := context.WithTimeout(ctx, min(d, 30*time.Second))
	defer cancel()
	val, err := c.query.Query(qctx, m.Prometheus.Address, q)
	switch {
	case errors.Is(err, metrics.ErrNoData):
		return fail(rollout.VerdictInconclusive, "%v", err)
	case err != nil:
		return fail(rollout.VerdictError, "%v", err)
	}
	v := analysis.Judge(m, val.Number)
	v.Window = d
	if len(val.Warnings) > 0 {
		v.Reason += "; prometheus warnings: " + strings.Join(val.Warnings, "; ")
	}
	return v
}
