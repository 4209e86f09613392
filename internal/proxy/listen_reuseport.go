//go:build linux || darwin || freebsd

package proxy

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets a reloaded listener bind the same address before the old
// one closes, so a reload that changes server settings refuses no connection.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
