package accesslog

import (
	"math"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
)

const (
	// keptSeconds is how many completed seconds Window and Seconds reach
	// back, as the proxy's ring.
	keptSeconds = 120
	// ringSlots leaves room, beyond the kept seconds, for the seconds being
	// filled ahead of the cut (at most a second ahead of the clock; the cut
	// is at most a few seconds behind it, or the follower is stale).
	ringSlots = 128
)

// slot is one second of one version's traffic.
type slot struct {
	sec      int64
	requests int64
	errors   int64
	buckets  []uint32 // allocated on the slot's first request
}

// ring is a version's seconds. The Follower's mutex guards it: one
// goroutine (Run) records, the analysis reads a few times a second.
type ring struct {
	lb    *metrics.LatencyBuckets
	slots [ringSlots]slot
}

func newRing(lb *metrics.LatencyBuckets) *ring {
	r := &ring{lb: lb}
	for i := range r.slots {
		r.slots[i].sec = math.MinInt64
	}
	return r
}

// record adds one request of second sec that took seconds; it reports
// false, recording nothing, for a second older than the ring holds.
func (r *ring) record(sec int64, seconds float64, isErr bool) bool {
	s := &r.slots[uint64(sec)%ringSlots]
	if s.sec != sec {
		if s.sec > sec {
			return false
		}
		s.sec, s.requests, s.errors = sec, 0, 0
		if s.buckets == nil {
			s.buckets = make([]uint32, r.lb.Len())
		} else {
			clear(s.buckets)
		}
	}
	s.requests++
	if isErr {
		s.errors++
	}
	s.buckets[r.lb.Bucket(seconds)]++
	return true
}

// add merges second sec into out, and reports whether it had traffic.
func (r *ring) add(out *metrics.Sample, sec int64) bool {
	s := &r.slots[uint64(sec)%ringSlots]
	if s.sec != sec {
		return false
	}
	out.Requests += s.requests
	out.Errors += s.errors
	for i, c := range s.buckets {
		if c != 0 {
			r.lb.Add(out.Latency, i, float64(c))
		}
	}
	return true
}

// second returns second sec's window, and whether it had traffic.
func (r *ring) second(sec int64) (metrics.Sample, bool) {
	out := metrics.Sample{Latency: r.lb.NewSketch(), Since: time.Unix(sec, 0)}
	ok := r.add(&out, sec)
	return out, ok
}
