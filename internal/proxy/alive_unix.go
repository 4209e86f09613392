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
	// Control, not Read: Read refuses to run once the connection's read
	// deadline has passed, which says nothing about the peer.
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
	})
	return err == nil && alive
}

// peerGone reports whether a client connection was closed by its peer (EOF
// or an error waiting); bytes waiting (a pipelined request) mean it is not.
// It peeks without blocking.
func peerGone(c net.Conn) bool {
	if fc, ok := c.(*frontConn); ok {
		c = fc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	// Control, not Read: Read fails at once when the connection's read
	// deadline has passed (fasthttp leaves the header or body deadline set
	// while the handler runs), and that was taken for a client that left,
	// cutting every stream at the header timeout.
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			gone = n == 0
		default:
			gone = !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR)
		}
	})
	return err != nil || gone
}
