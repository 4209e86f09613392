package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/testenv"
)

// TestSIGHUPReload rewrites the service file and sends SIGHUP: a broken file
// changes nothing, a good one takes effect.
func TestSIGHUPReload(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	config := serviceConfig("web", map[string][]string{"blue": {blue.addr}, "green": {green.addr}}, "blue", "")
	d := newDaemon(t, config)
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })
	good, _ := os.ReadFile(d.file)

	os.WriteFile(d.file, []byte(strings.Replace(string(good), "stable: blue", "stable: [blue", 1)), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(d.out.String(), "reload failed") }, "the broken reload to be reported")
	if got := d.get(20); got["blue"] != 20 {
		t.Fatalf("after a broken reload: %v, want all 20 from blue", got)
	}

	// A good reload adds a header rule that reaches the canary.
	os.WriteFile(d.file, append(good, []byte(`  routing:
    rules:
      - header: {name: x-canary, value: "true"}
        to: canary
  strategy:
    canary:
      steps: [{setWeight: 0}, {pause: {}}]
`)...), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(d.out.String(), "configuration reloaded") }, "the good reload")
	d.mustRun(0, "deploy", "web", "--version", "green")
	d.waitStatus("web", 10*time.Second, "green healthy in its rollout", func(st admin.ServiceStatus) bool {
		return st.CanaryVersion == "green" && st.Step.Kind == "Pause"
	})
	if got := d.get(20, "x-canary", "true"); got["green"] != 20 {
		t.Fatalf("x-canary after the reload: %v, want all 20 from green", got)
	}
	if got := d.get(20); got["blue"] != 20 {
		t.Fatalf("without the header at 0%%: %v, want all 20 from blue", got)
	}
}

// TestSIGTERMFinishesInFlight sends SIGTERM while a slow request is in
// flight: it completes, and serve exits 0.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			time.Sleep(time.Second) // the request the shutdown must wait for
		}
		io.WriteString(w, "blue")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	d := newDaemon(t, serviceConfig("web", map[string][]string{"blue": {ln.Addr().String()}}, "blue", ""))
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 1 })

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := client.Get("http://" + d.listen + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	<-started
	cmd, exited := d.cmd, d.exited
	cmd.Process.Signal(syscall.SIGTERM)
	r := <-res
	if r.err != nil || r.status != http.StatusOK || r.body != "blue" {
		t.Fatalf("in-flight request during SIGTERM: %d %q %v, want 200 blue", r.status, r.body, r.err)
	}
	<-exited
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0:\n%s", code, d.out)
	}
	d.cmd = nil
}

// TestCorruptStoreRefused starts serve over a garbage state.db: it refuses
// to start, names the file, and leaves the file as it was.
func TestCorruptStoreRefused(t *testing.T) {
	blue := startBackend(t, "blue")
	d := newDaemon(t, serviceConfig("web", map[string][]string{"blue": {blue.addr}}, "blue", ""))
	os.MkdirAll(d.stateDir, 0o700)
	db := filepath.Join(d.stateDir, "state.db")
	garbage := []byte(strings.Repeat("not a bbolt file ", 1000))
	os.WriteFile(db, garbage, 0o600)
	out, err := exec.Command(d.bin, "serve", "-f", d.file, "--state-dir", d.stateDir, "--admin", "127.0.0.1:0").CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("serve over a corrupt store: exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(string(out), "state.db") {
		t.Fatalf("error does not name the store file:\n%s", out)
	}
	if after, _ := os.ReadFile(db); string(after) != string(garbage) {
		t.Fatal("the corrupt store was modified")
	}
}

// TestMetricsAndEvents checks /metrics names and that the SSE stream
// carries a rollout's events.
func TestMetricsAndEvents(t *testing.T) {
	blue, green := startBackend(t, "blue"), startBackend(t, "green")
	d := newDaemon(t, serviceConfig("web", map[string][]string{"blue": {blue.addr}, "green": {green.addr}}, "blue", ""))
	d.start()
	d.waitStatus("web", 10*time.Second, "both healthy", func(st admin.ServiceStatus) bool {
		return healthy(st, "blue") == 1 && healthy(st, "green") == 1
	})
	url, token, err := admin.Discover(d.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/api/v1/events?service=web", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	stream, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if first := <-lines; first != ": subscribed" {
		t.Fatalf("first line of the event stream = %q, want \": subscribed\"", first)
	}
	d.get(10)
	d.mustRun(0, "deploy", "web", "--version", "green", "--strategy", "blue-green", "--wait", "--timeout", "1m")
	var kinds []string
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("event stream ended; got %v", kinds)
			}
			if kind, found := strings.CutPrefix(line, "event: "); found {
				kinds = append(kinds, kind)
				done = kind == "finished"
			}
		case <-timeout:
			t.Fatalf("no finished event on the stream; got %v", kinds)
		}
	}
	if kinds[0] != "deploy" {
		t.Errorf("first event %q, want deploy (all: %v)", kinds[0], kinds)
	}

	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`switchyard_requests_total{code="200",service="web",version="blue"}`,
		`switchyard_request_duration_seconds_bucket{service="web",version="blue"`,
		`switchyard_target_up{service="web",target="` + green.addr + `",version="green"} 1`,
		`switchyard_traffic_weight{service="web",version="green"} 100`,
		`switchyard_rollouts_total{result="promoted",service="web"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", b)
	}
}
