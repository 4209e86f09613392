package spec

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Lifecycle hook names, CodeDeploy's, in the order a rollout runs them
// (HookOrder); afterPromotion is Switchyard's own, for cleanup once the new
// version has all traffic.
const (
	HookBeforeInstall      = "beforeInstall"
	HookAfterInstall       = "afterInstall"
	HookApplicationStart   = "applicationStart"
	HookValidateService    = "validateService"
	HookBeforeAllowTraffic = "beforeAllowTraffic"
	HookAfterAllowTraffic  = "afterAllowTraffic"
	HookAfterPromotion     = "afterPromotion"
)

// HookOrder lists the lifecycle hook names in the order they run.
var HookOrder = []string{
	HookBeforeInstall, HookAfterInstall, HookApplicationStart, HookValidateService,
	HookBeforeAllowTraffic, HookAfterAllowTraffic, HookAfterPromotion,
}

// DefaultHookTimeout bounds a hook that sets no timeout.
const DefaultHookTimeout = 5 * time.Minute

// Hooks are the lifecycle commands of a rollout, by CodeDeploy's names
// (docs/hooks.md says where each runs in each strategy). A hook that exits
// non-zero or outlives its timeout rolls the rollout back. A hook killed by
// a crash of `serve` runs again after the restart, so hooks must be
// idempotent.
type Hooks struct {
	// BeforeInstall runs once the new version's targets are healthy, before
	// anything else of the rollout.
	BeforeInstall *Hook `json:"beforeInstall,omitempty"`
	// AfterInstall runs after beforeInstall.
	AfterInstall *Hook `json:"afterInstall,omitempty"`
	// ApplicationStart runs after afterInstall.
	ApplicationStart *Hook `json:"applicationStart,omitempty"`
	// ValidateService runs after applicationStart, still before the new
	// version takes any traffic: the place for smoke tests (the seed's
	// validate_service.sh).
	ValidateService *Hook `json:"validateService,omitempty"`
	// BeforeAllowTraffic runs right before the first traffic shift to the new
	// version: the first setWeight above 0 of a canary, the switch of a
	// blue-green (after its preview and approval).
	BeforeAllowTraffic *Hook `json:"beforeAllowTraffic,omitempty"`
	// AfterAllowTraffic runs right after the switch to 100%, before a bake.
	AfterAllowTraffic *Hook `json:"afterAllowTraffic,omitempty"`
	// AfterPromotion runs last, after the bake, before the rollout is marked
	// promoted (cleanup such as cache invalidation); its failure still rolls
	// back, while the previous version is kept.
	AfterPromotion *Hook `json:"afterPromotion,omitempty"`
}

// Hook is one lifecycle command.
type Hook struct {
	// Command is the argv to run, like ["./validate_service.sh"] or
	// ["curl", "-sf", "http://127.0.0.1:9001/health"]: no shell is involved,
	// so write ["sh", "-c", "..."] for one. A relative path is resolved
	// against the service file's directory, a bare name on PATH.
	Command []string `json:"command"`
	// Timeout bounds one run; the hook's process group is killed then and
	// the rollout rolled back.
	Timeout Duration `json:"timeout,omitempty" range:"1s,24h"`
	// RunAs is the user the command runs as (needs Switchyard to run as
	// root); unset: Switchyard's own user.
	RunAs string `json:"runAs,omitempty"`
}

// Hook returns the hook of a lifecycle name, or nil when it is not set or
// the name is unknown.
func (h *Hooks) Hook(name string) *Hook {
	if h == nil {
		return nil
	}
	switch name {
	case HookBeforeInstall:
		return h.BeforeInstall
	case HookAfterInstall:
		return h.AfterInstall
	case HookApplicationStart:
		return h.ApplicationStart
	case HookValidateService:
		return h.ValidateService
	case HookBeforeAllowTraffic:
		return h.BeforeAllowTraffic
	case HookAfterAllowTraffic:
		return h.AfterAllowTraffic
	case HookAfterPromotion:
		return h.AfterPromotion
	}
	return nil
}

// Argv returns the command to execute: its first word resolved as the
// executor runs it (a path containing a slash against dir, the service
// file's directory, when relative; a bare name left for PATH).
func (h *Hook) Argv(dir string) []string {
	argv := append([]string(nil), h.Command...)
	if len(argv) > 0 && strings.ContainsRune(argv[0], filepath.Separator) && !filepath.IsAbs(argv[0]) && dir != "" {
		argv[0] = filepath.Join(dir, argv[0])
	}
	return argv
}

// Dir is the directory relative hook commands are resolved against: the
// service file's, or the working directory for a service built in code.
func (s *Service) Dir() string {
	if s.File == "" {
		return ""
	}
	return filepath.Dir(s.File)
}

// defaultHooks gives every set hook its timeout.
func defaultHooks(h *Hooks) {
	if h == nil {
		return
	}
	for _, name := range HookOrder {
		if k := h.Hook(name); k != nil {
			setDuration(&k.Timeout, DefaultHookTimeout)
		}
	}
}

// hooks checks every set hook: a command whose executable exists now (a
// typo found by `validate`, not by the first rollout) and a runAs user
// that exists and can be switched to.
func (v *validator) hooks() {
	h := v.s.Spec.Hooks
	if h == nil {
		return
	}
	for _, name := range HookOrder {
		k := h.Hook(name)
		if k == nil {
			continue
		}
		p := "spec.hooks." + name
		switch {
		case len(k.Command) == 0:
			v.add(p+".command", "", `is required: the argv to run, like ["./validate_service.sh"]`)
		case k.Command[0] == "":
			v.add(p+".command[0]", `""`, "must name the program to run")
		default:
			if want := checkExecutable(k.Argv(v.s.Dir())[0]); want != "" {
				v.add(p+".command[0]", quote(k.Command[0]), want)
			}
		}
		if k.RunAs != "" {
			if want := checkRunAs(k.RunAs); want != "" {
				v.add(p+".runAs", quote(k.RunAs), want)
			}
		}
	}
}

// checkExecutable returns what is wrong with a hook's program, or "".
func checkExecutable(path string) string {
	if !strings.ContainsRune(path, filepath.Separator) {
		if _, err := exec.LookPath(path); err != nil {
			return "must be a program on PATH (" + os.Getenv("PATH") + "), or a path to an executable file"
		}
		return ""
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Sprintf("must be an executable file; %s does not exist (a relative path is resolved against the service file's directory)", path)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("must be an executable file; %s is not a regular file", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Sprintf("must be an executable file; %s is not executable (chmod +x %s)", path, path)
	}
	return ""
}

// checkRunAs returns what is wrong with a runAs user, or "".
func checkRunAs(name string) string {
	u, err := LookupUser(name)
	if err != nil {
		return "must be a user that exists on this host (" + err.Error() + ")"
	}
	if os.Geteuid() != 0 && strconv.Itoa(os.Geteuid()) != u.Uid {
		return "needs Switchyard to run as root to switch users; remove runAs, or run serve as root"
	}
	return ""
}

// LookupUser finds a runAs user by name, or by numeric id.
func LookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr == nil {
			return user.LookupId(name)
		}
	}
	return u, err
}
