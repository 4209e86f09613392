package proxy

import (
	"errors"
	"net"
	"sync"
	"time"
)

// watchEvery is how often the fast path checks, while it waits for a
// target, whether the client is still there (net/http does it with a
// background read per request; a client that left cancels the upstream
// request and is recorded as 499).
const watchEvery = 200 * time.Millisecond

var errClientGone = errors.New("client closed the connection")

// clientWatch checks, while a request waits for its target, whether the
// client is still connected.
type clientWatch struct {
	mu     sync.Mutex
	up     net.Conn
	client net.Conn
	gone   bool
	timer  *time.Timer
}

// watch starts checking the client while the target is working on up.
func (f *fastReq) watch(up net.Conn) {
	cw := f.cw
	cw.mu.Lock()
	cw.up = up
	cw.client = f.ctx.Conn()
	if cw.timer == nil {
		cw.timer = time.AfterFunc(watchEvery, cw.check)
	} else {
		cw.timer.Reset(watchEvery)
	}
	cw.mu.Unlock()
}

func (f *fastReq) unwatch() {
	cw := f.cw
	cw.mu.Lock()
	cw.up, cw.client = nil, nil
	if cw.timer != nil {
		cw.timer.Stop()
	}
	cw.mu.Unlock()
}

func (cw *clientWatch) check() {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	if cw.up == nil {
		return
	}
	if peerGone(cw.client) {
		cw.gone = true
		cw.up.Close() // unblocks the read from the target
		return
	}
	cw.timer.Reset(watchEvery)
}

func (f *fastReq) clientGone() bool {
	cw := f.cw
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.gone
}
