package admin

import (
	"github.com/switchyard/switchyard/internal/testenv"

	"bytes"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func writeCert(t *testing.T) (certFile, keyFile string) { return testenv.WriteCert(t) }

// TestListenConfigCheck classifies addresses without binding: the
// non-loopback ones are only checked, never listened on.
func TestListenConfigCheck(t *testing.T) {
	cert, key := writeCert(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     ListenConfig
		want    Exposure
		wantErr []string // substrings; nil means no error
	}{
		{"loopback v4", ListenConfig{Addr: "127.0.0.1:0"}, Exposure{}, nil},
		{"loopback v4 range", ListenConfig{Addr: "127.1.2.3:0"}, Exposure{}, nil},
		{"loopback v6", ListenConfig{Addr: "[::1]:0"}, Exposure{}, nil},
		{"localhost", ListenConfig{Addr: "localhost:0"}, Exposure{}, nil},
		{"every v4 interface", ListenConfig{Addr: "0.0.0.0:0"}, Exposure{},
			[]string{"--admin 0.0.0.0:0", "other hosts", "--admin-tls-cert", "--admin-insecure-remote", "127.0.0.1"}},
		{"every interface", ListenConfig{Addr: ":0"}, Exposure{}, []string{"--admin :0", "--admin-tls-cert"}},
		{"every v6 interface", ListenConfig{Addr: "[::]:0"}, Exposure{}, []string{"--admin [::]:0", "--admin-tls-cert"}},
		{"a host's address", ListenConfig{Addr: "192.0.2.10:9901"}, Exposure{}, []string{"--admin 192.0.2.10:9901"}},
		{"a host name", ListenConfig{Addr: "admin.example.com:9901"}, Exposure{}, []string{"admin.example.com:9901"}},
		{"insecure remote", ListenConfig{Addr: "0.0.0.0:0", InsecureRemote: true},
			Exposure{Remote: true, MetricsNeedToken: true}, nil},
		{"insecure remote, open metrics", ListenConfig{Addr: ":0", InsecureRemote: true, OpenMetrics: true},
			Exposure{Remote: true}, nil},
		{"tls remote", ListenConfig{Addr: "[::]:0", CertFile: cert, KeyFile: key},
			Exposure{Remote: true, TLS: true, MetricsNeedToken: true}, nil},
		{"tls loopback", ListenConfig{Addr: "https://127.0.0.1:0", CertFile: cert, KeyFile: key}, Exposure{TLS: true}, nil},
		{"open metrics on loopback changes nothing", ListenConfig{Addr: "127.0.0.1:0", OpenMetrics: true}, Exposure{}, nil},
		{"cert without key", ListenConfig{Addr: "127.0.0.1:0", CertFile: cert}, Exposure{},
			[]string{"--admin-tls-cert and --admin-tls-key go together"}},
		{"key without cert", ListenConfig{Addr: "127.0.0.1:0", KeyFile: key}, Exposure{},
			[]string{"--admin-tls-cert and --admin-tls-key go together"}},
		{"https without cert", ListenConfig{Addr: "https://0.0.0.0:0"}, Exposure{}, []string{"asks for https", "--admin-tls-cert FILE"}},
		{"http with cert", ListenConfig{Addr: "http://127.0.0.1:0", CertFile: cert, KeyFile: key}, Exposure{},
			[]string{"plain http", "https://"}},
		{"tls and insecure", ListenConfig{Addr: ":0", CertFile: cert, KeyFile: key, InsecureRemote: true}, Exposure{},
			[]string{"pass one of them"}},
		{"unreadable cert", ListenConfig{Addr: ":0", CertFile: notPEM, KeyFile: key}, Exposure{},
			[]string{"--admin-tls-cert " + notPEM, "PEM"}},
		{"not host:port", ListenConfig{Addr: "9901"}, Exposure{}, []string{`--admin "9901" is not HOST:PORT`}},
		{"other scheme", ListenConfig{Addr: "ftp://127.0.0.1:1"}, Exposure{}, []string{`scheme "ftp"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.Check()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Check(%+v) = %v, want no error", tt.cfg, err)
				}
				if got != tt.want {
					t.Errorf("Check(%+v) = %+v, want %+v", tt.cfg, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%+v) accepted it, want an error", tt.cfg)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Check(%+v) = %q, want it to contain %q", tt.cfg, err, want)
				}
			}
		})
	}
	// The refusal comes before binding: Listen refuses the same way.
	if _, err := Listen(ListenConfig{Addr: "0.0.0.0:0"}); !errors.Is(err, ErrExposed) {
		t.Errorf("Listen(0.0.0.0:0) = %v, want ErrExposed", err)
	}
}

// TestTLSAdmin serves the API over HTTPS on loopback and talks to it with
// the client, trusting the self-signed certificate through LoadCACert.
func TestTLSAdmin(t *testing.T) {
	cert, key := writeCert(t)
	ln, err := Listen(ListenConfig{Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ln.URL, "https://127.0.0.1:") {
		t.Errorf("URL = %q, want https://127.0.0.1:PORT", ln.URL)
	}
	// Handshake failures below are on purpose; keep them out of the output.
	quiet := log.New(io.Discard, "", 0)
	srv := &http.Server{Handler: NewServer(newFake(), ServerOptions{Token: testToken}).Handler(), ErrorLog: quiet}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})

	// The URL goes into the endpoint file, and a local CLI finds it there.
	dir := t.TempDir()
	if err := WriteEndpoint(dir, ln.URL); err != nil {
		t.Fatal(err)
	}
	url, _, err := ResolveEndpoint("", testToken, dir)
	if err != nil || url != ln.URL {
		t.Fatalf("ResolveEndpoint = %q, %v; want %q from the endpoint file", url, err, ln.URL)
	}

	pool, err := LoadCACert(cert)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(url, testToken, WithRootCAs(pool))
	svcs, err := c.Services(t.Context())
	if err != nil {
		t.Fatalf("Services over https = %v", err)
	}
	if len(svcs) == 0 {
		t.Error("Services over https returned nothing")
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		_, err := NewClient(url, testToken).Services(t.Context())
		if err == nil || !strings.Contains(err.Error(), "--ca-cert") || !strings.Contains(err.Error(), EnvCACert) {
			t.Errorf("Services without the CA = %v, want an error naming --ca-cert and %s", err, EnvCACert)
		}
	})
	t.Run("plain http to the https server", func(t *testing.T) {
		_, err := NewClient(strings.Replace(url, "https://", "http://", 1), testToken).Services(t.Context())
		if err == nil {
			t.Error("plain HTTP to the TLS listener succeeded")
		}
	})
	t.Run("https to a plain server", func(t *testing.T) {
		plain, err := Listen(ListenConfig{Addr: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		psrv := &http.Server{Handler: NewServer(newFake(), ServerOptions{Token: testToken}).Handler(), ErrorLog: quiet}
		pdone := make(chan error, 1)
		go func() { pdone <- psrv.Serve(plain) }()
		defer func() {
			psrv.Close()
			<-pdone
		}()
		_, err = NewClient(strings.Replace(plain.URL, "http://", "https://", 1), testToken, WithRootCAs(pool)).Services(t.Context())
		if err == nil || !strings.Contains(err.Error(), "does not speak TLS") {
			t.Errorf("https to a plain listener = %v, want an error saying it does not speak TLS", err)
		}
	})
	t.Run("not a certificate", func(t *testing.T) {
		if _, err := LoadCACert(key); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("LoadCACert(key file) = %v, want an error naming the file", err)
		}
	})
}

func TestMetricsNeedToken(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_total", Help: "A test counter."}))
	srv := newTestServer(t, newFake(), ServerOptions{Gatherer: reg, MetricsNeedToken: true})
	tests := []struct {
		path, auth string
		status     int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized},
		{"/metrics", "Bearer " + testToken, http.StatusOK},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusOK},
		{"/api/v1/services", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		resp, body := do(t, srv, reqSpec{method: "GET", path: tt.path, header: map[string]string{"Authorization": tt.auth}})
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s with %q = %d %s, want %d", tt.path, tt.auth, resp.StatusCode, body, tt.status)
		}
	}
}

func TestAnnounce(t *testing.T) {
	tests := []struct {
		name  string
		exp   Exposure
		level string
		want  []string
	}{
		{"loopback", Exposure{}, "INFO", []string{"loopback", "/healthz /readyz /metrics"}},
		{"tls", Exposure{Remote: true, TLS: true, MetricsNeedToken: true}, "INFO", []string{"over TLS", `"open without token"="/healthz /readyz"`}},
		{"insecure", Exposure{Remote: true, MetricsNeedToken: true}, "WARN", []string{"plain HTTP", "unencrypted", `"open without token"="/healthz /readyz"`}},
		{"insecure, open metrics", Exposure{Remote: true}, "WARN", []string{"/healthz /readyz /metrics", "/metrics is open to other hosts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var buf bytes.Buffer
			(&Listener{Listener: ln, URL: "http://" + ln.Addr().String(), Exposure: tt.exp}).Announce(slog.New(slog.NewTextHandler(&buf, nil)))
			out := buf.String()
			if !strings.Contains(out, "level="+tt.level) || !strings.Contains(out, ln.Addr().String()) {
				t.Errorf("Announce logged %q, want a %s line naming %s", out, tt.level, ln.Addr())
			}
			for _, want := range tt.want {
				if !strings.Contains(out, want) {
					t.Errorf("Announce logged %q, want %q", out, want)
				}
			}
		})
	}
}
