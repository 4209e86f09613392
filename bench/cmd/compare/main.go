// Command compare runs the side-by-side benchmark: the same small backend
// served directly, through nginx, through HAProxy and through Switchyard,
// interleaved and repeated, and prints medians and Switchyard's ratios to
// nginx and HAProxy as markdown. See bench/README.md; bench/run.sh runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/bench"
)

// backendBody must match bench/backend's body: readiness checks compare it.
const backendBody = "hello from the switchyard bench backend\n"

// options are the command-line settings.
type options struct {
	reps       int
	duration   time.Duration
	warmup     time.Duration
	conns      []int
	legs       []string
	tool       string
	threads    int
	rssConns   int
	out        string
	switchyard string
	keep       bool
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
	}
	os.Exit(code)
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var o options
	var conns, legs string
	var quick, smoke bool
	fs.IntVar(&o.reps, "reps", 3, "repetitions of every leg (medians are reported)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "duration of each load run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "untimed warm-up load per leg before the runs")
	fs.BoolVar(&quick, "quick", false, "3s runs")
	fs.BoolVar(&smoke, "smoke", false, "1s runs, 1 repetition, no warm-up: checks the harness, not the numbers")
	fs.StringVar(&conns, "conns", "50,200", "comma-separated connection counts")
	fs.StringVar(&legs, "legs", strings.Join([]string{bench.LegDirect, bench.LegNginx, bench.LegHAProxy, bench.LegSwitchyard}, ","), "comma-separated legs to run")
	fs.StringVar(&o.tool, "tool", "auto", "load generator: wrk, hey or auto (wrk if installed)")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.rssConns, "rss-conns", 1000, "idle keep-alive connections held open for the memory figure (0: skip)")
	fs.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	fs.StringVar(&o.switchyard, "switchyard", "", "switchyard binary to use (default: go build ./cmd/switchyard)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch {
	case smoke:
		o.duration, o.reps, o.warmup = time.Second, 1, 0
	case quick:
		o.duration = 3 * time.Second
	}
	for _, s := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-conns: %q is not a positive number", s)
		}
		o.conns = append(o.conns, n)
	}
	known := map[string]bool{bench.LegDirect: true, bench.LegNginx: true, bench.LegHAProxy: true, bench.LegSwitchyard: true}
	for _, l := range strings.Split(legs, ",") {
		l = strings.TrimSpace(l)
		if !known[l] {
			return o, fmt.Errorf("-legs: unknown leg %q (want direct, nginx, haproxy, switchyard)", l)
		}
		o.legs = append(o.legs, l)
	}
	if o.reps < 1 {
		return o, fmt.Errorf("-reps is %d; must be at least 1", o.reps)
	}
	if o.tool != "auto" && o.tool != "wrk" && o.tool != "hey" {
		return o, fmt.Errorf("-tool is %q; must be wrk, hey or auto", o.tool)
	}
	return o, nil
}

// harness holds a run's processes and settings.
type harness struct {
	o       options
	log     io.Writer
	dir     string
	root    string
	loadBin string
	tool    string
	backend *bench.Proc
	procs   map[string]*bench.Proc // proxies by leg; direct uses backend
	report  *bench.Report
}

// run runs the benchmark and writes the report; the exit code is 1 when a
// leg could not run.
func run(ctx context.Context, o options, stdout, log io.Writer) (int, error) {
	h := &harness{o: o, log: log, procs: map[string]*bench.Proc{}}
	if err := h.setup(ctx); err != nil {
		return 1, err
	}
	defer h.cleanup()
	h.report = bench.NewReport(o.legs, o.conns)
	h.startLegs(ctx)
	h.measureRSS(ctx)
	h.warmUp(ctx)
	h.runLoad(ctx)
	h.report.Setup = h.describe()
	if err := h.report.WriteMarkdown(stdout); err != nil {
		return 1, err
	}
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return 1, fmt.Errorf("create %s: %w", o.out, err)
		}
		err = h.report.WriteMarkdown(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 1, fmt.Errorf("write %s: %w", o.out, err)
		}
	}
	if ctx.Err() != nil {
		return 1, ctx.Err()
	}
	for _, l := range o.legs {
		for _, c := range o.conns {
			if cell := h.report.Cells[l][c]; len(cell.Runs) == 0 {
				return 1, fmt.Errorf("leg %s produced no result: %s", l, cell.Err)
			}
		}
	}
	return 0, nil
}

// setup finds the module and the load generator and builds the backend.
func (h *harness) setup(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		return fmt.Errorf("run compare from inside the switchyard module (go env GOMOD: %v)", err)
	}
	h.root = filepath.Dir(strings.TrimSpace(string(out)))
	h.tool = h.o.tool
	if h.tool == "auto" {
		h.tool = "hey"
		if look("wrk") != "" {
			h.tool = "wrk"
		}
	}
	if h.loadBin = look(h.tool); h.loadBin == "" {
		return fmt.Errorf("load generator %s not installed (apt-get install wrk, or hey)", h.tool)
	}
	if h.dir, err = os.MkdirTemp("", "switchyard-bench-"); err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	h.logf("working in %s", h.dir)
	backendBin := filepath.Join(h.dir, "backend")
	if err := h.goBuild(ctx, backendBin, "./bench/backend"); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	h.backend, err = bench.Start("backend", backendBin, []string{"-addr", addr}, h.dir, filepath.Join(h.dir, "backend.log"), addr)
	if err != nil {
		return err
	}
	if err := h.backend.Ready(ctx, 10*time.Second, []byte(backendBody)); err != nil {
		return err
	}
	return nil
}

// cleanup stops every process and removes the temporary directory.
func (h *harness) cleanup() {
	for _, p := range h.procs {
		p.Stop()
	}
	h.backend.Stop()
	if h.o.keep {
		h.logf("kept %s", h.dir)
		return
	}
	_ = os.RemoveAll(h.dir)
}

// goBuild builds pkg of the module into out.
func (h *harness) goBuild(ctx context.Context, out, pkg string) error {
	h.logf("building %s", pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = h.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// startLegs starts every proxy; a proxy that fails records the error on its
// cells and is left out of the runs.
func (h *harness) startLegs(ctx context.Context) {
	for _, leg := range h.o.legs {
		if leg == bench.LegDirect {
			continue
		}
		p, err := h.startProxy(ctx, leg)
		if err != nil {
			h.logf("%s: %v", leg, err)
			for _, c := range h.o.conns {
				h.report.Cells[leg][c].Err = err.Error()
			}
			h.report.RSS[leg] = bench.RSS{Err: err.Error()}
			continue
		}
		h.procs[leg] = p
		h.logf("%s serving on %s (pid %d)", leg, p.Addr, p.PID())
	}
}

// startProxy writes the leg's configuration and starts it.
func (h *harness) startProxy(ctx context.Context, leg string) (*bench.Proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(h.dir, leg)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "output.log")
	var bin string
	var args []string
	switch leg {
	case bench.LegNginx:
		if bin = look("nginx"); bin == "" {
			return nil, errors.New("nginx not installed (apt-get install nginx)")
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(bench.NginxConf(dir, addr, h.backend.Addr, os.Geteuid() == 0)), 0o644); err != nil {
			return nil, err
		}
		args = []string{"-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;"}
	case bench.LegHAProxy:
		if bin = look("haproxy"); bin == "" {
			return nil, errors.New("haproxy not installed (apt-get install haproxy)")
		}
		conf := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(conf, []byte(bench.HAProxyConf(addr, h.backend.Addr)), 0o644); err != nil {
			return nil, err
		}
		args = []string{"-f", conf, "-db"}
	case bench.LegSwitchyard:
		bin = h.o.switchyard
		if bin == "" {
			bin = filepath.Join(h.dir, "switchyard.bin")
			if err := h.goBuild(ctx, bin, "./cmd/switchyard"); err != nil {
				return nil, fmt.Errorf("switchyard leg unavailable: %w", err)
			}
		}
		conf, err := bench.SwitchyardConf(filepath.Join(h.root, "bench", "switchyard.yaml"), addr, h.backend.Addr)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(dir, "switchyard.yaml")
		if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		args = []string{"serve", "-f", file, "--state-dir", filepath.Join(dir, "state"), "--admin", "127.0.0.1:0", "--log-level", "warn"}
	}
	p, err := bench.Start(leg, bin, args, dir, logPath, addr)
	if err != nil {
		return nil, err
	}
	if err := p.Ready(ctx, 20*time.Second, []byte(backendBody)); err != nil {
		p.Stop()
		if leg == bench.LegSwitchyard {
			return nil, fmt.Errorf("switchyard leg unavailable (does `switchyard serve` work yet?): %w", err)
		}
		return nil, err
	}
	return p, nil
}

// addrOf is where a leg's load goes.
func (h *harness) addrOf(leg string) (string, bool) {
	if leg == bench.LegDirect {
		return h.backend.Addr, true
	}
	p, ok := h.procs[leg]
	if !ok {
		return "", false
	}
	return p.Addr, true
}

// measureRSS reads each proxy's memory idle and while holding
// o.rssConns idle keep-alive connections.
func (h *harness) measureRSS(ctx context.Context) {
	if h.o.rssConns <= 0 {
		return
	}
	h.report.RSSConn = h.o.rssConns
	for _, leg := range h.o.legs {
		p, ok := h.procs[leg]
		if !ok {
			continue
		}
		var m bench.RSS
		var err error
		m.IdleKB, err = p.RSSKB()
		if err == nil {
			var release func()
			m.Conns, release, err = bench.HoldConns(ctx, p.Addr, h.o.rssConns)
			if err == nil {
				m.LoadedKB, err = p.RSSKB()
			}
			release()
		}
		if err != nil {
			m.Err = err.Error()
		}
		h.report.RSS[leg] = m
		h.logf("%s RSS idle %d KiB, with %d connections %d KiB %s", leg, m.IdleKB, m.Conns, m.LoadedKB, m.Err)
	}
}

// warmUp sends untimed load through each leg.
func (h *harness) warmUp(ctx context.Context) {
	if h.o.warmup <= 0 {
		return
	}
	for _, leg := range h.o.legs {
		if addr, ok := h.addrOf(leg); ok {
			h.logf("warming up %s", leg)
			_, _ = h.load(ctx, addr, h.o.conns[0], h.o.warmup)
		}
	}
}

// runLoad runs the repetitions, interleaving the legs.
func (h *harness) runLoad(ctx context.Context) {
	for rep := 1; rep <= h.o.reps; rep++ {
		for _, c := range h.o.conns {
			for _, leg := range h.o.legs {
				if ctx.Err() != nil {
					return
				}
				addr, ok := h.addrOf(leg)
				if !ok {
					continue
				}
				cell := h.report.Cells[leg][c]
				r, err := h.load(ctx, addr, c, h.o.duration)
				if err != nil {
					h.logf("rep %d, %d conns, %s: %v", rep, c, leg, err)
					cell.Err = err.Error()
					continue
				}
				cell.Runs = append(cell.Runs, r)
				h.logf("rep %d/%d, %4d conns, %-10s %9.0f req/s  p99 %v  errors %d", rep, h.o.reps, c, leg, r.RPS, r.P99, r.Errors)
			}
		}
	}
}

// load runs the load generator against addr.
func (h *harness) load(ctx context.Context, addr string, conns int, d time.Duration) (bench.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	url := "http://" + addr + "/"
	var args []string
	threads := min(h.o.threads, conns)
	if h.tool == "wrk" {
		args = []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + seconds(d), "--latency", url}
	} else {
		args = []string{"-c", strconv.Itoa(conns), "-z", seconds(d), url}
	}
	out, err := exec.CommandContext(ctx, h.loadBin, args...).CombinedOutput()
	if err != nil {
		return bench.Result{}, fmt.Errorf("%s: %w\n%s", h.tool, err, out)
	}
	if h.tool == "wrk" {
		return bench.ParseWrk(string(out))
	}
	return bench.ParseHey(string(out))
}

// describe lists the setup for the report.
func (h *harness) describe() []string {
	s := []string{
		fmt.Sprintf("machine: %s, %d cores, %s", cpuModel(), runtime.NumCPU(), firstLine("uname", "-sr")),
		fmt.Sprintf("load: %s, %v per run, %d repetitions, legs interleaved (%s), medians", h.toolLine(), h.o.duration, h.o.reps, strings.Join(h.o.legs, ", ")),
		fmt.Sprintf("backend: bench/backend (Go net/http, %d-byte body, keep-alive)", len(backendBody)),
	}
	for _, leg := range h.o.legs {
		switch leg {
		case bench.LegNginx:
			s = append(s, "nginx: "+firstLine(look("nginx"), "-v")+"; worker_processes auto, upstream keepalive 256, proxy_http_version 1.1, access_log off")
		case bench.LegHAProxy:
			s = append(s, "haproxy: "+firstLine(look("haproxy"), "-v")+"; nbthread 2, http-reuse always")
		case bench.LegSwitchyard:
			if _, ok := h.procs[leg]; ok {
				bin := h.o.switchyard
				if bin == "" {
					bin = filepath.Join(h.dir, "switchyard.bin")
				}
				s = append(s, "switchyard: "+firstLine(bin, "version")+"; bench/switchyard.yaml")
			}
		}
	}
	s = append(s, "all processes on the same machine, unpinned: load generator and proxy share the cores")
	return s
}

// toolLine names the load generator and its settings.
func (h *harness) toolLine() string {
	if h.tool == "wrk" {
		return fmt.Sprintf("wrk -t%d -c{%s} --latency", h.o.threads, joinInts(h.o.conns))
	}
	return fmt.Sprintf("hey -c {%s}", joinInts(h.o.conns))
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "compare: "+format+"\n", args...)
}

// look finds a binary in PATH or the sbin directories.
func look(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// firstLine runs a command and returns the first line of its output.
func firstLine(bin string, args ...string) string {
	if bin == "" {
		return "not installed"
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && line == "" {
		return "unknown (" + err.Error() + ")"
	}
	return line
}

// cpuModel reads the processor name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// seconds formats d for wrk and hey ("10s"), at least one second.
func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))) + "s"
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
