package hook

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// service returns a service whose validateService hook is a shell script
// with the given body, written next to the service's file.
func service(t *testing.T, body, runAs string) *spec.Service {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.sh"), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	svc := &spec.Service{File: filepath.Join(dir, "web.yaml"), Metadata: spec.Metadata{Name: "web"}}
	svc.Spec.Hooks = &spec.Hooks{ValidateService: &spec.Hook{Command: []string{"./hook.sh", "arg one"}, Timeout: spec.D(time.Minute), RunAs: runAs}}
	return svc
}

var action = rollout.RunHook{
	Rollout: 7, Step: 1, Attempt: 2, Name: "validateService",
	Service: "web", Strategy: rollout.StrategyBlueGreen, Phase: rollout.PhaseProgressing,
	Version: "green", Targets: []string{"127.0.0.1:9101"}, From: "blue", FromTargets: []string{"127.0.0.1:9001", "127.0.0.1:9002"},
}

func execute(t *testing.T, ctx context.Context, svc *spec.Service, a rollout.RunHook) rollout.HookDone {
	t.Helper()
	ev := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil).Execute(ctx, svc, a)
	done, ok := ev.(rollout.HookDone)
	if !ok {
		t.Fatalf("Execute returned %T, want HookDone", ev)
	}
	if done.Rollout != a.Rollout || done.Step != a.Step || done.Attempt != a.Attempt || done.Name != a.Name {
		t.Errorf("HookDone %+v does not name the action %+v", done, a)
	}
	return done
}

func TestSuccessAndEnv(t *testing.T) {
	svc := service(t, `echo "argv: $1"; echo "cwd: $(pwd)"; env | grep -E '^(SWITCHYARD_|HOST=|PORT=)' | sort`, "")
	done := execute(t, t.Context(), svc, action)
	if done.Err != "" {
		t.Fatalf("Err = %q, want success; output %q", done.Err, done.Output)
	}
	for _, want := range []string{
		"argv: arg one",
		"cwd: " + svc.Dir(),
		"SWITCHYARD_SERVICE=web", "SWITCHYARD_ROLLOUT=7", "SWITCHYARD_HOOK=validateService",
		"SWITCHYARD_PHASE=Progressing", "SWITCHYARD_STRATEGY=blue-green", "SWITCHYARD_ATTEMPT=2", "SWITCHYARD_WEIGHT=0",
		"SWITCHYARD_NEW_VERSION=green", "SWITCHYARD_NEW_TARGETS=127.0.0.1:9101",
		"SWITCHYARD_OLD_VERSION=blue", "SWITCHYARD_OLD_TARGETS=127.0.0.1:9001,127.0.0.1:9002",
		"HOST=127.0.0.1", "PORT=9101",
	} {
		if !strings.Contains(done.Output, want+"\n") && !strings.HasSuffix(done.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, done.Output)
		}
	}
}

func TestEnvSeveralTargets(t *testing.T) {
	a := action
	a.Targets = []string{"h2c://10.0.0.1:50051", "[::1]:9102"}
	env := strings.Join(Env(a), "\n")
	if !strings.Contains(env, "SWITCHYARD_NEW_TARGETS=h2c://10.0.0.1:50051,[::1]:9102") {
		t.Errorf("env lacks the targets as written:\n%s", env)
	}
	if strings.Contains(env, "PORT=") || strings.Contains(env, "HOST=") {
		t.Errorf("HOST/PORT set for a version of two targets:\n%s", env)
	}
	a.Targets = []string{"https://[::1]:8443"}
	if env := strings.Join(Env(a), "\n"); !strings.Contains(env, "HOST=::1\nPORT=8443") {
		t.Errorf("env for one IPv6 https target:\n%s", env)
	}
}

func TestFailureKeepsOutput(t *testing.T) {
	done := execute(t, t.Context(), service(t, `echo "checking /health"; echo "Service failed health check" >&2; exit 3`, ""), action)
	if done.Err != "exit status 3" {
		t.Errorf("Err = %q, want \"exit status 3\"", done.Err)
	}
	if want := "checking /health\nService failed health check"; done.Output != want {
		t.Errorf("Output = %q, want %q", done.Output, want)
	}
}

func TestOutputBounded(t *testing.T) {
	done := execute(t, t.Context(), service(t, `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo last`, ""), action)
	if done.Err != "" {
		t.Fatalf("Err = %q", done.Err)
	}
	if len(done.Output) > MaxOutput+64 || !strings.HasSuffix(done.Output, "line 1999\nlast") || !strings.HasPrefix(done.Output, "[") {
		t.Errorf("Output (%d bytes) = %.80q...; want at most %d bytes, ending with the last lines, saying what was dropped",
			len(done.Output), done.Output, MaxOutput)
	}
}

// TestTimeoutKillsProcessGroup: a hook that hangs in a child (sleep) is
// ended with that child when its deadline passes.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	svc := service(t, `sleep 300 & echo $! > `+pidFile+`; echo started; wait`, "")
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	done := execute(t, ctx, svc, action)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Execute took %s after a 500ms deadline", took)
	}
	if !strings.HasPrefix(done.Err, "timed out after 1m0s") || done.Output != "started" {
		t.Errorf("HookDone = %+v, want a timeout with the output so far", done)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, func() bool { return !alive(pid) }, "the hook's child sleep to be killed with its process group")
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := execute(t, ctx, service(t, `sleep 300`, ""), action)
	if !strings.HasPrefix(done.Err, "cancelled") {
		t.Errorf("Err = %q, want cancelled", done.Err)
	}
}

func TestRunAs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runAs another user needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	svc := service(t, `id -u; echo "$USER"`, "nobody")
	// t.TempDir is private to root; nobody must reach the script.
	for _, d := range []string{svc.Dir(), filepath.Dir(svc.Dir())} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	done := execute(t, t.Context(), svc, action)
	if done.Err != "" || done.Output != u.Uid+"\nnobody" {
		t.Errorf("HookDone = %+v, want uid %s and USER=nobody", done, u.Uid)
	}
}

func TestMissingHookAndGate(t *testing.T) {
	svc := service(t, "exit 0", "")
	a := action
	a.Name = "afterPromotion"
	if done := execute(t, t.Context(), svc, a); !strings.Contains(done.Err, "spec.hooks.afterPromotion is no longer") {
		t.Errorf("Err = %q, want the missing hook named", done.Err)
	}
	ev := New(slog.New(slog.NewTextHandler(io.Discard, nil)), nil).Execute(t.Context(), svc, rollout.OpenGate{Rollout: 1, Name: "confirm-promotion"})
	if g, ok := ev.(rollout.GateAnswered); !ok || g.Open || !strings.Contains(g.Message, "names no webhook") {
		t.Errorf("OpenGate answered %+v, want closed, naming no webhook", ev)
	}
}
