package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a server process of the benchmark, in its own process group so
// that its RSS can be summed over its workers and it can be stopped whole.
type Proc struct {
	Name string
	// Addr is where it serves HTTP.
	Addr string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs bin with args, its output going to logPath. Call Ready to wait
// for it and Stop to end it.
func Start(name, bin string, args []string, dir, logPath, addr string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Addr: addr, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { // owned by p: Stop waits for done
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id of the main process.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *Proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Ready waits until a GET / through p answers 200 with wantBody, failing
// early when the process exits.
func (p *Proc) Ready(ctx context.Context, timeout time.Duration, wantBody []byte) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before serving on %s:\n%s", p.Name, p.err, p.Addr, tail(p.Log, 20))
		}
		last = get(ctx, client, "http://"+p.Addr+"/", wantBody)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not serving on %s after %v: %w\n%s", p.Name, p.Addr, timeout, last, tail(p.Log, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// get checks one request.
func get(ctx context.Context, client *http.Client, url string, wantBody []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || (wantBody != nil && string(b) != string(wantBody)) {
		return fmt.Errorf("GET %s: %d %q", url, resp.StatusCode, oneLine(string(b)))
	}
	return nil
}

// Stop ends the process group: SIGTERM, then SIGKILL after a few seconds.
func (p *Proc) Stop() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	<-p.done
}

// RSSKB sums VmRSS over every process in p's process group (nginx's master
// and workers; a single process for the others), in KiB.
func (p *Proc) RSSKB() (int64, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("read /proc: %w", err)
	}
	var total int64
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		pgid, err := syscall.Getpgid(pid)
		if err != nil || pgid != p.PID() {
			continue
		}
		kb, err := vmRSS(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue // exited meanwhile
		}
		total += kb
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no process of %s's group %d found", p.Name, p.PID())
	}
	return total, nil
}

// vmRSS reads the VmRSS line (KiB) of a /proc/PID/status file.
func vmRSS(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds "VmRSS:   12345 kB" in a status file.
func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "VmRSS:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS line")
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// HoldConns opens n keep-alive connections to addr, makes one GET on each
// and keeps them open and idle; close the returned function to release them.
// It reports how many connections completed their request.
func HoldConns(ctx context.Context, addr string, n int) (held int, release func(), err error) {
	conns := make([]net.Conn, 0, n)
	release = func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	req := []byte("GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: switchyard-bench\r\n\r\n")
	// Sequential on purpose: the figure is memory per idle connection, not
	// behaviour under a connection storm.
	for range n {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return len(conns), release, fmt.Errorf("open connection %d: %w", len(conns)+1, err)
		}
		conns = append(conns, c)
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(req); err != nil {
			return len(conns) - 1, release, fmt.Errorf("request on connection %d: %w", len(conns), err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return len(conns) - 1, release, fmt.Errorf("response on connection %d: %w", len(conns), err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			return len(conns) - 1, release, fmt.Errorf("connection %d: the proxy closed the keep-alive connection", len(conns))
		}
		_ = c.SetDeadline(time.Time{})
	}
	return len(conns), release, nil
}
