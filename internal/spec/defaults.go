package spec

import (
	"math"
	"slices"
	"strings"
	"time"
)

// Defaults applied by Service.Default. Docs and tests read these constants,
// so the documented value and the applied value cannot drift apart.
const (
	DefaultHealthPath                  = "/"
	DefaultHealthInterval              = 2 * time.Second
	DefaultHealthTimeout               = 1 * time.Second
	DefaultHealthyThreshold            = 2
	DefaultUnhealthyThreshold          = 2
	DefaultPassiveFailures             = 5
	DefaultPassiveBackoff              = 30 * time.Second
	DefaultProgressDeadline            = 10 * time.Minute
	DefaultAnalysisInterval            = 1 * time.Minute
	DefaultJudgeInterval               = 10 * time.Second
	DefaultAnalysisThreshold           = 5
	DefaultConsecutiveErrorLimit       = 4
	DefaultQuantile                    = 0.99
	DefaultMinSamples                  = 10
	DefaultBreakerMinRequests          = 20
	DefaultBreakerWindow               = 10 * time.Second
	DefaultAutoPromote                 = true
	DefaultScaleDownDelay              = 10 * time.Minute
	DefaultMaxWeight                   = 50
	DefaultCanaryInterval              = 1 * time.Minute
	DefaultStickyTTL                   = 24 * time.Hour
	DefaultDrainTimeout                = 30 * time.Second
	DefaultReadHeaderTimeout           = 10 * time.Second
	DefaultIdleTimeout                 = 90 * time.Second
	DefaultReadTimeout                 = 60 * time.Second
	DefaultUpstreamTimeout             = 0 * time.Second // none: streams may run for ever
	DefaultMaxHeaderBytes              = 65536
	DefaultMaxBodyBytes          int64 = 0 // unlimited
	DefaultRetries                     = 2
)

// The commands nginx mode runs unless spec.trafficRouter.nginx names others.
var (
	DefaultNginxTestCommand   = []string{"nginx", "-t"}
	DefaultNginxReloadCommand = []string{"nginx", "-s", "reload"}
)

// Metric providers.
const (
	// ProviderBuiltin is the built-in proxy's measurements of every request.
	ProviderBuiltin = "builtin"
	// ProviderPrometheus is a PromQL query (a metric's prometheus block).
	ProviderPrometheus = "prometheus"
)

// minSamplesFor is the default minSamples of a success-rate check with
// lower bound min: the fewest requests in which a single error still
// passes (100 for min 99, 1000 for 99.9), at least DefaultMinSamples. A
// thinner window makes the check inconclusive, so one unlucky error in a
// quiet second cannot fail a healthy version.
func minSamplesFor(min *float64) int {
	if min == nil || *min >= 100 || *min <= 0 {
		return DefaultMinSamples
	}
	n := int(math.Ceil(100/(100-*min) - 1e-9))
	return max(n, DefaultMinSamples)
}

// Default fills every unset field with its default, in place. It is the one
// place defaults live; it is idempotent and never overrides a set value.
// A spec without a strategy gets a blue-green strategy with autoPromote.
func (s *Service) Default() {
	sp := &s.Spec

	hc := &sp.HealthCheck
	setString(&hc.Path, DefaultHealthPath)
	setDuration(&hc.Interval, DefaultHealthInterval)
	setDuration(&hc.Timeout, DefaultHealthTimeout)
	setInt(&hc.HealthyThreshold, DefaultHealthyThreshold)
	setInt(&hc.UnhealthyThreshold, DefaultUnhealthyThreshold)
	setInt(&hc.Passive.ConsecutiveFailures, DefaultPassiveFailures)
	setDuration(&hc.Passive.Backoff, DefaultPassiveBackoff)

	if st := sp.Routing.StickySessions; st != nil {
		setDuration(&st.TTL, DefaultStickyTTL)
	}

	if sp.Strategy.Canary == nil && sp.Strategy.BlueGreen == nil {
		sp.Strategy.BlueGreen = &BlueGreen{}
	}
	if bg := sp.Strategy.BlueGreen; bg != nil {
		if bg.AutoPromote == nil {
			v := DefaultAutoPromote
			bg.AutoPromote = &v
		}
		setDuration(&bg.ScaleDownDelay, DefaultScaleDownDelay)
	}
	if c := sp.Strategy.Canary; c != nil && (c.StepWeight != 0 || len(c.StepWeights) > 0) {
		if c.StepWeight != 0 {
			setInt(&c.MaxWeight, DefaultMaxWeight)
		}
		setDuration(&c.Interval, DefaultCanaryInterval)
	}

	if a := sp.Analysis; a != nil {
		if a.Judge == JudgeSequential {
			// The judge decides every second; its ledger entries (and the
			// verdicts that let a step end) come every interval.
			setDuration(&a.Interval, DefaultJudgeInterval)
			if a.Sequential == nil {
				a.Sequential = &Sequential{}
			}
			a.Sequential.defaults()
		}
		setString(&a.Judge, JudgeThresholds)
		setDuration(&a.Interval, DefaultAnalysisInterval)
		setInt(&a.Threshold, DefaultAnalysisThreshold)
		setInt(&a.ConsecutiveErrorLimit, DefaultConsecutiveErrorLimit)
		if l := a.Load; l != nil {
			l.defaults()
		}
		if b := a.Breaker; b != nil {
			setInt(&b.MinRequests, DefaultBreakerMinRequests)
			setDuration(&b.Window, DefaultBreakerWindow)
		}
		for i := range a.Metrics {
			m := &a.Metrics[i]
			setDuration(&m.Interval, a.Interval.Duration)
			if m.Prometheus != nil {
				setString(&m.Provider, ProviderPrometheus)
			}
			setString(&m.Provider, ProviderBuiltin)
			if m.Provider != ProviderBuiltin {
				continue
			}
			switch m.Name {
			case MetricRequestDuration:
				if m.Quantile == 0 {
					m.Quantile = DefaultQuantile
				}
				setInt(&m.MinSamples, DefaultMinSamples)
			case MetricRequestSuccessRate:
				setInt(&m.MinSamples, minSamplesFor(m.ThresholdRange.Min))
			}
		}
	}
	defaultHooks(sp.Hooks)
	defaultWebhooks(sp)
	if sp.TrafficRouter == (TrafficRouter{}) && !s.Cluster {
		// A Rollout's traffic is moved by its own trafficRouter, never the
		// built-in proxy.
		sp.TrafficRouter.Proxy = &ProxyRouter{}
	}
	if n := sp.TrafficRouter.Nginx; n != nil {
		setString(&n.UpstreamName, strings.ReplaceAll(s.Metadata.Name, "-", "_"))
		setString(&n.Mode, NginxModeReload)
		if len(n.TestCommand) == 0 {
			n.TestCommand = slices.Clone(DefaultNginxTestCommand)
		}
		if len(n.ReloadCommand) == 0 {
			n.ReloadCommand = slices.Clone(DefaultNginxReloadCommand)
		}
	}

	setDuration(&sp.ProgressDeadline, DefaultProgressDeadline)

	p := &sp.Proxy
	setDuration(&p.DrainTimeout, DefaultDrainTimeout)
	setDuration(&p.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDuration(&p.IdleTimeout, DefaultIdleTimeout)
	setDuration(&p.ReadTimeout, DefaultReadTimeout)
	setInt(&p.MaxHeaderBytes, DefaultMaxHeaderBytes)
	if p.Retries == nil {
		r := DefaultRetries
		p.Retries = &r
	}
}

func setString(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDuration(p *Duration, v time.Duration) {
	if p.Duration == 0 {
		p.Duration = v
	}
}

// Judges (spec.analysis.judge).
const (
	JudgeThresholds = "thresholds"
	JudgeSequential = "sequential"
)

// The sequential judge's defaults (../shared/design/sequential-judge.md).
const (
	DefaultAlphaRollback  = 0.005
	DefaultAlphaLatency   = 0.005
	DefaultAlphaPromotion = 0.05
	DefaultErrorMargin    = 0.5
	DefaultSlowMargin     = 1.0
	DefaultTolerance      = 1.0
	DefaultBaselineWindow = 30 * time.Minute
	DefaultMinBaseline    = 1000
	DefaultMinExposure    = time.Minute
	DefaultMaxDuration    = 30 * time.Minute
)

// DefaultQuantiles are the judge's monitored latency quantiles.
var DefaultQuantiles = []float64{0.5, 0.9, 0.99, 0.999}

func (q *Sequential) defaults() {
	setFloat := func(f *float64, d float64) {
		if *f == 0 {
			*f = d
		}
	}
	setFloat(&q.AlphaRollback, DefaultAlphaRollback)
	setFloat(&q.AlphaLatency, DefaultAlphaLatency)
	setFloat(&q.AlphaPromotion, DefaultAlphaPromotion)
	setFloat(&q.ErrorMargin, DefaultErrorMargin)
	setFloat(&q.SlowMargin, DefaultSlowMargin)
	setFloat(&q.Tolerance, DefaultTolerance)
	if len(q.Quantiles) == 0 {
		q.Quantiles = slices.Clone(DefaultQuantiles)
	}
	setDuration(&q.BaselineWindow, DefaultBaselineWindow)
	setInt(&q.MinBaseline, DefaultMinBaseline)
	setDuration(&q.MinExposure, DefaultMinExposure)
	setDuration(&q.MaxDuration, DefaultMaxDuration)
	if pm := q.Prometheus; pm != nil {
		setString(&pm.DurationUnit, DurationSeconds)
		setDuration(&pm.ScrapeInterval, DefaultJudgeScrapeInterval)
	}
}

// The units of spec.analysis.sequential.prometheus.durationUnit.
const (
	DurationSeconds      = "s"
	DurationMilliseconds = "ms"
)

// DefaultJudgeScrapeInterval is the judge's Prometheus point spacing.
const DefaultJudgeScrapeInterval = time.Second
