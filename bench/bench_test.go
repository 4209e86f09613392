package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testenv"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{3}, 3},
		{"odd unsorted", []float64{9, 1, 5}, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Median(tt.in); got != tt.want {
				t.Fatalf("Median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t1\n"
	got, err := parseVmRSS(strings.NewReader(status))
	if err != nil || got != 12345 {
		t.Fatalf("parseVmRSS() = %d, %v; want 12345, nil", got, err)
	}
	if _, err := parseVmRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Fatalf("parseVmRSS() without VmRSS: want an error")
	}
}

func TestSwitchyardConf(t *testing.T) {
	got, err := SwitchyardConf("switchyard.yaml", "127.0.0.1:1111", "127.0.0.1:2222")
	if err != nil {
		t.Fatalf("SwitchyardConf() error = %v", err)
	}
	if !strings.Contains(got, "listen: 127.0.0.1:1111") || !strings.Contains(got, `targets: ["127.0.0.1:2222"]`) {
		t.Fatalf("SwitchyardConf() did not put in the addresses:\n%s", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("spec: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := SwitchyardConf(bad, "a", "b"); err == nil {
		t.Fatalf("SwitchyardConf() on a file without placeholders: want an error")
	}
}

func TestReportRatios(t *testing.T) {
	r := NewReport([]string{LegDirect, LegNginx, LegHAProxy, LegSwitchyard}, []int{50})
	add := func(leg string, rps float64, p99 time.Duration) {
		r.Cells[leg][50].Runs = append(r.Cells[leg][50].Runs, Result{RPS: rps, P99: p99})
	}
	add(LegDirect, 40000, time.Millisecond)
	add(LegNginx, 20000, 2*time.Millisecond)
	add(LegNginx, 30000, 4*time.Millisecond)
	add(LegNginx, 10000, 3*time.Millisecond)
	add(LegHAProxy, 32000, 2*time.Millisecond)
	add(LegSwitchyard, 16000, 6*time.Millisecond)
	r.RSS[LegNginx] = RSS{IdleKB: 2048, LoadedKB: 4096, Conns: 1000}
	r.RSSConn = 1000
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| 50 | nginx | 20000 | 3.00 ms | 0 | 3 |",
		// switchyard/nginx 16000/20000, 6ms/3ms; /haproxy 0.5, 3; /direct 0.4.
		"| 50 | 0.80 | 2.00 | 0.50 | 3.00 | 0.40 |",
		"| nginx | 2.0 MiB | 4.0 MiB | 1000 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestHoldConns(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	held, release, err := HoldConns(context.Background(), srv.Listener.Addr().String(), 20)
	defer release()
	if err != nil || held != 20 {
		t.Fatalf("HoldConns() = %d, %v; want 20, nil", held, err)
	}
}

// TestParseRealWrk runs the installed wrk for one second against a local
// server, as bench/run.sh --smoke does, and parses its output: it catches
// a wrk whose output format the parser no longer understands.
func TestParseRealWrk(t *testing.T) {
	testenv.Integration(t)
	wrk := testenv.RequireBinary(t, "wrk")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	out, err := exec.Command(wrk, "-t1", "-c2", "-d1s", "--latency", srv.URL+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	r, err := ParseWrk(string(out))
	if err != nil {
		t.Fatalf("ParseWrk() error = %v on:\n%s", err, out)
	}
	if r.RPS <= 0 || r.P99 <= 0 || r.Requests <= 0 || r.Errors != 0 {
		t.Fatalf("ParseWrk() = %+v, want positive rate, p99 and count, no errors; output:\n%s", r, out)
	}
}

// TestProxyConfigsAreValid checks the benchmark's nginx and HAProxy
// configurations with the real binaries' config tests.
func TestProxyConfigsAreValid(t *testing.T) {
	testenv.Integration(t)
	tests := []struct {
		name string
		conf func(dir string) string
		file string
		args func(dir, file string) []string
	}{
		{
			name: "nginx",
			conf: func(dir string) string { return NginxConf(dir, "127.0.0.1:1", "127.0.0.1:2", os.Geteuid() == 0) },
			file: "nginx.conf",
			args: func(dir, file string) []string {
				return []string{"-t", "-p", dir, "-c", file, "-e", filepath.Join(dir, "error.log")}
			},
		},
		{
			name: "haproxy",
			conf: func(string) string { return HAProxyConf("127.0.0.1:1", "127.0.0.1:2") },
			file: "haproxy.cfg",
			args: func(_, file string) []string { return []string{"-c", "-f", file} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := testenv.RequireBinary(t, tt.name)
			dir := t.TempDir()
			file := filepath.Join(dir, tt.file)
			if err := os.WriteFile(file, []byte(tt.conf(dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, tt.args(dir, file)...).CombinedOutput(); err != nil {
				t.Fatalf("%s config test: %v\n%s", tt.name, err, out)
			}
		})
	}
}

// TestSmokeRun runs the whole harness briefly with the nginx and Switchyard
// legs: every leg must produce a figure (a leg that cannot start prints n/a).
func TestSmokeRun(t *testing.T) {
	testenv.Integration(t)
	testenv.RequireBinary(t, "nginx")
	testenv.RequireBinary(t, "wrk")
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./bench/cmd/compare", "--smoke", "--legs", "nginx,switchyard", "--conns", "20", "--rss-conns", "50")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("compare --smoke: %v\n%s", err, out)
	}
	for _, want := range []string{"| 20 | nginx |", "| 20 | switchyard |"} {
		i := strings.Index(string(out), want)
		if i < 0 {
			t.Fatalf("no row %q in:\n%s", want, out)
		}
		row, _, _ := strings.Cut(string(out[i:]), "\n")
		if strings.Contains(row, "n/a") {
			t.Errorf("leg without a figure: %s\n%s", row, out)
		}
	}
}
