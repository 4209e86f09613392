package testenv

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFreeAddrIsBindable(t *testing.T) {
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr() = %q, want 127.0.0.1:PORT", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr() %s: %v", addr, err)
	}
	defer ln.Close()
	if !Accepts(addr) {
		t.Fatalf("Accepts(%s) = false with a listener open", addr)
	}
}

func TestPoll(t *testing.T) {
	tests := []struct {
		name      string
		trueAfter int // cond returns true from this call on; 0 never
		timeout   time.Duration
		want      bool
	}{
		{"true at once", 1, time.Second, true},
		{"true after a few polls", 5, 5 * time.Second, true},
		{"never true", 0, 50 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got := Poll(tt.timeout, func() bool {
				calls++
				return tt.trueAfter > 0 && calls >= tt.trueAfter
			})
			if got != tt.want {
				t.Fatalf("Poll() = %v after %d calls, want %v", got, calls, tt.want)
			}
			if tt.trueAfter > 0 && calls != tt.trueAfter {
				t.Fatalf("Poll() called cond %d times, want %d", calls, tt.trueAfter)
			}
		})
	}
}

func TestRender(t *testing.T) {
	data := confData{Addr: "127.0.0.1:8080", Port: 8080, Dir: "/tmp/x"}
	tests := []struct {
		name    string
		conf    string
		want    string
		wantErr bool
	}{
		{"all fields", "listen {{.Addr}}; port {{.Port}}; root {{.Dir}};", "listen 127.0.0.1:8080; port 8080; root /tmp/x;", false},
		{"nginx variables untouched", "proxy_set_header Host $host;", "proxy_set_header Host $host;", false},
		{"unknown field", "{{.Nope}}", "", true},
		{"bad template", "{{.Addr", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := render(tt.conf, data)
			if (err != nil) != tt.wantErr {
				t.Fatalf("render(%q) error = %v, wantErr %v", tt.conf, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("render(%q) = %q, want %q", tt.conf, got, tt.want)
			}
		})
	}
}

func TestRequireBinaryFindsGo(t *testing.T) {
	p := RequireBinary(t, "go")
	if !filepath.IsAbs(p) {
		t.Fatalf("RequireBinary(go) = %q, want an absolute path", p)
	}
}

func TestLookBinaryMissing(t *testing.T) {
	if p := LookBinary("switchyard-no-such-binary"); p != "" {
		t.Fatalf("LookBinary(missing) = %q, want \"\"", p)
	}
}

// countingBackend is an httptest server that counts requests and answers
// with a body naming itself.
func countingBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprintf(w, "backend %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// getN makes n keep-alive GET requests to http://addr/path and checks each
// answer.
func getN(t *testing.T, addr string, n int) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for i := range n {
		path := fmt.Sprintf("/req/%d", i)
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: read body: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK || string(body) != "backend "+path {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, resp.StatusCode, body, "backend "+path)
		}
	}
}

func TestStartNginxProxies(t *testing.T) {
	Integration(t)
	t.Parallel()
	backend, hits := countingBackend(t)
	ngx := StartNginx(t, `
    upstream backend {
        server `+backend.Listener.Addr().String()+`;
        keepalive 16;
    }
    server {
        listen {{.Addr}};
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }`)
	getN(t, ngx.Addr, 100)
	if got := hits.Load(); got != 100 {
		t.Fatalf("backend saw %d requests through nginx, want 100", got)
	}
}

func TestNginxTestAndReload(t *testing.T) {
	Integration(t)
	t.Parallel()
	first, firstHits := countingBackend(t)
	second, secondHits := countingBackend(t)
	inc := filepath.Join(t.TempDir(), "upstream.conf")
	writeUpstream := func(content string) {
		t.Helper()
		if err := os.WriteFile(inc, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	upstream := func(srv *httptest.Server) string {
		return "upstream backend { server " + srv.Listener.Addr().String() + "; }\n"
	}
	writeUpstream(upstream(first))
	ngx := StartNginx(t, `
    include `+inc+`;
    server {
        listen {{.Addr}};
        location / { proxy_pass http://backend; }
    }`)
	getN(t, ngx.Addr, 10)
	if got := firstHits.Load(); got != 10 {
		t.Fatalf("first backend saw %d requests, want 10", got)
	}

	// A broken include is refused by nginx -t and the old config keeps serving.
	writeUpstream("upstream backend { server ; }\n")
	if err := ngx.Test(); err == nil {
		t.Fatalf("nginx -t accepted a broken upstream file")
	}
	getN(t, ngx.Addr, 10)

	writeUpstream(upstream(second))
	if err := ngx.Test(); err != nil {
		t.Fatalf("nginx -t on a valid upstream file: %v", err)
	}
	if err := ngx.Reload(); err != nil {
		t.Fatalf("Reload() error = %v\n%s", err, ngx.Output())
	}
	// The reload is asynchronous: new workers take over shortly.
	WaitFor(t, 10*time.Second, func() bool {
		getN(t, ngx.Addr, 1)
		return secondHits.Load() > 0
	}, "requests to reach the second backend after reload")
	if ngx.Exited() {
		t.Fatalf("nginx exited after reload:\n%s", ngx.Output())
	}
}

func TestStartHAProxyProxies(t *testing.T) {
	Integration(t)
	t.Parallel()
	backend, hits := countingBackend(t)
	hap := StartHAProxy(t, `
frontend web
    bind {{.Addr}}
    default_backend app

backend app
    http-reuse always
    server s1 `+backend.Listener.Addr().String()+`
`)
	getN(t, hap.Addr, 100)
	if got := hits.Load(); got != 100 {
		t.Fatalf("backend saw %d requests through haproxy, want 100", got)
	}
}

func TestBuildSwitchyard(t *testing.T) {
	Integration(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("ModuleRoot() error = %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "cmd", "switchyard", "*.go")); len(m) == 0 {
		t.Skip("cmd/switchyard has no Go files yet")
	}
	bin := BuildSwitchyard(t)
	if again := BuildSwitchyard(t); again != bin {
		t.Fatalf("second BuildSwitchyard() = %q, want the cached %q", again, bin)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --help: %v\n%s", bin, err, out)
	}
}

func TestStartPrometheusScrapes(t *testing.T) {
	Integration(t)
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, "# TYPE testenv_answer gauge\ntestenv_answer 42\n")
	}))
	defer target.Close()
	prom := StartPrometheus(t, 200*time.Millisecond, target.Listener.Addr().String())
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	ok := Poll(20*time.Second, func() bool {
		resp, err := client.Get(prom.URL() + "/api/v1/query?query=testenv_answer")
		if err != nil {
			last = err.Error()
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		last = string(b)
		return strings.Contains(last, `"42"`)
	})
	if !ok {
		t.Fatalf("prometheus never returned testenv_answer 42; last answer: %s\n%s", last, prom.Output())
	}
}
