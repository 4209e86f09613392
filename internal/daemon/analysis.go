package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// analysisLoop evaluates a rollout's checks against the proxy's windows
// every interval and feeds the verdicts to the service's runner.
type analysisLoop struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (l *analysisLoop) Stop() {
	l.cancel()
	l.wg.Wait()
}

// startAnalysis is the runner's StartAnalysis action. It must not look the
// runner up (d.mu): swap holds d.mu while it waits for runners to stop.
func (d *Daemon) startAnalysis(ctx context.Context, svc *spec.Service, id uint64, a *rollout.StartAnalysis, out chan<- verdict) analysisHandle {
	ctx, cancel := context.WithCancel(ctx)
	l := &analysisLoop{cancel: cancel}
	if svc.Spec.Analysis == nil || len(svc.Spec.Analysis.Metrics) == 0 {
		return l
	}
	name := svc.Metadata.Name
	for _, m := range svc.Spec.Analysis.Metrics {
		interval := m.Interval.Duration
		if interval <= 0 {
			interval = svc.Spec.Analysis.Interval.Duration
		}
		if interval <= 0 {
			interval = time.Minute
		}
		l.wg.Go(func() {
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				v := verdict{rollout: id, Verdict: analysis.Evaluate(m, d.measure(name, a.Canary, interval))}
				select {
				case out <- v:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return l
}

// measure reads a version's requests, errors and p99 over the last d.
func (d *Daemon) measure(service, version string, dur time.Duration) analysis.Measurement {
	s := d.proxy.Window(service, version, dur)
	m := analysis.Measurement{Requests: s.Requests, Errors: s.Errors}
	if s.Requests > 0 {
		m.P99 = float64(s.Quantile(0.99)) / float64(time.Millisecond)
	}
	return m
}
