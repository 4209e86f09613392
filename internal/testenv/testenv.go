// Package testenv holds helpers for Switchyard's integration tests: finding
// the real binaries they need (nginx, HAProxy, wrk), free loopback ports,
// polling for a condition with a deadline, running real nginx and HAProxy
// instances on loopback and building the switchyard binary once per test
// binary.
//
// Integration tests skip when a binary is missing on a developer's machine and
// fail when CI=true, so that a green CI run really ran them.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// CI reports whether the tests run under CI (the environment variable CI is
// "true" or "1"). Under CI, missing binaries fail instead of skipping and
// integration tests run even with -short.
func CI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// installHints tells how to get each binary on Debian; scripts/test.sh
// installs all of them.
var installHints = map[string]string{
	"nginx":      "apt-get install nginx",
	"haproxy":    "apt-get install haproxy",
	"wrk":        "apt-get install wrk",
	"hey":        "apt-get install hey",
	"prometheus": "apt-get install prometheus",
	"curl":       "apt-get install curl",
	"ip":         "apt-get install iproute2",
	"kubectl":    "apt-get install kubernetes-client",
}

// sbinDirs are searched after PATH because a non-root user's PATH on Debian
// usually lacks them while nginx and haproxy live there.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// LookBinary finds name in PATH or the sbin directories and returns its
// absolute path, or "" when it is not installed.
func LookBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
		return p
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// RequireBinary returns the absolute path of the binary name. When it is
// missing, the test fails under CI (with how to install it) and is skipped
// otherwise.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	if p := LookBinary(name); p != "" {
		return p
	}
	hint := installHints[name]
	if hint == "" {
		hint = "install it"
	}
	msg := fmt.Sprintf("%s not found in PATH or %v; %s (or run scripts/test.sh, which installs what the tests need)", name, sbinDirs, hint)
	if CI() {
		t.Fatalf("CI=true: %s", msg)
	}
	t.Skip(msg)
	return ""
}

// Integration marks a test as an integration test: it is skipped under
// -short unless CI=true.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() && !CI() {
		t.Skip("integration test skipped in -short mode (set CI=true to run it)")
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before returning, so a listener of another process can
// bind it; there is a small window in which someone else may take it.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("release free port %d: %v", port, err)
	}
	return port
}

// FreeAddr returns "127.0.0.1:PORT" for a port from FreePort.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 10 * time.Millisecond

// WaitFor polls cond until it returns true, failing the test with msg when
// timeout passes first. Use it instead of sleeping to synchronise.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, msg)
	}
}

// Poll evaluates cond every few milliseconds until it returns true (Poll
// returns true) or timeout passes (Poll returns false). The condition is
// always evaluated at least once, and once more at the deadline.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return cond()
		}
		<-tick.C
	}
}

// Accepts reports whether a TCP connection to addr can be opened now.
func Accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// runtimeGOROOT returns GOROOT from the environment or the default install
// location, for finding go when it is not in PATH.
func runtimeGOROOT() string {
	if r := os.Getenv("GOROOT"); r != "" {
		return r
	}
	return "/usr/local/go"
}
