package spec

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const hooksHead = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: 127.0.0.1:8080
  versions:
    - name: blue
      targets: ["127.0.0.1:9001"]
  stable: blue
  hooks:
`

// writeService writes a service file with the given hooks block (indented
// under spec.hooks) next to an executable script check.sh and a
// non-executable notes.txt, and returns its path.
func writeService(t *testing.T, hooks string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "check.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte(hooksHead+hooks), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestHooksValid(t *testing.T) {
	file := writeService(t, `    validateService:
      command: ["./check.sh", "--quick"]
      timeout: 2m
    beforeAllowTraffic:
      command: ["true"]
    afterPromotion:
      command: ["sh", "-c", "exit 0"]
      runAs: `+me(t)+`
`)
	svcs, err := LoadFiles(file)
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	h := svcs[0].Spec.Hooks
	if got := h.ValidateService.Timeout.Duration; got != 2*time.Minute {
		t.Errorf("validateService.timeout = %v, want 2m", got)
	}
	if got := h.BeforeAllowTraffic.Timeout.Duration; got != DefaultHookTimeout {
		t.Errorf("beforeAllowTraffic.timeout = %v, want the default %v", got, DefaultHookTimeout)
	}
	argv := h.ValidateService.Argv(svcs[0].Dir())
	if want := filepath.Join(filepath.Dir(file), "check.sh"); argv[0] != want || argv[1] != "--quick" {
		t.Errorf("Argv = %q, want [%q --quick]", argv, want)
	}
	if got := h.BeforeAllowTraffic.Argv(svcs[0].Dir())[0]; got != "true" {
		t.Errorf("a bare name resolved to %q, want it left for PATH", got)
	}
}

// me is the current user's name: a runAs that needs no root.
func me(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Skip("no current user:", err)
	}
	return u.Username
}

func TestHooksInvalid(t *testing.T) {
	tests := []struct {
		name  string
		hooks string
		path  string
		want  string
	}{
		{"unknown name", "    validateServce:\n      command: [\"true\"]\n", "spec.hooks.validateServce", `did you mean "validateService"?`},
		{"unknown name far off", "    onDeploy:\n      command: [\"true\"]\n", "spec.hooks.onDeploy", "valid fields here are afterAllowTraffic, afterInstall, afterPromotion"},
		{"no command", "    validateService:\n      timeout: 1m\n", "spec.hooks.validateService.command", "is required"},
		{"empty program", "    validateService:\n      command: [\"\"]\n", "spec.hooks.validateService.command[0]", "must name the program"},
		{"command a string", "    validateService:\n      command: ./check.sh\n", "spec.hooks.validateService.command", "must be a list"},
		{"missing file", "    validateService:\n      command: [\"./nope.sh\"]\n", "spec.hooks.validateService.command[0]", "does not exist"},
		{"not executable", "    validateService:\n      command: [\"./notes.txt\"]\n", "spec.hooks.validateService.command[0]", "chmod +x"},
		{"not on PATH", "    validateService:\n      command: [\"no-such-program-here\"]\n", "spec.hooks.validateService.command[0]", "must be a program on PATH"},
		{"timeout too long", "    validateService:\n      command: [\"true\"]\n      timeout: 48h\n", "spec.hooks.validateService.timeout", "must be 1s to 24h"},
		{"unknown user", "    validateService:\n      command: [\"true\"]\n      runAs: no-such-user-x\n", "spec.hooks.validateService.runAs", "must be a user that exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFiles(writeService(t, tt.hooks))
			if err == nil {
				t.Fatal("LoadFiles succeeded, want an error")
			}
			var found bool
			for _, fe := range FieldErrors(err) {
				if fe.Path == tt.path && strings.Contains(fe.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("error does not name %s with %q:\n%v", tt.path, tt.want, err)
			}
		})
	}
}
