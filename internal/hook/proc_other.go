//go:build !unix

package hook

import (
	"errors"
	"os"
	"syscall"
)

type attrs struct {
	sys *syscall.SysProcAttr
	env []string
}

func procAttr(runAs string) (attrs, error) {
	if runAs != "" {
		return attrs{}, errors.New("runAs is supported on Unix only")
	}
	return attrs{}, nil
}

// killGroup kills the hook; without process groups its children may live on.
func killGroup(p *os.Process) { _ = p.Kill() }
