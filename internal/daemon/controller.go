package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// The Daemon is the admin API's controller.
var _ admin.Controller = (*Daemon)(nil)

// Services lists every service's status, sorted by name.
func (d *Daemon) Services(ctx context.Context) ([]admin.ServiceStatus, error) {
	d.mu.Lock()
	names := make([]string, 0, len(d.services))
	for name := range d.services {
		names = append(names, name)
	}
	d.mu.Unlock()
	slices.Sort(names)
	out := make([]admin.ServiceStatus, 0, len(names))
	for _, name := range names {
		st, err := d.Service(ctx, name)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, st)
	}
	return out, nil
}

// Service returns one service's status.
func (d *Daemon) Service(_ context.Context, name string) (admin.ServiceStatus, error) {
	r, ok := d.runner(name)
	if !ok {
		return admin.ServiceStatus{}, fmt.Errorf("service %q: %w", name, admin.ErrNotFound)
	}
	svc, st := r.Snapshot()
	return d.status(svc, st), nil
}

// Command submits a rollout command to the service's runner and answers
// with the status once the command was applied and persisted.
func (d *Daemon) Command(ctx context.Context, name string, cmd rollout.Event) (admin.ServiceStatus, error) {
	r, ok := d.runner(name)
	if !ok {
		return admin.ServiceStatus{}, fmt.Errorf("service %q: %w", name, admin.ErrNotFound)
	}
	if dep, ok := cmd.(rollout.Deploy); ok {
		if err := checkDeploy(dep); err != nil {
			return admin.ServiceStatus{}, fmt.Errorf("service %q: %w: %w", name, admin.ErrInvalid, err)
		}
	}
	if err := r.Submit(ctx, cmd); err != nil {
		return admin.ServiceStatus{}, classify(name, err)
	}
	return d.Service(ctx, name)
}

// checkDeploy validates what a deploy request brings that the spec does not.
func checkDeploy(dep rollout.Deploy) error {
	var errs []error
	if dep.Version == "" {
		errs = append(errs, errors.New("version is empty; pass --version NAME"))
	}
	switch dep.Strategy {
	case "", rollout.StrategyCanary, rollout.StrategyBlueGreen:
	default:
		errs = append(errs, fmt.Errorf("strategy is %q; must be canary or blue-green", dep.Strategy))
	}
	for i, t := range dep.Targets {
		if err := spec.CheckTarget(t); err != nil {
			errs = append(errs, fmt.Errorf("targets[%d] is %q; %w", i, t, err))
		}
	}
	return errors.Join(errs...)
}

// classify maps the machine's refusals to the API's error kinds.
func classify(name string, err error) error {
	switch {
	case errors.Is(err, rollout.ErrUnknownVersion), errors.Is(err, rollout.ErrUnknownStrategy):
		return fmt.Errorf("service %q: %w: %w", name, admin.ErrInvalid, err)
	case errors.Is(err, rollout.ErrRolloutRunning),
		errors.Is(err, rollout.ErrNoRollout),
		errors.Is(err, rollout.ErrNothingToRetry),
		errors.Is(err, rollout.ErrNothingToRevert),
		errors.Is(err, rollout.ErrAlreadyStable),
		errors.Is(err, rollout.ErrCannotPromote),
		errors.Is(err, rollout.ErrVersionInUse):
		return fmt.Errorf("service %q: %w: %w", name, admin.ErrConflict, err)
	}
	return fmt.Errorf("service %q: %w", name, err)
}

// History returns a service's rollout timeline.
func (d *Daemon) History(ctx context.Context, name string, limit int) ([]rollout.HistoryEntry, error) {
	if _, ok := d.runner(name); !ok {
		return nil, fmt.Errorf("service %q: %w", name, admin.ErrNotFound)
	}
	return d.store.History(ctx, name, limit)
}

// Apply validates YAML service documents and swaps them in, replacing
// services of the same name and adding new ones. Nothing changes on error.
func (d *Daemon) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	svcs, err := spec.Parse("apply", yaml)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
	}
	// Merge and swap under one lock: two applies (or an apply and a SIGHUP)
	// never undo each other.
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	byName := map[string]*spec.Service{}
	for _, s := range d.specsLocked() {
		byName[s.Metadata.Name] = s
	}
	names := make([]string, 0, len(svcs))
	for _, s := range svcs {
		byName[s.Metadata.Name] = s
		names = append(names, s.Metadata.Name)
	}
	merged := make([]*spec.Service, 0, len(byName))
	for _, s := range byName {
		merged = append(merged, s)
	}
	if err := spec.ValidateAll(merged); err != nil {
		return nil, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
	}
	if err := d.applyLocked(ctx, merged); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
		}
		return nil, err
	}
	d.log.Info("configuration applied", "services", names)
	return names, nil
}

// Subscribe streams rollout events.
func (d *Daemon) Subscribe(ctx context.Context) (<-chan admin.StreamEvent, func()) {
	return d.hub.subscribe(ctx)
}

// status renders a service's state for the API.
func (d *Daemon) status(svc *spec.Service, st rollout.State) admin.ServiceStatus {
	out := admin.StatusOf(svc.Metadata.Name, st, d.opts.Now())
	out.Listen = svc.Spec.Listen
	if addr := d.proxy.Addr(svc.Metadata.Name); addr != nil {
		out.Listen = addr.String()
	}
	for _, t := range d.checker.Status(svc.Metadata.Name) {
		out.Targets = append(out.Targets, admin.TargetStatus{
			Version: t.Version, Address: t.Address, Healthy: t.Healthy, Ejected: t.Ejected, LastError: t.LastError,
		})
	}
	return out
}
