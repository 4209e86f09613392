package kubeenv

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testenv"
)

// DefaultControllers are the kube-controller-manager controllers that
// StartControllerManager runs: what Deployments, ReplicaSets, Services and
// namespaces need to behave as on a cluster, and no more (every controller
// costs CPU on a shared 2-core machine). The node lifecycle controller is
// left out on purpose: no kubelet renews the fake node's lease, and it would
// mark the node unreachable and its pods not ready after about 40 s.
var DefaultControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"endpointslice-controller",
	"endpoints-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"disruption-controller",
}

// StartControllerManager starts kube-controller-manager against k with
// controllers (DefaultControllers when none are given), on loopback, and
// returns once its /healthz answers. It is stopped with k, before the
// apiserver. A second call is a no-op. The test is skipped (or fails under
// CI) when the binary is missing.
func (k *Kube) StartControllerManager(t testing.TB, controllers ...string) {
	t.Helper()
	k.mu.Lock()
	running := k.kcm != nil
	k.mu.Unlock()
	if running {
		return
	}
	bin := filepath.Join(k.Assets, controllerManagerBin)
	if err := executable(bin); err != nil {
		if testenv.CI() {
			t.Fatalf("CI=true: %v; %s", err, assetsHint)
		}
		t.Skipf("%v; %s", err, assetsHint)
	}
	p, err := k.startControllerManager(bin, controllers)
	if err != nil {
		t.Fatalf("start kube-controller-manager: %v", err)
	}
	t.Logf("kube: kube-controller-manager up in %v", p.started.Round(time.Millisecond))
}

// startControllerManager runs bin and waits for its health check.
func (k *Kube) startControllerManager(bin string, controllers []string) (*process, error) {
	t0 := time.Now()
	if len(controllers) == 0 {
		controllers = DefaultControllers
	}
	kubeconfig, err := k.Kubeconfig("kube-controller-manager")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(k.dir, "kube-controller-manager-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(controllers, ","),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		// Write EndpointSlice changes at once: a test waits for them.
		"--endpointslice-updates-batch-period=0s",
		"--v=1",
	}
	p, err := startProcess(bin, args, filepath.Join(k.dir, "kube-controller-manager.log"))
	if err != nil {
		return nil, err
	}
	// Its serving certificate is self-signed; /healthz is open to anyone
	// (--authorization-always-allow-paths' default).
	hc := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer hc.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	healthy := testenv.Poll(startTimeout, func() bool {
		if p.exited() {
			return false
		}
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if !healthy {
		_ = p.stop()
		return nil, fmt.Errorf("%s not healthy within %v (exited: %v)\n%s", url, startTimeout, p.exited(), logTails(k.dir))
	}
	p.started = time.Since(t0)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		_ = p.stop()
		return nil, fmt.Errorf("kube stopped while kube-controller-manager started")
	}
	k.kcm = p
	return p, nil
}

// process is a component that kubeenv itself starts (envtest starts etcd
// and kube-apiserver), in its own process group and killed with the test
// binary.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's result, valid after done
	started time.Duration
}

// startProcess starts bin with args, its output into logPath.
func startProcess(bin string, args []string, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { // owned by p: stop waits for done
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopTimeout, then kills the group.
func (p *process) stop() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", filepath.Base(p.cmd.Path), stopTimeout)
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
