//go:build !(linux || darwin || freebsd)

package proxy

import "syscall"

func reusePort(network, address string, c syscall.RawConn) error { return nil }
