//go:build !unix

package proxy

import "net"

// connAlive cannot peek on this platform; the request goes out and a stale
// connection fails like any other.
func connAlive(net.Conn) bool { return true }

// peerGone cannot peek on this platform: a client that left is noticed when
// the response is written.
func peerGone(net.Conn) bool { return false }
