package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/daemon"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// TestServeRefusesExposedAdmin: a wildcard --admin without TLS or
// --admin-insecure-remote stops serve before anything is opened or bound
// (the state directory is not even created).
func TestServeRefusesExposedAdmin(t *testing.T) {
	file := filepath.Join(t.TempDir(), "web.yaml")
	doc := strings.NewReplacer("LISTEN", "127.0.0.1:0", "BLUE", "127.0.0.1:9001", "GREEN", "127.0.0.1:9002").Replace(cliService)
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		t.Run(addr, func(t *testing.T) {
			stateDir := filepath.Join(t.TempDir(), "state")
			code, _, errOut := run(t, "--state-dir", stateDir, "serve", "-f", file, "--admin", addr)
			if code != ExitUsage {
				t.Errorf("serve --admin %s = exit %d, want %d", addr, code, ExitUsage)
			}
			for _, want := range []string{"--admin " + addr, "--admin-tls-cert", "--admin-insecure-remote"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("serve --admin %s said %q, want %q in it", addr, errOut, want)
				}
			}
			if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
				t.Errorf("state dir after the refusal: %v, want it not created", err)
			}
		})
	}
}

func TestWarnLoosePermissions(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sticky.key"), make([]byte, 32), 0o640); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	warnLoosePermissions(slog.New(slog.NewTextHandler(&buf, nil)), dir)
	out := buf.String()
	for _, want := range []string{
		"level=WARN", "path=" + dir, "mode=0755", `fix="chmod 700 ` + dir + `"`,
		"mode=0640", `fix="chmod 600 ` + filepath.Join(dir, "sticky.key") + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("warnings %q do not contain %q", out, want)
		}
	}
	if strings.Contains(out, "state.db") {
		t.Errorf("warned about a state.db that does not exist: %q", out)
	}
	buf.Reset()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "sticky.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	warnLoosePermissions(slog.New(slog.NewTextHandler(&buf, nil)), dir)
	if buf.Len() != 0 {
		t.Errorf("warnings for a private state dir: %q", buf.String())
	}
}

// TestClientOverTLS runs a daemon whose admin API is HTTPS on loopback
// with a self-signed certificate; the CLI finds it through the endpoint
// file and connects with --ca-cert or SWITCHYARD_CA_CERT.
func TestClientOverTLS(t *testing.T) {
	cert := writeTestCert(t)
	doc := strings.NewReplacer("LISTEN", testenv.FreeAddr(t), "BLUE", backend(t, "blue"), "GREEN", backend(t, "green")).Replace(cliService)
	svcs, err := spec.Parse("cli.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	d, err := daemon.New(daemon.Options{
		Services: svcs, StateDir: stateDir, Admin: "127.0.0.1:0", Tick: 50 * time.Millisecond,
		AdminTLSCert: cert.cert, AdminTLSKey: cert.key,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitFor(t, 10*time.Second, func() bool { return d.AdminURL() != "" }, "the admin API")
	endpoint, err := os.ReadFile(filepath.Join(stateDir, admin.EndpointFile))
	if err != nil || !strings.HasPrefix(string(endpoint), "https://127.0.0.1:") {
		t.Fatalf("endpoint file = %q, %v; want the https URL", endpoint, err)
	}

	if code, out, errOut := run(t, "--state-dir", stateDir, "--ca-cert", cert.cert, "status", "web", "-o", "json"); code != ExitOK || !strings.Contains(out, `"stableVersion": "blue"`) {
		t.Errorf("status --ca-cert = exit %d, %s%s; want 0 and the status", code, out, errOut)
	}
	if code, _, errOut := run(t, "--state-dir", stateDir, "status", "web"); code != ExitFailed || !strings.Contains(errOut, "--ca-cert") {
		t.Errorf("status without the CA = exit %d, %q; want %d naming --ca-cert", code, errOut, ExitFailed)
	}
	t.Run("from the environment", func(t *testing.T) {
		t.Setenv(admin.EnvCACert, cert.cert)
		if code, _, errOut := run(t, "--state-dir", stateDir, "status", "web"); code != ExitOK {
			t.Errorf("status with %s = exit %d, %q; want 0", admin.EnvCACert, code, errOut)
		}
	})
	if code, _, errOut := run(t, "--server", "http://127.0.0.1:1", "--token", d.Token(), "--ca-cert", cert.cert, "status"); code != ExitUsage || !strings.Contains(errOut, "https://") {
		t.Errorf("--ca-cert with an http server = exit %d, %q; want %d", code, errOut, ExitUsage)
	}
	if code, _, errOut := run(t, "--state-dir", stateDir, "--ca-cert", filepath.Join(stateDir, admin.TokenFile), "status"); code != ExitUsage || !strings.Contains(errOut, "no PEM certificate") {
		t.Errorf("--ca-cert with the token file = exit %d, %q; want %d", code, errOut, ExitUsage)
	}
}

type testCert struct{ cert, key string }

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeTestCert(t *testing.T) testCert {
	cert, key := testenv.WriteCert(t)
	return testCert{cert, key}
}
