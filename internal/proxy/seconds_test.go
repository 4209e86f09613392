package proxy

import (
	"context"
	"testing"
	"time"
)

// TestSeconds reads each completed second once, with its own counts and
// sketch, and leaves out the second still running.
func TestSeconds(t *testing.T) {
	s := newStats(newLatencyMapping())
	now := time.Now().Unix()
	for i := range 3 {
		s.record(now-3+int64(i), 100*time.Millisecond, i == 1)
	}
	var got []int64
	for sec := now - 5; sec <= now-1; sec++ {
		if w, ok := s.second(sec); ok {
			got = append(got, w.Requests)
			if w.Latency.GetCount() != float64(w.Requests) {
				t.Errorf("second %d: sketch counts %v, requests %d", sec, w.Latency.GetCount(), w.Requests)
			}
			if sec == now-2 && w.Errors != 1 {
				t.Errorf("second %d: errors %d, want 1", sec, w.Errors)
			}
		}
	}
	if len(got) != 3 {
		t.Fatalf("seconds with traffic: %v, want three", got)
	}
	p := &Proxy{lm: s.lm, services: map[string]*service{}}
	out, err := p.Seconds(context.Background(), "nope", []string{"v1"}, 0)
	if err != nil || len(out.By) != 0 || out.Through >= time.Now().Unix() {
		t.Fatalf("unknown service: %+v %v", out, err)
	}
}
