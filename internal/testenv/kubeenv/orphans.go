package kubeenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// envtest starts etcd and kube-apiserver in process groups of their own and
// without a parent-death signal, so a test binary that dies without its
// cleanup (a -timeout panic, Ctrl-C, which reaches only the foreground
// group) leaves them running, holding CPU and ports. Each test binary
// therefore records the control-plane processes it started in
// os.TempDir()/switchyard-kube-procs/PID, and the next start removes the
// processes of test binaries that no longer run. Processes are identified
// by pid and start time, so a reused pid is never killed, and a record may
// outlive the processes it names (a clean Stop leaves it for the sweep).

// orphanDir is where the records live.
func orphanDir() string { return filepath.Join(os.TempDir(), "switchyard-kube-procs") }

// childProc is a process recorded by pid and start time (in clock ticks
// since boot, /proc/PID/stat field 22).
type childProc struct {
	pid   int
	start string
}

// recordChildren records the running children of this process whose
// command is one of names.
func recordChildren(names ...string) error {
	procs, err := children(os.Getpid(), names)
	if err != nil || len(procs) == 0 {
		return err
	}
	if err := os.MkdirAll(orphanDir(), 0o755); err != nil {
		return err
	}
	path := filepath.Join(orphanDir(), strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for _, p := range procs {
		fmt.Fprintf(f, "%d %s\n", p.pid, p.start)
	}
	return f.Close()
}

// killOrphans kills the recorded processes of test binaries that have
// exited and removes their records.
func killOrphans() {
	entries, err := os.ReadDir(orphanDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		owner, err := strconv.Atoi(e.Name())
		if err != nil || owner == os.Getpid() {
			continue
		}
		if err := syscall.Kill(owner, 0); !errors.Is(err, syscall.ESRCH) {
			continue // still running (or not ours to judge)
		}
		path := filepath.Join(orphanDir(), e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			pidS, start, ok := strings.Cut(line, " ")
			pid, err := strconv.Atoi(pidS)
			if !ok || err != nil {
				continue
			}
			if _, st, err := procStat(pid); err == nil && st == start {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = os.Remove(path)
	}
}

// children returns the processes whose parent is ppid and whose command
// name is one of names.
func children(ppid int, names []string) ([]childProc, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []childProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, start, err := procStat(pid)
		if err != nil || len(fields) < 2 {
			continue
		}
		comm, parent := fields[0], fields[1]
		if parent != strconv.Itoa(ppid) {
			continue
		}
		for _, n := range names {
			// comm is truncated to 15 bytes by the kernel.
			if comm == n || (len(n) > 15 && comm == n[:15]) {
				out = append(out, childProc{pid: pid, start: start})
			}
		}
	}
	return out, nil
}

// procStat returns the command name and the fields after it (state, ppid,
// ...) of /proc/PID/stat as [comm, ppid], and the start time.
func procStat(pid int) ([]string, string, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, "", err
	}
	s := string(data)
	// comm is in parentheses and may itself contain spaces or ')'.
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return nil, "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	comm := s[open+1 : closing]
	rest := strings.Fields(s[closing+1:])
	// rest[0] is field 3 (state); ppid is field 4, starttime field 22.
	if len(rest) < 20 {
		return nil, "", fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(rest))
	}
	return []string{comm, rest[1]}, rest[19], nil
}
