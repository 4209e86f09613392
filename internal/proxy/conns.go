package proxy

import (
	"context"
	"net"
	"sync"
)

// connTracker remembers every upstream connection by target address, so the
// connections of a retired target (idle keep-alives, long streams, upgraded
// WebSockets) can be closed when its drain deadline passes. It costs a map
// operation per dial, not per request.
type connTracker struct {
	mu    sync.Mutex
	conns map[string]map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	addr string
	ct   *connTracker
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.ct.mu.Lock()
		if m := c.ct.conns[c.addr]; m != nil {
			delete(m, c)
			if len(m) == 0 {
				delete(c.ct.conns, c.addr)
			}
		}
		c.ct.mu.Unlock()
	})
	return c.Conn.Close()
}

func (ct *connTracker) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, addr: addr, ct: ct}
		ct.mu.Lock()
		m := ct.conns[addr]
		if m == nil {
			m = make(map[*trackedConn]struct{})
			ct.conns[addr] = m
		}
		m[tc] = struct{}{}
		ct.mu.Unlock()
		return tc, nil
	}
}

// closeAddr closes every connection to addr and returns how many it closed.
func (ct *connTracker) closeAddr(addr string) int {
	ct.mu.Lock()
	m := ct.conns[addr]
	delete(ct.conns, addr)
	ct.mu.Unlock()
	for c := range m {
		c.Conn.Close()
	}
	return len(m)
}

func (ct *connTracker) closeAll() {
	ct.mu.Lock()
	all := ct.conns
	ct.conns = make(map[string]map[*trackedConn]struct{})
	ct.mu.Unlock()
	for _, m := range all {
		for c := range m {
			c.Conn.Close()
		}
	}
}
