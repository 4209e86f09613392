package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/metrics/accesslog"
	nginxrouter "github.com/switchyard/switchyard/internal/router/nginx"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// accessLogs owns the followers of nginx-mode services' access logs: one
// per file (services may share one), each fed its services' versions'
// targets and upstream names, and run until the daemon stops or no
// service names its file any more.
type accessLogs struct {
	d *Daemon

	mu        sync.Mutex
	followers map[string]*follower // by path
	byService map[string]*accesslog.Follower
	wg        sync.WaitGroup
}

type follower struct {
	f      *accesslog.Follower
	cancel context.CancelFunc
}

func newAccessLogs(d *Daemon) *accessLogs {
	return &accessLogs{d: d, followers: map[string]*follower{}, byService: map[string]*accesslog.Follower{}}
}

// configure makes the followers those of svcs' access logs, starting new
// ones and stopping those no service names, and registers each service's
// versions and upstreams with its follower.
func (a *accessLogs) configure(svcs []*spec.Service) error {
	a.mu.Lock()
	keep := map[string]bool{}
	a.byService = map[string]*accesslog.Follower{}
	var started []*follower
	for _, s := range svcs {
		n := s.Spec.TrafficRouter.Nginx
		if n == nil || n.AccessLog == "" {
			continue
		}
		keep[n.AccessLog] = true
		fl := a.followers[n.AccessLog]
		if fl == nil {
			f := accesslog.New(n.AccessLog, accesslog.Options{Logger: a.d.log})
			if err := a.d.reg.Register(f.Collector()); err != nil {
				a.d.log.Warn("access log metrics not registered", "path", n.AccessLog, "error", err)
			}
			fl = &follower{f: f}
			a.followers[n.AccessLog] = fl
			started = append(started, fl)
		}
		a.byService[s.Metadata.Name] = fl.f
	}
	var stopped []*follower
	for path, fl := range a.followers {
		if !keep[path] {
			delete(a.followers, path)
			stopped = append(stopped, fl)
		}
	}
	a.mu.Unlock()
	for _, fl := range stopped {
		fl.cancel()
		fl.f.Close()
		a.d.reg.Unregister(fl.f.Collector())
	}
	for _, fl := range started {
		ctx, cancel := context.WithCancel(context.Background())
		fl.cancel = cancel
		a.wg.Go(func() { fl.f.Run(ctx) })
	}
	var errs []error
	for _, s := range svcs {
		if s.Spec.TrafficRouter.Nginx == nil {
			continue
		}
		for _, v := range s.Spec.Versions {
			errs = append(errs, a.setVersion(s.Metadata.Name, v.Name, v.Targets))
		}
	}
	return errors.Join(errs...)
}

func (a *accessLogs) follower(service string) *accesslog.Follower {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byService[service]
}

// setVersion tells a service's follower a version's targets, and the
// upstream groups whose lines are the service's (the router names one per
// version).
func (a *accessLogs) setVersion(service, version string, targets []string) error {
	f := a.follower(service)
	if f == nil {
		return nil
	}
	if err := f.SetVersion(service, version, targets); err != nil {
		return err
	}
	return f.SetUpstreams(service, a.d.nginx.Upstreams(service)...)
}

func (a *accessLogs) removeVersion(service, version string) error {
	f := a.follower(service)
	if f == nil {
		return nil
	}
	if err := f.RemoveVersion(service, version); err != nil {
		return err
	}
	return f.SetUpstreams(service, a.d.nginx.Upstreams(service)...)
}

// close stops every follower and waits for them.
func (a *accessLogs) close() {
	a.mu.Lock()
	fls := a.followers
	a.followers = map[string]*follower{}
	a.mu.Unlock()
	for _, fl := range fls {
		fl.cancel()
		fl.f.Close()
	}
	a.wg.Wait()
}

// nginxTargets is an nginx-mode service's runner.Targets: the router
// (health checks, the include file) and the access-log follower (which
// address is which version's).
type nginxTargets struct {
	router *nginxrouter.Router
	logs   *accessLogs
}

var _ runner.Targets = nginxTargets{}

func (t nginxTargets) SetVersion(service, version string, targets []string) error {
	if err := t.router.SetVersion(service, version, targets); err != nil {
		return err
	}
	return t.logs.setVersion(service, version, targets)
}

func (t nginxTargets) RemoveVersion(service, version string) error {
	if err := t.router.RemoveVersion(service, version); err != nil {
		return err
	}
	return t.logs.removeVersion(service, version)
}

// builtinSource is the builtin metric provider: the built-in proxy's
// windows, or for a service in nginx mode, its access log's. It is a
// metrics.Source and a metrics.SecondSource.
type builtinSource struct{ d *Daemon }

var (
	_ metrics.Source       = builtinSource{}
	_ metrics.SecondSource = builtinSource{}
)

func (b builtinSource) Window(ctx context.Context, service, version string, d time.Duration) (metrics.Sample, error) {
	if f := b.d.logs.follower(service); f != nil {
		return f.Window(ctx, service, version, d)
	}
	if b.d.nginx.Has(service) {
		return metrics.Sample{}, fmt.Errorf("service %q is in nginx mode without spec.trafficRouter.nginx.accessLog: no builtin measurements", service)
	}
	return b.d.proxy.CompletedWindow(service, version, d), nil
}

func (b builtinSource) Seconds(ctx context.Context, service string, versions []string, after int64) (metrics.Seconds, error) {
	if f := b.d.logs.follower(service); f != nil {
		return f.Seconds(ctx, service, versions, after)
	}
	return b.d.proxy.Seconds(ctx, service, versions, after)
}
