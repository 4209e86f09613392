// Package nginx is the traffic router of nginx mode: it drives an nginx
// that already runs, the way the seed's blue-green-switch.sh did, but as a
// transaction. Switchyard owns one include file per service (upstreams and
// routing maps, rendered from values internal/spec validated against
// nginx's syntax); every change writes a temporary file, renames it into
// place, runs the test command (nginx -t) and reloads (nginx -s reload)
// only when the test passes. Any failure puts the previous file back and
// returns nginx's output verbatim, so the runner records RouterFailed and
// the engine keeps the previous weights.
//
// Changes that arrive while an apply runs (several services, health
// changes, weight steps) are coalesced: the next apply renders them all
// and reloads once.
//
// Health comes from internal/health, as in standalone mode: the Router
// registers each version's targets with the Checker, so Switchyard's own
// active checks gate a new version exactly as they do for the built-in
// proxy, and a target failing them is rendered "down".
package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// ErrNotRunning is returned (wrapped) when the reload command shows that no
// nginx runs to reload (no pid file, a stale pid) or cannot be reached.
var ErrNotRunning = errors.New("nginx is not running or not reachable")

// ErrUnknownService is returned for a service Configure has not set up.
var ErrUnknownService = errors.New("not an nginx-mode service")

// ErrClosed is returned once the Router is closed.
var ErrClosed = errors.New("nginx router closed")

// CommandTimeout bounds one run of the test or reload command.
const CommandTimeout = 30 * time.Second

// Options configure a Router.
type Options struct {
	Logger *slog.Logger
	// Health is the checker whose active checks decide which targets are
	// rendered down; the daemon's shared one.
	Health *health.Checker
}

// Router renders and applies the include files of nginx-mode services.
type Router struct {
	log    *slog.Logger
	health *health.Checker

	mu       sync.Mutex // guards services, pending, closed
	services map[string]*service
	pending  map[string][]chan error // service -> waiters of the next apply
	closed   bool

	gen    int64        // last lua-mode generation, under mu
	client *http.Client // lua mode's posts to control servers

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	// applyMu serialises applies: the include files and nginx's reloads
	// are one resource.
	applyMu sync.Mutex
}

var (
	_ runner.Router  = (*Router)(nil)
	_ runner.Targets = (*Router)(nil)
)

// service is one nginx-mode service: its settings and the routing in force.
type service struct {
	name     string
	cfg      spec.NginxRouter
	rules    []spec.Rule
	trusted  []string
	sticky   *spec.StickySessions
	versions map[string][]*health.Target
	// want is the routing asked for; routed is what nginx serves (nil
	// until the first successful apply).
	want   *rollout.Routing
	routed *rollout.Routing
	// written is the file nginx runs with (lua mode: with gen 0, so that a
	// render with the same peers compares equal).
	written []byte
	// structure is the lua-mode structure nginx was last reloaded with.
	structure string
	// moved are include files the service wrote before its includeFile
	// changed, removed by its next commit.
	moved []string
}

// New returns a Router and starts its apply loop; Close stops it.
func New(opts Options) *Router {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{
		log: log, health: opts.Health,
		services: map[string]*service{},
		pending:  map[string][]chan error{},
		client:   &http.Client{Timeout: 5 * time.Second},
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if r.health != nil {
		r.health.OnChange(func(svc, _ string, _, _ int) { r.refresh(svc) })
	}
	go r.loop() // owned by r: Close waits for done
	return r
}

// Close stops the apply loop; waiting Route calls get ErrClosed. It is
// idempotent.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	return nil
}

// Configure adds or updates nginx-mode services (spec.Default and
// spec.Validate done) and removes the ones it had that svcs no longer
// lists; the versions each spec lists are registered with the health
// checker. Nothing is written until a service is routed.
func (r *Router) Configure(svcs []*spec.Service) error {
	cfgs := map[string]*health.Config{}
	for _, s := range svcs {
		hc, err := health.NewConfig(s.Spec.HealthCheck)
		if err != nil {
			return fmt.Errorf("service %q: %w", s.Metadata.Name, err)
		}
		cfgs[s.Metadata.Name] = hc
	}
	r.mu.Lock()
	keep := map[string]bool{}
	for _, s := range svcs {
		name := s.Metadata.Name
		keep[name] = true
		sv := r.services[name]
		if sv == nil {
			sv = &service{name: name, versions: map[string][]*health.Target{}}
			r.services[name] = sv
		}
		next := *s.Spec.TrafficRouter.Nginx
		if sv.written != nil && sv.cfg.IncludeFile != next.IncludeFile {
			// The old file goes in the same transaction that writes the
			// new one; until then nginx runs with the old one.
			sv.moved = append(sv.moved, sv.cfg.IncludeFile)
			sv.written, sv.structure = nil, ""
		}
		sv.cfg = next
		sv.rules = s.Spec.Routing.Rules
		sv.trusted = s.Spec.Routing.TrustedSources
		sv.sticky = s.Spec.Routing.StickySessions
		if sv.want == nil && s.Spec.Stable != "" {
			sv.want = &rollout.Routing{Stable: s.Spec.Stable, Weights: rollout.Weights{s.Spec.Stable: 100}}
		}
	}
	var removed []string
	for name := range r.services {
		if !keep[name] {
			delete(r.services, name)
			removed = append(removed, name)
		}
	}
	r.mu.Unlock()
	for _, name := range removed {
		if r.health != nil {
			r.health.RemoveService(name)
		}
	}
	var errs []error
	for _, s := range svcs {
		if r.health != nil {
			r.health.Configure(s.Metadata.Name, cfgs[s.Metadata.Name])
		}
		for _, v := range s.Spec.Versions {
			if err := r.SetVersion(s.Metadata.Name, v.Name, v.Targets); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, s := range svcs {
		r.refresh(s.Metadata.Name)
	}
	return errors.Join(errs...)
}

// Route implements runner.Router: it renders the service's include file
// for rt and applies it (test, then reload). It returns once nginx was
// told to reload with it, or with the error that left the previous file in
// place.
func (r *Router) Route(ctx context.Context, name string, rt rollout.Routing) error {
	r.mu.Lock()
	sv := r.services[name]
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrClosed
	case sv == nil:
		r.mu.Unlock()
		return fmt.Errorf("route %q: %w", name, ErrUnknownService)
	}
	want := rt
	sv.want = &want
	ch := make(chan error, 1)
	r.pending[name] = append(r.pending[name], ch)
	r.mu.Unlock()
	r.signal()
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("route %q: %w", name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("route %q: %w", name, ctx.Err())
	}
}

// SetVersion implements runner.Targets: the version's targets are
// health-checked from now on; the file changes at the next apply.
func (r *Router) SetVersion(name, version string, targets []string) error {
	if r.health == nil {
		return errors.New("nginx router has no health checker")
	}
	ts, err := r.health.SetVersion(name, version, targets)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sv := r.services[name]
	if sv == nil {
		return fmt.Errorf("set version %q of %q: %w", version, name, ErrUnknownService)
	}
	sv.versions[version] = ts
	return nil
}

// RemoveVersion implements runner.Targets: the version's upstream leaves
// the include file at the next apply.
func (r *Router) RemoveVersion(name, version string) error {
	if r.health != nil {
		r.health.RemoveVersion(name, version)
	}
	r.mu.Lock()
	sv := r.services[name]
	if sv != nil {
		delete(sv.versions, version)
	}
	r.mu.Unlock()
	r.refresh(name)
	return nil
}

// Targets returns every registered target of a service with its version
// (for the access-log source, which maps $upstream_addr to versions).
func (r *Router) Targets(name string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	if sv := r.services[name]; sv != nil {
		for v, ts := range sv.versions {
			for _, t := range ts {
				out[t.Addr()] = v
			}
		}
	}
	return out
}

// Has reports whether name is a service Configure set up.
func (r *Router) Has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[name] != nil
}

// Upstreams returns the names of a service's upstreams, as nginx logs them
// in $proxy_host: the weighted one and one per registered version.
func (r *Router) Upstreams(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	sv := r.services[name]
	if sv == nil {
		return nil
	}
	out := []string{sv.cfg.UpstreamName}
	for _, v := range slices.Sorted(maps.Keys(sv.versions)) {
		out = append(out, versionUpstream(sv.cfg.UpstreamName, v))
	}
	return out
}

// refresh schedules a re-render of a service already routed (a health or
// target change), with nobody waiting for it.
func (r *Router) refresh(name string) {
	r.mu.Lock()
	sv := r.services[name]
	if sv == nil || sv.routed == nil || r.closed {
		r.mu.Unlock()
		return
	}
	if _, ok := r.pending[name]; !ok {
		r.pending[name] = nil
	}
	r.mu.Unlock()
	r.signal()
}

func (r *Router) signal() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// loop applies what is pending, one batch at a time: whatever arrives while
// a batch is tested and reloaded waits for the next one, so a burst costs
// one reload.
func (r *Router) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			r.mu.Lock()
			for _, ws := range r.pending {
				for _, ch := range ws {
					ch <- ErrClosed
				}
			}
			r.pending = map[string][]chan error{}
			r.mu.Unlock()
			return
		case <-r.kick:
		}
		r.mu.Lock()
		batch := r.pending
		r.pending = map[string][]chan error{}
		r.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		results := r.applyBatch(context.Background(), batch)
		for name, ws := range batch {
			for _, ch := range ws {
				ch <- results[name]
			}
		}
	}
}

// change is one service's part of a batch.
type change struct {
	sv      *service
	cfg     spec.NginxRouter // the service's settings when it was rendered
	want    rollout.Routing
	content []byte
	key     []byte // content, and in lua mode without its gen
	path    string
	// Lua mode: the structure of content, the body to post, and whether
	// posting it is enough (nginx runs the same structure).
	structure, control, upstream string
	post                         []byte
	weightsOnly                  bool
	prev                         []byte // the file before, nil when it did not exist
	existed                      bool
	moved                        []string // old include files to remove
}

// applyBatch renders every service of the batch, writes the files that
// changed, tests once and reloads once. When the test fails for a batch of
// several services, each is applied alone, so one service's bad render
// fails only that service.
func (r *Router) applyBatch(ctx context.Context, batch map[string][]chan error) map[string]error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	results := map[string]error{}
	var changes []*change
	for name := range batch {
		c, err := r.prepare(name)
		if err != nil {
			results[name] = err
			continue
		}
		if c != nil {
			changes = append(changes, c)
		}
	}
	var reloads []*change
	for _, c := range changes {
		if c.weightsOnly {
			results[c.sv.name] = r.commitPost(ctx, c)
		} else {
			reloads = append(reloads, c)
		}
	}
	changes = reloads
	if len(changes) == 0 {
		return results
	}
	err := r.commit(ctx, changes)
	if err != nil && len(changes) > 1 && errors.Is(err, errTestFailed) {
		for _, c := range changes {
			results[c.sv.name] = r.commit(ctx, []*change{c})
		}
		return results
	}
	for _, c := range changes {
		results[c.sv.name] = err
	}
	return results
}

// prepare renders a service's file for the routing it wants; nil when the
// file nginx runs with is already that.
func (r *Router) prepare(name string) (*change, error) {
	now := time.Now().UnixNano()
	r.mu.Lock()
	sv := r.services[name]
	if sv == nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("route %q: %w", name, ErrUnknownService)
	}
	if sv.want == nil {
		r.mu.Unlock()
		return nil, nil
	}
	v := view{
		Service: name, Upstream: sv.cfg.UpstreamName, Routing: *sv.want,
		Versions: map[string][]server{},
		Rules:    sv.rules, Trusted: sv.trusted, Sticky: sv.sticky,
	}
	for ver, ts := range sv.versions {
		ss := make([]server, len(ts))
		for i, t := range ts {
			ss[i] = server{Addr: t.Addr(), Up: t.Routable(now)}
		}
		v.Versions[ver] = ss
	}
	written, path, moved, cfg := sv.written, sv.cfg.IncludeFile, slices.Clone(sv.moved), sv.cfg
	r.mu.Unlock()
	for ver, w := range v.Routing.Weights {
		if _, ok := v.Versions[ver]; !ok && w > 0 {
			return nil, fmt.Errorf("route %q: version %q has weight %d but no targets registered", name, ver, w)
		}
	}
	key := append(render(v), '\n')
	c := &change{sv: sv, cfg: cfg, want: v.Routing, content: key, key: key, path: path, moved: moved}
	if cfg.Mode == spec.NginxModeLua {
		v.Lua = &luaParams{Control: cfg.ControlAddress}
		c.structure = structureOf(v)
		v.Lua.Structure = c.structure
		key = append(render(v), '\n')
		c.key = key
		v.Lua.Gen = r.nextGen()
		c.content = append(render(v), '\n')
		c.post = postBody(v.Lua.Gen, peersOf(v, weightsOf(v)))
		c.control = cfg.ControlAddress
		c.upstream = cfg.UpstreamName
		r.mu.Lock()
		c.weightsOnly = sv.written != nil && sv.structure == c.structure
		r.mu.Unlock()
	}
	if written != nil && bytes.Equal(written, key) {
		r.mu.Lock()
		sv.routed = &c.want
		r.mu.Unlock()
		return nil, nil
	}
	return c, nil
}

// errTestFailed marks a failed test command.
var errTestFailed = errors.New("nginx test failed")

// commit is the transaction: write every file (temp file, fsync, rename),
// run the test command, reload; on any failure put every previous file
// back. The commands of the first change are run (every nginx-mode
// service of one Switchyard drives the same nginx).
func (r *Router) commit(ctx context.Context, changes []*change) error {
	var written []*change
	type removal struct {
		path string
		prev []byte
	}
	var removed []removal
	restore := func() error {
		var errs []error
		for _, rm := range removed {
			if err := writeAtomic(rm.path, rm.prev); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", rm.path, err))
			}
		}
		for _, c := range written {
			var err error
			if c.existed {
				err = writeAtomic(c.path, c.prev)
			} else {
				err = os.Remove(c.path)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", c.path, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, c := range changes {
		prev, err := os.ReadFile(c.path)
		switch {
		case err == nil:
			c.prev, c.existed = prev, true
		case errors.Is(err, os.ErrNotExist):
		default:
			return errors.Join(fmt.Errorf("read %s: %w", c.path, err), restore())
		}
		if err := writeAtomic(c.path, c.content); err != nil {
			return errors.Join(fmt.Errorf("write %s: %w", c.path, err), restore())
		}
		written = append(written, c)
		for _, old := range c.moved {
			prev, err := os.ReadFile(old)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil {
				err = os.Remove(old)
			}
			if err != nil {
				return errors.Join(fmt.Errorf("remove the previous include file %s: %w", old, err), restore())
			}
			removed = append(removed, removal{old, prev})
		}
	}
	cfg := changes[0].cfg
	if out, err := run(ctx, cfg.TestCommand); err != nil {
		rerr := restore()
		return errors.Join(fmt.Errorf("%w: %s %s; the previous %s is back in place and nginx was not reloaded:\n%s",
			errTestFailed, argvString(cfg.TestCommand), err, names(changes), out), rerr)
	}
	if out, err := run(ctx, cfg.ReloadCommand); err != nil {
		rerr := restore()
		if notRunning(out, err) {
			return errors.Join(fmt.Errorf("%w: %s %s; the previous %s is back in place:\n%s",
				ErrNotRunning, argvString(cfg.ReloadCommand), err, names(changes), out), rerr)
		}
		return errors.Join(fmt.Errorf("nginx reload failed: %s %s; the previous %s is back in place:\n%s",
			argvString(cfg.ReloadCommand), err, names(changes), out), rerr)
	}
	// Lua mode: the control server answers for the new structure once the
	// new workers run, so a post also tells when the reload took effect.
	for _, c := range changes {
		if c.structure == "" {
			continue
		}
		if err := post(ctx, r.client, c.control, c.upstream, c.structure, c.post); err != nil {
			r.log.Warn("nginx reloaded, but the control server does not answer for the new file yet", "service", c.sv.name, "error", err)
		}
	}
	r.mu.Lock()
	for _, c := range changes {
		c.sv.written = c.key
		c.sv.structure = c.structure
		c.sv.routed = &c.want
		c.sv.moved = slices.DeleteFunc(c.sv.moved, func(p string) bool { return slices.Contains(c.moved, p) })
	}
	r.mu.Unlock()
	for _, c := range changes {
		r.log.Info("nginx reloaded", "service", c.sv.name, "file", c.path, "routing", describe(c.want))
	}
	return nil
}

// commitPost is lua mode's transaction for a change nginx can take without
// a reload: write the file (so a restart starts with these weights), test
// it, post the peers to the control server; any failure puts the previous
// file back.
func (r *Router) commitPost(ctx context.Context, c *change) error {
	prev, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", c.path, err)
	}
	restore := func() error {
		if err := writeAtomic(c.path, prev); err != nil {
			return fmt.Errorf("restore %s: %w", c.path, err)
		}
		return nil
	}
	if err := writeAtomic(c.path, c.content); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", c.path, err), restore())
	}
	cfg := c.cfg
	if out, err := run(ctx, cfg.TestCommand); err != nil {
		return errors.Join(fmt.Errorf("%w: %s %s; the previous file %s is back in place and nothing was posted:\n%s",
			errTestFailed, argvString(cfg.TestCommand), err, c.path, out), restore())
	}
	if err := post(ctx, r.client, c.control, c.upstream, c.structure, c.post); err != nil {
		return errors.Join(fmt.Errorf("post weights: %w; the previous file %s is back in place", err, c.path), restore())
	}
	r.mu.Lock()
	c.sv.written = c.key
	c.sv.routed = &c.want
	r.mu.Unlock()
	r.log.Info("nginx weights posted", "service", c.sv.name, "control", c.control, "routing", describe(c.want))
	return nil
}

// nextGen returns a lua-mode generation: milliseconds, strictly increasing.
func (r *Router) nextGen() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := max(time.Now().UnixMilli(), r.gen+1)
	r.gen = g
	return g
}

// weightsOf recomputes the per-server weights of a view.
func weightsOf(v view) map[string][]int {
	up := map[string]int{}
	for name, ss := range v.Versions {
		for _, s := range ss {
			if s.Up {
				up[name]++
			}
		}
	}
	_, per := ServerWeights(v.Routing.Weights, up)
	return per
}

func names(changes []*change) string {
	var ps []string
	for _, c := range changes {
		ps = append(ps, c.path)
	}
	if len(ps) == 1 {
		return "file " + ps[0]
	}
	return "files " + strings.Join(ps, ", ")
}

// notRunning recognises nginx's answers when there is no master process to
// signal: a missing or empty pid file, a stale pid, a signal refused.
var notRunningOutput = regexp.MustCompile(`nginx\.pid" failed|invalid PID number|kill\(\d+, \d+\) failed|No such process|Connection refused|is not running|inactive`)

func notRunning(out []byte, err error) bool {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return true // the command itself could not run
	}
	return notRunningOutput.Match(out)
}

// run runs argv without a shell, bounded by CommandTimeout, and returns its
// combined output, trimmed.
func run(ctx context.Context, argv []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", CommandTimeout)
	}
	return bytes.TrimSpace(out), err
}

func argvString(argv []string) string { return fmt.Sprintf("%q", argv) }

// writeAtomic writes data to a temporary file next to path, syncs it and
// renames it over path, so nginx never reads a half-written file.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return werr
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
