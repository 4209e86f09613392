//go:build unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether an idle connection still looks usable: no EOF,
// no error and no unsolicited bytes waiting. It peeks without blocking, so
// it costs one system call; only requests that cannot be replayed pay it.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*trackedConn); ok {
		c = tc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
		return true
	})
	return err == nil && alive
}
