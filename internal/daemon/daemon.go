// Package daemon wires Switchyard together: the store, the proxy, one
// runner per service, the analysis loops and the admin API. It is the only
// package that imports everything.
package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/egress"
	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/hook"
	"github.com/switchyard/switchyard/internal/metrics"
	promsource "github.com/switchyard/switchyard/internal/metrics/prometheus"
	"github.com/switchyard/switchyard/internal/notify"
	"github.com/switchyard/switchyard/internal/proxy"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/builtin"
	nginxrouter "github.com/switchyard/switchyard/internal/router/nginx"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/statedir"
	"github.com/switchyard/switchyard/internal/store"
)

// DefaultAdminAddr is where the admin API listens unless told otherwise.
const DefaultAdminAddr = "127.0.0.1:9901"

// Options configure a Daemon.
type Options struct {
	// Files are the service files to serve (reloaded on SIGHUP).
	Files []string
	// Services, when set, are served in addition to Files (the demo uses it).
	Services []*spec.Service
	// StateDir holds the store, the admin token and the sticky-session key.
	StateDir string
	// Admin is the admin API's listen address (DefaultAdminAddr if empty).
	Admin string
	// AdminTLSCert, AdminTLSKey, AdminInsecureRemote and AdminOpenMetrics
	// are the rest of admin.ListenConfig: a non-loopback Admin needs TLS or
	// AdminInsecureRemote.
	AdminTLSCert, AdminTLSKey string
	AdminInsecureRemote       bool
	AdminOpenMetrics          bool
	// Logger receives every log line; nil discards.
	Logger *slog.Logger
	// Tick is how often runners see time pass (1s if zero).
	Tick time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// EgressAllow lists internal addresses outbound calls (Prometheus
	// queries, webhooks, notifications) may reach; every other loopback,
	// private or link-local destination is refused.
	EgressAllow []netip.Prefix
}

// Daemon is a running Switchyard: proxy, runners and admin API. It builds
// the store, the proxy and the routers; runners reach them only through
// the runner package's interfaces.
type Daemon struct {
	opts  Options
	log   *slog.Logger
	store *store.Store
	proxy *proxy.Proxy
	// checker health-checks every target of every service, whatever its router.
	checker *health.Checker
	// notifier sends the history's events to the services' channels.
	notifier *notify.Notifier
	// routers by spec.trafficRouter kind; analyzer reads every metric source.
	builtin  *builtin.Router
	nginx    *nginxrouter.Router
	logs     *accessLogs // nginx-mode services' access logs
	analyzer runner.Analyzer
	// judge is the sequential judge (one of analyzer's), which also keeps
	// every service's baseline.
	judge *runner.Judge
	// webhooks calls spec.webhooks through the egress policy.
	webhooks *hook.Webhooks
	reg      *prometheus.Registry
	hub      *hub
	token    string

	rolloutsTotal *prometheus.CounterVec

	mu       sync.Mutex // guards services and runCtx
	services map[string]*serviceEntry
	runCtx   context.Context
	runners  sync.WaitGroup

	// cfgMu serialises configuration changes (start, SIGHUP, apply); specs
	// is the configuration in force.
	cfgMu sync.Mutex
	specs map[string]*spec.Service

	healthMu sync.Mutex
	// health caches what the proxy reported, per service and version.
	health map[string]map[string]rollout.VersionHealth

	adminURL atomic.Pointer[string]
	ready    atomic.Bool
}

type serviceEntry struct {
	runner *runner.Runner
	cancel context.CancelFunc
}

// New loads and validates the configuration, opens the store and prepares
// the proxy. Nothing listens until Run. A configuration error wraps
// spec errors (exit code 2); a store that cannot be read is an error too:
// Switchyard never starts with an empty state over a broken one.
func New(opts Options) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Admin == "" {
		opts.Admin = DefaultAdminAddr
	}
	if opts.StateDir == "" {
		return nil, errors.New("no state directory: pass --state-dir")
	}
	if _, err := loadServices(opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	token, err := admin.EnsureToken(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	key, err := ensureKey(filepath.Join(opts.StateDir, "sticky.key"))
	if err != nil {
		return nil, fmt.Errorf("sticky-session key: %w", err)
	}
	st, err := store.Open(filepath.Join(opts.StateDir, "state.db"), store.Options{Timeout: 2 * time.Second, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Health checking is its own part: the proxy routes by it, runners are
	// told of its changes, and a router other than the proxy would use it
	// the same way.
	hc, err := health.New(health.Options{Logger: opts.Logger, Registerer: reg})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("health checker: %w", err)
	}
	px, err := proxy.New(proxy.Options{Logger: opts.Logger, Registerer: reg, StickyKey: key, Health: hc})
	if err != nil {
		hc.Close()
		st.Close()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// Every call to an address a user configured goes through one policy.
	egressPolicy := egress.Policy{Allow: opts.EgressAllow}
	webhooks := hook.NewWebhooks(egressPolicy.Client(spec.MaxWebhookCall), opts.Logger)
	d := &Daemon{
		webhooks: webhooks,
		opts:     opts,
		log:      opts.Logger,
		store:    st,
		proxy:    px,
		checker:  hc,
		notifier: notify.New(opts.Logger, st, egressPolicy.Client(15*time.Second)),
		reg:      reg,
		hub:      newHub(),
		token:    token,
		builtin:  builtin.New(px),
		nginx:    nginxrouter.New(nginxrouter.Options{Logger: opts.Logger, Health: hc}),
		services: map[string]*serviceEntry{},
		health:   map[string]map[string]rollout.VersionHealth{},
		rolloutsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_rollouts_total",
			Help: "Finished rollouts by service and result (promoted, rolled-back, aborted).",
		}, []string{"service", "result"}),
	}
	d.logs = newAccessLogs(d)
	// builtin is the proxy's windows, or an nginx-mode service's access
	// log, for the threshold checks and the sequential judge alike.
	builtinSrc := builtinSource{d}
	d.judge = runner.NewJudge(func(*spec.Service) metrics.SecondSource { return builtinSrc })
	d.analyzer = runner.Analyzers{
		runner.NewChecks(metrics.Sources{
			spec.ProviderBuiltin: builtinSrc,
		}, promsource.New(egressPolicy.Client(30*time.Second)), webhooks).WithLoad(px),
		d.judge,
	}
	reg.MustRegister(d.rolloutsTotal)
	hc.OnChange(d.healthChanged)
	return d, nil
}

// loadServices reads every file and the inline services, and validates them
// together (duplicate names, two services on one address).
func loadServices(opts Options) ([]*spec.Service, error) {
	var svcs []*spec.Service
	if len(opts.Files) > 0 {
		s, err := spec.LoadFiles(opts.Files...)
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		svcs = append(svcs, s...)
	}
	svcs = append(svcs, opts.Services...)
	if len(svcs) == 0 {
		return nil, &ConfigError{Err: errors.New("no services: pass -f FILE with at least one Service document")}
	}
	if err := spec.ValidateAll(svcs); err != nil {
		return nil, &ConfigError{Err: err}
	}
	return svcs, nil
}

// ConfigError marks an invalid configuration (exit code 2).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Run serves until ctx ends, then shuts down gracefully: stop accepting,
// let in-flight requests finish, persist, close the store.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.store.Close()
	// Fired webhooks (post-rollout, event) end within their budget.
	defer d.webhooks.Close()
	svcs, err := loadServices(d.opts)
	if err != nil {
		return err
	}
	if err := d.proxy.Apply(ctx, proxyServices(svcs)); err != nil {
		d.nginx.Close()
		return fmt.Errorf("start proxy: %w", err)
	}

	adminLn, err := admin.Listen(d.adminListenConfig())
	if err != nil {
		d.shutdownProxy()
		return fmt.Errorf("admin API: %w", err)
	}
	url := adminLn.URL
	// The endpoint file first: whoever sees AdminURL may look for it.
	if err := admin.WriteEndpoint(d.opts.StateDir, url); err != nil {
		adminLn.Close()
		d.shutdownProxy()
		return fmt.Errorf("admin API: %w", err)
	}
	d.adminURL.Store(&url)
	srv := &http.Server{
		Handler: admin.NewServer(d, admin.ServerOptions{
			Token: d.token, Logger: d.log, Gatherer: d.reg, Ready: d.readyErr,
			MetricsNeedToken: adminLn.Exposure.MetricsNeedToken,
		}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// TLS handshake failures (scanners, a CLI without --ca-cert) go
		// to the daemon's log, not to stderr in another format.
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}

	runCtx, cancelRunners := context.WithCancel(context.WithoutCancel(ctx))
	d.mu.Lock()
	d.runCtx = runCtx
	d.mu.Unlock()
	// The notifier reads the history the runners write; it stops after
	// them, and what it had not sent yet goes out after the next start.
	notifyCtx, stopNotifier := context.WithCancel(context.WithoutCancel(ctx))
	var notifier sync.WaitGroup
	notifier.Go(func() { d.notifier.Run(notifyCtx) })
	defer func() {
		stopNotifier()
		notifier.Wait()
	}()
	if err := d.applyAll(ctx, svcs); err != nil {
		cancelRunners()
		d.runners.Wait()
		adminLn.Close()
		d.shutdownProxy()
		return err
	}
	d.ready.Store(true)
	adminLn.Announce(d.log)
	d.log.Info("serving", "admin", url, "services", len(svcs), "state", d.opts.StateDir)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(adminLn) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("admin API: %w", err)
	}
	d.ready.Store(false)
	d.log.Info("shutting down")
	// End the event streams first: srv.Shutdown waits for active requests,
	// and a stream only ends when the hub closes it.
	d.hub.close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	srv.Shutdown(sctx)
	cancel()
	cancelRunners()
	d.runners.Wait()
	d.shutdownProxy()
	return runErr
}

// adminListenConfig is where and how the admin API listens.
func (d *Daemon) adminListenConfig() admin.ListenConfig {
	return admin.ListenConfig{
		Addr: d.opts.Admin, CertFile: d.opts.AdminTLSCert, KeyFile: d.opts.AdminTLSKey,
		InsecureRemote: d.opts.AdminInsecureRemote, OpenMetrics: d.opts.AdminOpenMetrics,
	}
}

func (d *Daemon) shutdownProxy() {
	ctx, cancel := context.WithTimeout(context.Background(), d.maxDrain())
	defer cancel()
	if err := d.proxy.Shutdown(ctx); err != nil {
		d.log.Warn("proxy shutdown", "err", err)
	}
	// nginx keeps serving the last include file; only the loop stops.
	d.nginx.Close()
	d.logs.close()
	d.checker.Close()
}

// maxDrain is the longest drainTimeout of the services in force.
func (d *Daemon) maxDrain() time.Duration {
	var drain time.Duration
	for _, svc := range d.currentServices() {
		drain = max(drain, svc.Spec.Proxy.DrainTimeout.Duration)
	}
	if drain <= 0 {
		drain = spec.DefaultDrainTimeout
	}
	return drain
}

// AdminURL is the admin API's address once Run listens ("" before).
func (d *Daemon) AdminURL() string {
	if p := d.adminURL.Load(); p != nil {
		return *p
	}
	return ""
}

// Token is the admin API's bearer token.
func (d *Daemon) Token() string { return d.token }

func (d *Daemon) readyErr() error {
	if !d.ready.Load() {
		return errors.New("not ready")
	}
	return nil
}

// Reload re-reads the service files (SIGHUP). The new configuration is built
// and validated fully, then swapped in; on any error the old one keeps serving.
func (d *Daemon) Reload(ctx context.Context) error {
	svcs, err := loadServices(d.opts)
	if err != nil {
		return err
	}
	return d.applyAll(ctx, svcs)
}

// applyAll makes svcs the whole configuration.
func (d *Daemon) applyAll(ctx context.Context, svcs []*spec.Service) error {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.applyLocked(ctx, svcs)
}

// currentServices returns the specs in force.
func (d *Daemon) currentServices() []*spec.Service {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.specsLocked()
}

func (d *Daemon) specsLocked() []*spec.Service {
	out := make([]*spec.Service, 0, len(d.specs))
	for _, s := range d.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// applyLocked swaps in a whole configuration; the caller holds cfgMu, so
// config changes never interleave. Everything that can fail (compiling the
// machines, restoring the states of new services, binding listeners) happens
// before anything changes; then new runners start, changed ones are
// reconfigured (each answers once the new spec is in force) and removed ones
// stop, their state staying in the store.
func (d *Daemon) applyLocked(ctx context.Context, svcs []*spec.Service) error {
	type change struct {
		svc     *spec.Service
		machine *rollout.Machine
		state   rollout.State
		runner  *runner.Runner // nil for a new service
	}
	d.mu.Lock()
	existing := maps.Clone(d.services)
	runCtx := d.runCtx
	d.mu.Unlock()

	var changes []change
	keep := map[string]bool{}
	for _, svc := range svcs {
		name := svc.Metadata.Name
		keep[name] = true
		m, err := rollout.New(svc)
		if err != nil {
			return &ConfigError{Err: fmt.Errorf("service %q: %w", name, err)}
		}
		if e, ok := existing[name]; ok {
			old := d.specs[name]
			if old != nil && old.SameSpec(svc) {
				continue
			}
			if old != nil && routerKind(old) != routerKind(svc) {
				// A runner keeps the router it was built with.
				return &ConfigError{Err: fmt.Errorf("service %q: spec.trafficRouter changed from %s to %s; a running service keeps its router: restart serve to change it", name, routerKind(old), routerKind(svc))}
			}
			changes = append(changes, change{svc: svc, machine: m, runner: e.runner})
			continue
		}
		st, err := runner.Restore(ctx, d.store, name)
		if err != nil {
			return err
		}
		changes = append(changes, change{svc: svc, machine: m, state: st})
	}
	if err := d.proxy.Apply(ctx, proxyServices(svcs)); err != nil {
		return fmt.Errorf("apply configuration: %w", err)
	}
	if err := d.nginx.Configure(nginxServices(svcs)); err != nil {
		return fmt.Errorf("apply configuration: %w", err)
	}
	if err := d.logs.configure(nginxServices(svcs)); err != nil {
		return fmt.Errorf("apply configuration: %w", err)
	}

	var errs []error
	for _, c := range changes {
		name := c.svc.Metadata.Name
		if c.runner != nil {
			if err := c.runner.Reconfigure(ctx, c.svc, c.machine); err != nil {
				errs = append(errs, fmt.Errorf("service %q: %w", name, err))
			}
			continue
		}
		r := runner.New(d.runnerOptions(c.svc), c.svc, c.machine, c.state)
		rctx, cancel := context.WithCancel(runCtx)
		d.mu.Lock()
		d.services[name] = &serviceEntry{runner: r, cancel: cancel}
		d.mu.Unlock()
		d.runners.Go(func() { r.Run(rctx) })
		d.runners.Go(func() {
			d.judge.Watch(rctx, name, func() (*spec.Service, string) {
				svc, st := r.Snapshot()
				return svc, st.Stable
			})
		})
		if err := r.WaitStarted(ctx); err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", name, err))
		}
	}
	for name, e := range existing {
		if keep[name] {
			continue
		}
		e.cancel()
		<-e.runner.Done()
		d.mu.Lock()
		delete(d.services, name)
		d.mu.Unlock()
		d.log.Info("service removed", "service", name)
	}
	d.specs = map[string]*spec.Service{}
	for _, s := range svcs {
		d.specs[s.Metadata.Name] = s
	}
	d.notifier.Configure(svcs)
	return errors.Join(errs...)
}

// runnerOptions wires a service's runner: the store, the router its spec
// selects, the analysis and the event stream.
func (d *Daemon) runnerOptions(svc *spec.Service) runner.Options {
	router, targets := d.routerFor(svc)
	return runner.Options{
		Log:      d.log,
		Store:    d.store,
		Router:   router,
		Targets:  targets,
		Analyzer: d.analyzer,
		Executor: hook.New(d.log, d.webhooks),
		Now:      d.opts.Now,
		Tick:     d.opts.Tick,
		Publish: func(ev runner.Event) {
			d.notifier.Wake() // the event is in the history already
			d.hub.publish(admin.StreamEvent{
				Time: d.opts.Now(), Service: ev.Service, Kind: ev.Kind, Message: ev.Message,
				Rollout: ev.Rollout, Phase: ev.Phase, Weights: ev.Weights, Result: ev.Result,
			})
			d.webhooks.Event(svc, ev.Version, ev.Phase, ev.Kind, ev.Message)
		},
		Finished: func(service string, f rollout.Finished) {
			d.rolloutsTotal.WithLabelValues(service, string(f.Result)).Inc()
			d.webhooks.Finished(svc, f)
		},
		Health: d.versionHealth,
	}
}

// routerFor returns what moves svc's traffic, by spec.trafficRouter:
// nginx, or the built-in proxy (trafficRouter.proxy, which Default sets;
// Validate refuses a spec with neither or both).
func (d *Daemon) routerFor(svc *spec.Service) (runner.Router, runner.Targets) {
	if svc.Spec.TrafficRouter.Nginx != nil {
		return d.nginx, nginxTargets{router: d.nginx, logs: d.logs}
	}
	return d.builtin, d.builtin
}

// routerKind names a service's router for messages.
func routerKind(svc *spec.Service) string {
	if svc.Spec.TrafficRouter.Nginx != nil {
		return "nginx"
	}
	return "proxy"
}

// proxyServices are the services the built-in proxy serves.
func proxyServices(svcs []*spec.Service) []*spec.Service {
	var out []*spec.Service
	for _, s := range svcs {
		if s.Spec.TrafficRouter.Nginx == nil {
			out = append(out, s)
		}
	}
	return out
}

// nginxServices are the services of nginx mode.
func nginxServices(svcs []*spec.Service) []*spec.Service {
	var out []*spec.Service
	for _, s := range svcs {
		if s.Spec.TrafficRouter.Nginx != nil {
			out = append(out, s)
		}
	}
	return out
}

func (d *Daemon) runner(name string) (*runner.Runner, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.services[name]
	if !ok {
		return nil, false
	}
	return e.runner, true
}

// healthChanged is the proxy's health callback: remember it and hand it to
// the runner.
func (d *Daemon) healthChanged(service, version string, healthy, total int) {
	d.healthMu.Lock()
	if d.health[service] == nil {
		d.health[service] = map[string]rollout.VersionHealth{}
	}
	d.health[service][version] = rollout.VersionHealth{Healthy: healthy, Total: total}
	d.healthMu.Unlock()
	if r, ok := d.runner(service); ok {
		r.HealthChanged(version, healthy, total)
	}
}

// versionHealth returns the health the proxy reported for a service's versions.
func (d *Daemon) versionHealth(service string) map[string]rollout.VersionHealth {
	d.healthMu.Lock()
	defer d.healthMu.Unlock()
	return maps.Clone(d.health[service])
}

// ensureKey returns the 32-byte key in path, creating it (mode 0600) once.
func ensureKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("%s is %d bytes, want 32: delete it to generate a new key (sticky sessions restart)", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	return key, statedir.WriteFile(path, key, 0o600)
}
