package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// healthConfig is a service's compiled health settings. Checkers read the
// current one every round, so Apply can change it without restarting them.
type healthConfig struct {
	path              string
	interval, timeout time.Duration
	healthyAfter      int32
	unhealthyAfter    int32
	expect            []int
	passiveFailures   int32
	backoff           time.Duration
}

func newHealthConfig(hc spec.HealthCheck) *healthConfig {
	c := &healthConfig{
		path:            hc.Path,
		interval:        hc.Interval.Duration,
		timeout:         hc.Timeout.Duration,
		healthyAfter:    int32(hc.HealthyThreshold),
		unhealthyAfter:  int32(hc.UnhealthyThreshold),
		expect:          append([]int(nil), hc.ExpectedStatus...),
		passiveFailures: int32(hc.Passive.ConsecutiveFailures),
		backoff:         hc.Passive.Backoff.Duration,
	}
	// Zero values are possible when the caller skipped spec defaulting.
	if c.path == "" || c.path[0] != '/' {
		c.path = "/" + c.path
	}
	if c.interval <= 0 {
		c.interval = spec.DefaultHealthInterval
	}
	if c.timeout <= 0 {
		c.timeout = spec.DefaultHealthTimeout
	}
	if c.healthyAfter <= 0 {
		c.healthyAfter = spec.DefaultHealthyThreshold
	}
	if c.unhealthyAfter <= 0 {
		c.unhealthyAfter = spec.DefaultUnhealthyThreshold
	}
	if c.passiveFailures <= 0 {
		c.passiveFailures = spec.DefaultPassiveFailures
	}
	if c.backoff <= 0 {
		c.backoff = spec.DefaultPassiveBackoff
	}
	return c
}

func (c *healthConfig) expected(code int) bool {
	if len(c.expect) == 0 {
		return code >= 200 && code < 400
	}
	for _, e := range c.expect {
		if e == code {
			return true
		}
	}
	return false
}

// startHealth starts t's active checker; it probes at once, then every interval.
func (p *Proxy) startHealth(svc *service, t *target) {
	ctx, cancel := context.WithCancel(p.root)
	t.stop = cancel
	t.done = make(chan struct{})
	p.wg.Go(func() {
		defer close(t.done)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			cfg := svc.health.Load()
			p.probe(ctx, cfg, t)
			if u := t.ejectedUntil.Load(); u != 0 && time.Now().UnixNano() >= u {
				// The passive backoff ran out: the target is back in rotation.
				t.ejectedUntil.Store(0)
				p.healthChanged(t.version)
			}
			timer.Reset(cfg.interval)
		}
	})
}

// stopHealth stops t's checker (it does not wait for it).
func (t *target) stopHealth() {
	if t.stop != nil {
		t.stop()
	}
}

func (p *Proxy) probe(ctx context.Context, cfg *healthConfig, t *target) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	ok, msg := false, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.scheme+"://"+t.host+cfg.path, nil)
	if err == nil {
		req.Header.Set("User-Agent", "switchyard-health/1")
		rt := http.RoundTripper(p.probeH1)
		if t.h2c {
			rt = p.probeH2C
		}
		var res *http.Response
		res, err = rt.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
			res.Body.Close()
			ok = cfg.expected(res.StatusCode)
			if !ok {
				msg = fmt.Sprintf("health check %s returned %d", cfg.path, res.StatusCode)
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil && p.root.Err() != nil {
			return // shutting down, not a verdict
		}
		msg = "health check: " + err.Error()
	}
	if msg != "" {
		t.setErr(msg)
	}
	p.observe(t, ok, cfg)
}

// observe applies one active probe result with thresholds. The first result
// decides at once, so a new target needs one probe, not healthyThreshold.
func (p *Proxy) observe(t *target, ok bool, cfg *healthConfig) {
	cur := t.state.Load()
	next := cur
	switch {
	case cur == healthUnknown:
		t.okStreak.Store(0)
		next = healthDown
		if ok {
			next = healthUp
		}
	case ok && cur == healthUp, !ok && cur == healthDown:
		t.okStreak.Store(0)
	default:
		need := cfg.unhealthyAfter
		if ok {
			need = cfg.healthyAfter
		}
		if t.okStreak.Add(1) >= need {
			t.okStreak.Store(0)
			next = healthUp
			if !ok {
				next = healthDown
			}
		}
	}
	if next == cur {
		return
	}
	t.state.Store(next)
	if next == healthUp {
		t.lastErr.Store(nil) // a recovered target shows no stale error
		t.up.Set(1)
		p.log.Info("target healthy", "service", t.version.service, "version", t.version.name, "target", t.addr)
	} else {
		t.up.Set(0)
		p.log.Warn("target unhealthy", "service", t.version.service, "version", t.version.name, "target", t.addr, "error", p.lastErr(t))
	}
	p.healthChanged(t.version)
}

func (p *Proxy) lastErr(t *target) string {
	if e := t.lastErr.Load(); e != nil {
		return *e
	}
	return ""
}

// passiveFailure counts one proxied failure against t and ejects it after
// consecutiveFailures in a row, unless it is the version's last routable target.
func (p *Proxy) passiveFailure(t *target, cfg *healthConfig, reason string) {
	t.setErr(reason)
	if t.fails.Add(1) < cfg.passiveFailures {
		return
	}
	v := t.version
	v.ejectMu.Lock()
	now := time.Now().UnixNano()
	if t.ejected(now) {
		v.ejectMu.Unlock()
		return
	}
	others := 0
	for _, o := range v.list() {
		if o != t && o.routable(now) {
			others++
		}
	}
	if others == 0 {
		v.ejectMu.Unlock()
		return // never eject the last routable target of a version
	}
	t.ejectedUntil.Store(now + int64(cfg.backoff))
	t.fails.Store(0)
	v.ejectMu.Unlock()
	p.log.Warn("target ejected", "service", v.service, "version", v.name, "target", t.addr, "backoff", cfg.backoff, "error", reason)
	p.healthChanged(v)
}

// passiveSuccess resets t's consecutive-failure count.
func passiveSuccess(t *target) {
	if t.fails.Load() != 0 {
		t.fails.Store(0)
	}
}

// healthChanged marks v for the notifier goroutine, which reports changed
// counts to OnHealthChange subscribers. Never blocks.
func (p *Proxy) healthChanged(v *version) {
	p.dirtyMu.Lock()
	p.dirty[v] = struct{}{}
	p.dirtyMu.Unlock()
	select {
	case p.dirtySignal <- struct{}{}:
	default:
	}
}

func (p *Proxy) runNotifier() {
	for {
		select {
		case <-p.root.Done():
			return
		case <-p.dirtySignal:
		}
		p.dirtyMu.Lock()
		vs := make([]*version, 0, len(p.dirty))
		for v := range p.dirty {
			vs = append(vs, v)
		}
		clear(p.dirty)
		p.dirtyMu.Unlock()
		p.subMu.Lock()
		subs := p.subs
		p.subMu.Unlock()
		now := time.Now().UnixNano()
		for _, v := range vs {
			// Counts are reported only once every target has had its first
			// probe: "0 healthy" for targets nobody has checked yet would
			// read as a version that lost its targets (and roll back a
			// canary restored after a restart). The first probe marks the
			// version dirty again.
			if !v.probed() {
				continue
			}
			h, n := v.counts(now)
			if h == v.lastHealthy && n == v.lastTotal {
				continue
			}
			v.lastHealthy, v.lastTotal = h, n
			for _, fn := range subs {
				fn(v.service, v.name, h, n)
			}
		}
	}
}
