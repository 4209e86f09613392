// Package hook runs the actions of a rollout that take time outside the
// machine: today the lifecycle commands of spec.hooks (RunHook); webhooks,
// gates and load generation belong here too.
package hook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// MaxOutput is how much of a hook's output (stdout and stderr together)
// is kept for the history: the last bytes, where the reason for a failure
// usually is.
const MaxOutput = 4 << 10

// waitDelay is how long a hook's pipes may stay open after it exited or was
// killed (a background child still holding them) before Wait stops reading.
const waitDelay = 2 * time.Second

// Executor runs the lifecycle hooks of spec.hooks as commands, and the
// pre-rollout and confirm-* webhooks of spec.webhooks.
type Executor struct {
	log *slog.Logger
	web *Webhooks
}

var _ runner.Executor = (*Executor)(nil)

// New returns an Executor that logs to log and calls webhooks with web.
func New(log *slog.Logger, web *Webhooks) *Executor {
	return &Executor{log: log, web: web}
}

// Execute runs a RunHook and returns its HookDone, and waits for an
// OpenGate of a confirm-* webhook to open (GateAnswered) or for ctx to end
// (nil: the machine's deadline rolls back). A gate that names no webhook is
// answered closed, so a rollout never passes a gate nobody checked. Other
// actions return nil.
func (e *Executor) Execute(ctx context.Context, svc *spec.Service, a rollout.Action) rollout.Event {
	switch a := a.(type) {
	case rollout.RunHook:
		if name, ok := rollout.WebhookName(a.Name); ok {
			return e.preRollout(ctx, svc, a, name)
		}
		out, err := e.run(ctx, svc, a)
		done := rollout.HookDone{Rollout: a.Rollout, Step: a.Step, Attempt: a.Attempt, Name: a.Name, Output: out}
		if err != nil {
			done.Err = err.Error()
		}
		return done
	case rollout.OpenGate:
		return e.gate(ctx, svc, a)
	}
	return nil
}

// preRollout calls the pre-rollout webhook name of a Hook step.
func (e *Executor) preRollout(ctx context.Context, svc *spec.Service, a rollout.RunHook, name string) rollout.Event {
	done := rollout.HookDone{Rollout: a.Rollout, Step: a.Step, Attempt: a.Attempt, Name: a.Name}
	w := svc.Spec.Webhook(name)
	switch {
	case w == nil:
		done.Err = fmt.Sprintf("spec.webhooks has no webhook %q any more (removed by a reload)", name)
		return done
	case e.web == nil:
		done.Err = "no webhook caller is configured"
		return done
	}
	e.log.Info("webhook started", "service", a.Service, "webhook", name, "type", w.Type, "rollout", a.Rollout, "attempt", a.Attempt)
	answer, err := e.web.Call(ctx, svc, w, a.Version)
	if err != nil {
		done.Err = err.Error()
	}
	done.Output = answer
	e.log.Info("webhook finished", "service", a.Service, "webhook", name, "rollout", a.Rollout, "attempt", a.Attempt, "err", err)
	return done
}

// gate polls the confirm-* webhook of a named Gate step until it answers
// 200.
func (e *Executor) gate(ctx context.Context, svc *spec.Service, a rollout.OpenGate) rollout.Event {
	answered := rollout.GateAnswered{Rollout: a.Rollout, Step: a.Step, Attempt: a.Attempt, Name: a.Name}
	name, ok := rollout.WebhookName(a.Name)
	if !ok {
		answered.Message = "gate " + a.Name + " names no webhook (want webhook:NAME)"
		return answered
	}
	w := svc.Spec.Webhook(name)
	switch {
	case w == nil:
		answered.Message = fmt.Sprintf("spec.webhooks has no webhook %q any more (removed by a reload)", name)
		return answered
	case e.web == nil:
		answered.Message = "no webhook caller is configured"
		return answered
	}
	if err := e.web.Gate(ctx, svc, w, a.Version, svc.Spec.GatePoll()); err != nil {
		return nil // the deadline (a Tick rolls back) or the rollout moved on
	}
	answered.Open = true
	answered.Message = "webhook " + name + " answered 200"
	return answered
}

// run runs hook a.Name of svc until it exits or ctx is done (the hook's
// deadline, or the rollout ended), and returns the tail of its output.
func (e *Executor) run(ctx context.Context, svc *spec.Service, a rollout.RunHook) (string, error) {
	h := svc.Spec.Hooks.Hook(a.Name)
	if h == nil {
		// The steps were frozen when the rollout started; a reload since
		// removed the hook. Failing is the safe reading: it was asked for.
		return "", fmt.Errorf("spec.hooks.%s is no longer in the service's spec", a.Name)
	}
	argv := h.Argv(svc.Dir())
	if len(argv) == 0 {
		return "", fmt.Errorf("spec.hooks.%s.command is empty", a.Name)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = svc.Dir()
	cmd.Env = append(os.Environ(), Env(a)...)
	attr, err := procAttr(h.RunAs)
	if err != nil {
		return "", fmt.Errorf("spec.hooks.%s.runAs %q: %w", a.Name, h.RunAs, err)
	}
	cmd.SysProcAttr = attr.sys
	cmd.Env = append(cmd.Env, attr.env...)
	out := &tail{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay

	start := time.Now()
	e.log.Info("hook started", "service", a.Service, "hook", a.Name, "rollout", a.Rollout, "attempt", a.Attempt, "command", argv)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", argv[0], err)
	}
	// The hook runs in its own process group, so that a timeout also ends
	// what it started (curl, sleep): killing only the shell would leave its
	// children running, holding the output pipe open.
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		killGroup(cmd.Process)
		werr = <-waited
	}
	took := time.Since(start).Round(time.Millisecond)
	err = result(ctx, h, werr)
	e.log.Info("hook finished", "service", a.Service, "hook", a.Name, "rollout", a.Rollout, "attempt", a.Attempt, "took", took, "err", err)
	return out.String(), err
}

// result says how a hook ended, nil when it succeeded.
func result(ctx context.Context, h *spec.Hook, werr error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("timed out after %s; its process group was killed", h.Timeout)
	case ctx.Err() != nil:
		return errors.New("cancelled: the rollout ended or moved on")
	case werr == nil:
		return nil
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("killed by signal %s", ws.Signal())
		}
		return fmt.Errorf("exit status %d", ee.ExitCode())
	}
	// exec.ErrWaitDelay: it exited 0 but left a child holding its output.
	return werr
}

// Env is what a hook is told about its rollout, as NAME=value entries:
//
//	SWITCHYARD_SERVICE      the service's name
//	SWITCHYARD_ROLLOUT      the rollout's id
//	SWITCHYARD_HOOK         the lifecycle name (validateService, ...)
//	SWITCHYARD_PHASE        the service's phase (Progressing, ...)
//	SWITCHYARD_STRATEGY     canary or blue-green
//	SWITCHYARD_ATTEMPT      the attempt (the same when run again after a restart)
//	SWITCHYARD_WEIGHT       the new version's planned percent of traffic
//	SWITCHYARD_NEW_VERSION  the version being rolled out
//	SWITCHYARD_NEW_TARGETS  its targets, comma-separated, as in the spec
//	SWITCHYARD_OLD_VERSION  the version it replaces
//	SWITCHYARD_OLD_TARGETS  that version's targets
//	HOST, PORT              the new version's one target's host and port,
//	                        set only when it has exactly one (scripts
//	                        written for one instance, like the seed's
//	                        validate_service.sh, then work unchanged)
func Env(a rollout.RunHook) []string {
	env := []string{
		"SWITCHYARD_SERVICE=" + a.Service,
		"SWITCHYARD_ROLLOUT=" + strconv.FormatUint(a.Rollout, 10),
		"SWITCHYARD_HOOK=" + a.Name,
		"SWITCHYARD_PHASE=" + string(a.Phase),
		"SWITCHYARD_STRATEGY=" + string(a.Strategy),
		"SWITCHYARD_ATTEMPT=" + strconv.Itoa(a.Attempt),
		"SWITCHYARD_WEIGHT=" + strconv.Itoa(a.Weight),
		"SWITCHYARD_NEW_VERSION=" + a.Version,
		"SWITCHYARD_NEW_TARGETS=" + strings.Join(a.Targets, ","),
		"SWITCHYARD_OLD_VERSION=" + a.From,
		"SWITCHYARD_OLD_TARGETS=" + strings.Join(a.FromTargets, ","),
	}
	if len(a.Targets) == 1 {
		if t, err := spec.ParseTarget(a.Targets[0]); err == nil {
			if host, port, ok := splitHostPort(t.Host); ok {
				env = append(env, "HOST="+host, "PORT="+port)
			}
		}
	}
	return env
}

// splitHostPort splits host:port, keeping an IPv6 host without brackets.
func splitHostPort(hp string) (host, port string, ok bool) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return "", "", false
	}
	return strings.Trim(hp[:i], "[]"), hp[i+1:], true
}

// tail keeps the last max bytes written to it, counting what it dropped.
// exec writes to it from one goroutine (Stdout and Stderr are the same
// writer), and String is read after Wait.
type tail struct {
	max     int
	buf     []byte
	dropped int
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.dropped += over
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// String is the kept output, trimmed, saying how much came before it.
func (t *tail) String() string {
	s := strings.TrimSpace(string(t.buf))
	if t.dropped > 0 {
		s = fmt.Sprintf("[%d bytes before this dropped] %s", t.dropped, s)
	}
	return s
}
