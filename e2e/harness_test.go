// Package e2e drives the real switchyard binary as a user would: service
// files, `switchyard serve` as a separate process, the CLI for every
// command, and real HTTP traffic on loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/testenv"
)

// backend is a toy app instance that names its version in every answer.
type backend struct {
	version string
	addr    string
	srv     *http.Server
}

func startBackend(t *testing.T, version string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, version) })
	b := &backend{version: version, addr: ln.Addr().String(), srv: &http.Server{Handler: mux}}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// daemon is a `switchyard serve` process and the files it uses.
type daemon struct {
	t        *testing.T
	bin      string
	file     string
	stateDir string
	listen   string
	cmd      *exec.Cmd
	out      *lockedBuffer
	exited   chan struct{}
	// args are more flags for serve (e.g. --egress-allow).
	args []string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newDaemon writes config (with %LISTEN% replaced by a free address) and
// prepares, without starting, a daemon for it.
func newDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	testenv.Integration(t)
	bin := testenv.BuildSwitchyard(t)
	dir := t.TempDir()
	listen := testenv.FreeAddr(t)
	file := filepath.Join(dir, "service.yaml")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(config, "%LISTEN%", listen)), 0o600); err != nil {
		t.Fatal(err)
	}
	return &daemon{t: t, bin: bin, file: file, stateDir: filepath.Join(dir, "state"), listen: listen}
}

// start runs `switchyard serve` and waits until the admin API answers.
func (d *daemon) start() {
	d.t.Helper()
	d.out = &lockedBuffer{}
	d.cmd = exec.Command(d.bin, append([]string{"serve", "-f", d.file, "--state-dir", d.stateDir, "--admin", "127.0.0.1:0", "--log-level", "debug"}, d.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.exited = make(chan struct{})
	cmd, exited := d.cmd, d.exited
	go func() { cmd.Wait(); close(exited) }()
	out := d.out
	d.t.Cleanup(func() {
		d.kill(syscall.SIGTERM)
		if d.t.Failed() {
			d.t.Logf("switchyard serve output:\n%s", tail(out.String(), 80))
		}
	})
	ok := testenv.Poll(20*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		_, _, err := d.run("status", "-o", "json")
		return err == nil
	})
	select {
	case <-exited:
		d.t.Fatalf("switchyard serve exited at start:\n%s", d.out)
	default:
	}
	if !ok {
		d.t.Fatalf("switchyard serve did not answer in 20s:\n%s", d.out)
	}
}

// kill signals the daemon and waits for it to exit.
func (d *daemon) kill(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// run runs a CLI command against the daemon: stdout, stderr, error (an
// *exec.ExitError carries the exit code).
func (d *daemon) run(args ...string) (string, string, error) {
	args = append(args, "--state-dir", d.stateDir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "SWITCHYARD_SERVER=", "SWITCHYARD_TOKEN=")
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// mustRun runs a CLI command and fails the test unless it exits wantCode.
func (d *daemon) mustRun(wantCode int, args ...string) string {
	d.t.Helper()
	out, errOut, err := d.run(args...)
	if code := exitCode(err); code != wantCode {
		d.t.Fatalf("switchyard %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s\ndaemon:\n%s", strings.Join(args, " "), code, wantCode, out, errOut, tail(d.out.String(), 40))
	}
	return out + errOut
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// status reads `switchyard status SERVICE -o json`.
func (d *daemon) status(service string) admin.ServiceStatus {
	d.t.Helper()
	out := d.mustRun(0, "status", service, "-o", "json")
	var st admin.ServiceStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return st
}

// waitStatus waits until cond holds for the service's status.
func (d *daemon) waitStatus(service string, timeout time.Duration, what string, cond func(admin.ServiceStatus) bool) admin.ServiceStatus {
	d.t.Helper()
	var last admin.ServiceStatus
	if !testenv.Poll(timeout, func() bool {
		last = d.status(service)
		return cond(last)
	}) {
		b, _ := json.MarshalIndent(last, "", "  ")
		d.t.Fatalf("waiting for %s: last status:\n%s\ndaemon:\n%s", what, b, tail(d.out.String(), 40))
	}
	return last
}

// client is a keep-alive HTTP client for traffic through the proxy.
var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get sends n GETs to the service and counts answers by version.
func (d *daemon) get(n int, header ...string) map[string]int {
	d.t.Helper()
	counts := map[string]int{}
	for range n {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.listen+"/", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			d.t.Fatalf("GET through the proxy: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			d.t.Fatalf("GET through the proxy: %s: %s", resp.Status, b)
		}
		counts[string(b)]++
	}
	return counts
}

func serviceConfig(name string, versions map[string][]string, stable, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: %s
spec:
  listen: "%%LISTEN%%"
  stable: %s
  healthCheck: {path: /health, interval: 200ms, timeout: 150ms, healthyThreshold: 1, unhealthyThreshold: 1}
  versions:
`, name, stable)
	for _, v := range []string{"blue", "green", "red"} {
		if targets, ok := versions[v]; ok {
			fmt.Fprintf(&b, "    - name: %s\n      targets: [%s]\n", v, quoteAll(targets))
		}
	}
	b.WriteString(extra)
	return b.String()
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
