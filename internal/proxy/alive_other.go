//go:build !unix

package proxy

import "net"

// connAlive cannot peek on this platform; the request goes out and a stale
// connection fails like any other.
func connAlive(net.Conn) bool { return true }
