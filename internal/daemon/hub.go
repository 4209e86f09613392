package daemon

import (
	"context"
	"sync"

	"github.com/switchyard/switchyard/internal/admin"
)

// hub fans rollout events out to SSE subscribers. A slow subscriber loses
// events (its buffer is bounded) rather than holding up a runner.
type hub struct {
	mu     sync.Mutex
	seq    uint64
	subs   map[chan admin.StreamEvent]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: map[chan admin.StreamEvent]struct{}{}} }

func (h *hub) publish(ev admin.StreamEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.seq++
	ev.Seq = h.seq
	for ch := range h.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (h *hub) subscribe(ctx context.Context) (<-chan admin.StreamEvent, func()) {
	ch := make(chan admin.StreamEvent, 256)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		close(ch)
		return ch, func() {}
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			h.mu.Lock()
			if _, ok := h.subs[ch]; ok {
				delete(h.subs, ch)
				close(ch)
			}
			h.mu.Unlock()
		})
	}
	context.AfterFunc(ctx, cancel)
	return ch, cancel
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}
