//go:build unix

package hook

import (
	"errors"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/switchyard/switchyard/internal/spec"
)

// attrs are how a hook's process starts: its own process group, and the
// runAs user's credentials and identity variables.
type attrs struct {
	sys *syscall.SysProcAttr
	env []string
}

func procAttr(runAs string) (attrs, error) {
	a := attrs{sys: &syscall.SysProcAttr{Setpgid: true}}
	parentDeath(a.sys)
	if runAs == "" {
		return a, nil
	}
	u, err := spec.LookupUser(runAs)
	if err != nil {
		return a, err
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return a, err
	}
	if os.Geteuid() != 0 && uint64(os.Geteuid()) != uid {
		return a, errors.New("switching users needs Switchyard to run as root")
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	cred.Groups = groups(u)
	a.sys.Credential = cred
	a.env = []string{"USER=" + u.Username, "LOGNAME=" + u.Username, "HOME=" + u.HomeDir}
	return a, nil
}

// groups are u's supplementary groups; none when they cannot be read
// (the primary group still applies).
func groups(u *user.User) []uint32 {
	ids, err := u.GroupIds()
	if err != nil {
		return []uint32{}
	}
	out := make([]uint32, 0, len(ids))
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			out = append(out, uint32(g))
		}
	}
	return out
}

// killGroup kills the hook's whole process group (its pid is the group id).
func killGroup(p *os.Process) {
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
}
