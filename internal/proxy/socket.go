package proxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// socket is one bound address. Its accept loop hands each connection to the
// current server's handoff, so a reload that changes server settings swaps
// the http.Server without closing the socket: no connection is refused.
type socket struct {
	ln  net.Listener
	cur atomic.Pointer[handoff]
}

func (s *socket) acceptLoop(log func(error)) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				if h := s.cur.Load(); h != nil {
					h.Close()
				}
				return
			}
			log(err) // e.g. EMFILE: keep accepting once descriptors free up
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for {
			h := s.cur.Load()
			select {
			case h.conns <- c:
			case <-h.done:
				if s.cur.Load() == h { // closed for good, not swapped
					c.Close()
					break
				}
				continue
			}
			break
		}
	}
}

// handoff is the net.Listener one http.Server serves: connections come from
// the socket's accept loop.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener; it stops this server, not the socket.
func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr implements net.Listener.
func (h *handoff) Addr() net.Addr { return h.addr }
