package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// startTimeout bounds how long a started server may take to accept
// connections; generous because CI machines are shared and slow.
const startTimeout = 15 * time.Second

// stopTimeout is how long a server gets to exit after its stop signal
// before its whole process group is killed.
const stopTimeout = 5 * time.Second

// Process is a server process started by a test, in its own process group,
// stopped on t.Cleanup.
type Process struct {
	// Addr is the 127.0.0.1:PORT address the server listens on.
	Addr string
	// Dir is the server's private directory (config, pid file, logs).
	Dir string
	// Config is the path of the configuration file written into Dir.
	Config string
	// Log is the path of the file receiving the server's stdout and stderr.
	Log string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid after done is closed
	once sync.Once
}

// PID returns the process id of the server (nginx's master process).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the server process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the server wrote to its log file so far (for failure
// messages).
func (p *Process) Output() string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.Log, err)
	}
	return string(b)
}

// Signal sends sig to the server process.
func (p *Process) Signal(sig os.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// Stop sends stopSig, waits for the process to exit and kills its process
// group when it does not exit in time. It is idempotent.
func (p *Process) Stop(stopSig syscall.Signal) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(stopSig)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
		}
		// Kill the whole group either way: nginx workers outlive a master
		// that died abnormally.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
}

// confData is what a configuration template may refer to.
type confData struct {
	Addr string // 127.0.0.1:PORT to listen on
	Port int
	Dir  string // the server's private directory
}

// render fills the configuration template conf with data.
func render(conf string, data confData) (string, error) {
	tpl, err := template.New("conf").Option("missingkey=error").Parse(conf)
	if err != nil {
		return "", fmt.Errorf("parse config template: %w", err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("render config template: %w", err)
	}
	return b.String(), nil
}

// startProcess writes config into dir, starts bin with args, stops it with
// stopSig on cleanup and waits until addr accepts connections.
func startProcess(t testing.TB, name, bin string, args []string, p *Process, config string, stopSig syscall.Signal) {
	t.Helper()
	if err := os.WriteFile(p.Config, []byte(config), 0o644); err != nil {
		t.Fatalf("write %s config: %v", name, err)
	}
	logf, err := os.Create(p.Log)
	if err != nil {
		t.Fatalf("create %s log: %v", name, err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group, so that Stop can kill the workers too; and
	// killed with the test binary if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() { // owned by p: Stop waits for done
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.Stop(stopSig) })

	ok := Poll(startTimeout, func() bool { return p.Exited() || Accepts(p.Addr) })
	switch {
	case p.Exited():
		t.Fatalf("%s exited before accepting on %s (%v); config %s:\n%s\noutput:\n%s",
			name, p.Addr, p.err, p.Config, numbered(config), p.Output())
	case !ok:
		t.Fatalf("%s did not accept on %s within %v; output:\n%s", name, p.Addr, startTimeout, p.Output())
	}
}

// numbered prefixes each line of s with its number, for config errors that
// name a line.
func numbered(s string) string {
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&b, "%4d  %s\n", i+1, line)
	}
	return b.String()
}

// newProcess prepares a Process with a fresh private directory and a free
// address.
func newProcess(t testing.TB, confName string) *Process {
	t.Helper()
	dir := t.TempDir()
	return &Process{
		Addr:   FreeAddr(t),
		Dir:    dir,
		Config: filepath.Join(dir, confName),
		Log:    filepath.Join(dir, "output.log"),
	}
}

// Nginx is a real nginx started by StartNginx.
type Nginx struct {
	*Process
	bin string
}

// nginxMain is the part of nginx.conf outside the http block. Every path is
// inside the private directory so that nginx runs the same as root and as
// an ordinary user; as root the workers stay root so they can use the 0700
// test directory.
const nginxMain = `{{if .Root}}user root;
{{end}}{{.Main}}worker_processes {{.Workers}};
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path {{.Dir}}/client_body;
    proxy_temp_path {{.Dir}}/proxy;
    fastcgi_temp_path {{.Dir}}/fastcgi;
    uwsgi_temp_path {{.Dir}}/uwsgi;
    scgi_temp_path {{.Dir}}/scgi;
{{.HTTP}}
}
`

// StartNginx runs a real nginx in the foreground and returns once it
// accepts connections; it is stopped on t.Cleanup. httpConf is the content
// of the http block (upstreams and servers), a text/template that can use
// {{.Addr}} (a free 127.0.0.1:PORT to listen on), {{.Port}} and {{.Dir}}
// (the private directory holding nginx.conf, logs and the pid file, where a
// test may also put files to include). The first server must listen on
// {{.Addr}}. The test is skipped (or fails under CI) when nginx is missing.
func StartNginx(t testing.TB, httpConf string) *Nginx {
	t.Helper()
	return StartNginxWith(t, NginxOptions{}, httpConf)
}

// NginxOptions are the main-context settings of StartNginxWith.
type NginxOptions struct {
	// WorkerProcesses is nginx's worker_processes (1 if zero).
	WorkerProcesses int
	// Lua loads Debian's libnginx-mod-http-lua (and the NDK it needs);
	// the test is skipped, or fails under CI, when it is not installed.
	Lua bool
}

// LuaModules are the load_module lines of Debian's libnginx-mod-http-lua.
var LuaModules = []string{
	"/usr/lib/nginx/modules/ndk_http_module.so",
	"/usr/lib/nginx/modules/ngx_http_lua_module.so",
}

// StartNginxWith is StartNginx with main-context options.
func StartNginxWith(t testing.TB, o NginxOptions, httpConf string) *Nginx {
	t.Helper()
	bin := RequireBinary(t, "nginx")
	main := ""
	if o.Lua {
		for _, m := range LuaModules {
			if _, err := os.Stat(m); err != nil {
				msg := fmt.Sprintf("%s is missing: apt-get install libnginx-mod-http-lua (scripts/test.sh installs it)", m)
				if CI() {
					t.Fatalf("CI=true: %s", msg)
				}
				t.Skip(msg)
			}
			main += "load_module " + m + ";\n"
		}
	}
	workers := max(o.WorkerProcesses, 1)
	p := newProcess(t, "nginx.conf")
	data := confData{Addr: p.Addr, Port: portOf(p.Addr), Dir: p.Dir}
	httpPart, err := render(httpConf, data)
	if err != nil {
		t.Fatalf("nginx config: %v", err)
	}
	conf, err := renderNginxMain(p.Dir, main, workers, httpPart)
	if err != nil {
		t.Fatalf("nginx main config: %v", err)
	}
	n := &Nginx{Process: p, bin: bin}
	startProcess(t, "nginx", bin, n.args("-g", "daemon off;"), p, conf, syscall.SIGTERM)
	return n
}

// args returns nginx's command line for this instance followed by extra.
func (n *Nginx) args(extra ...string) []string {
	// -e before the config is read: nginx would otherwise try the
	// compiled-in /var/log/nginx/error.log, which an ordinary user cannot open.
	return append([]string{"-p", n.Dir, "-c", n.Config, "-e", filepath.Join(n.Dir, "error.log")}, extra...)
}

// Command returns the argv of an nginx command for this instance (its
// prefix, configuration and error log) followed by extra, like
// Command("-t") or Command("-s", "reload"), for code that runs nginx
// commands itself.
func (n *Nginx) Command(extra ...string) []string {
	return append([]string{n.bin}, n.args(extra...)...)
}

// Workers returns the process ids of the master's children: its workers,
// old ones still finishing after a reload included.
func (n *Nginx) Workers() ([]int, error) {
	pid := n.PID()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// WaitReloaded waits until the master runs exactly want workers (the old
// ones of a reload have exited): from then on, new connections are served
// by the configuration in force only.
func (n *Nginx) WaitReloaded(t testing.TB, want int) {
	t.Helper()
	WaitFor(t, 20*time.Second, func() bool {
		ws, err := n.Workers()
		return err == nil && len(ws) == want
	}, fmt.Sprintf("nginx to run %d workers, the old ones gone", want))
}

// Test runs `nginx -t` on the instance's configuration file as it is now.
func (n *Nginx) Test() error {
	out, err := exec.Command(n.bin, n.args("-t")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -t: %w: %s", err, out)
	}
	return nil
}

// Reload asks the running nginx to re-read its configuration (nginx -s
// reload). The reload is asynchronous in nginx: wait for its effect.
func (n *Nginx) Reload() error {
	out, err := exec.Command(n.bin, n.args("-s", "reload")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx -s reload: %w: %s", err, out)
	}
	return nil
}

// Output returns nginx's output and its error log.
func (n *Nginx) Output() string {
	errLog, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return n.Process.Output() + "\nerror.log:\n" + string(errLog)
}

// renderNginxMain wraps httpPart into a complete nginx.conf for dir.
func renderNginxMain(dir, main string, workers int, httpPart string) (string, error) {
	tpl, err := template.New("nginx").Parse(nginxMain)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	err = tpl.Execute(&b, struct {
		Root    bool
		Main    string
		Workers int
		Dir     string
		HTTP    string
	}{Root: os.Geteuid() == 0, Main: main, Workers: workers, Dir: dir, HTTP: httpPart})
	return b.String(), err
}

// HAProxy is a real HAProxy started by StartHAProxy.
type HAProxy struct {
	*Process
}

// haproxyDefaults precede the test's sections.
const haproxyDefaults = `global
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

`

// StartHAProxy runs a real HAProxy in the foreground (-db) and returns once
// it accepts connections; it is stopped on t.Cleanup. conf holds the
// frontend and backend sections; a global section and `defaults` with mode
// http and timeouts are prepended. conf is a text/template that can use
// {{.Addr}}, {{.Port}} and {{.Dir}} as for StartNginx; the first frontend
// must bind {{.Addr}}. The test is skipped (or fails under CI) when haproxy
// is missing.
func StartHAProxy(t testing.TB, conf string) *HAProxy {
	t.Helper()
	bin := RequireBinary(t, "haproxy")
	p := newProcess(t, "haproxy.cfg")
	body, err := render(conf, confData{Addr: p.Addr, Port: portOf(p.Addr), Dir: p.Dir})
	if err != nil {
		t.Fatalf("haproxy config: %v", err)
	}
	full := haproxyDefaults + body
	// Validate first: haproxy's own message names the line.
	if err := os.WriteFile(p.Config, []byte(full), 0o644); err != nil {
		t.Fatalf("write haproxy config: %v", err)
	}
	if out, err := exec.Command(bin, "-c", "-f", p.Config).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\nconfig:\n%s", err, out, numbered(full))
	}
	h := &HAProxy{Process: p}
	startProcess(t, "haproxy", bin, []string{"-f", p.Config, "-db"}, p, full, syscall.SIGTERM)
	return h
}

// portOf returns the port of a host:port address, or 0.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(p)
	return port
}
