package proxy

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	sources "github.com/switchyard/switchyard/internal/metrics"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// Sample is one version's traffic over a window: exact request and error
// counts and a latency sketch — the built-in metric source's sample.
//
// Requests are the requests the version served (any status a target
// answered with, or the 502/504 of a target's failure, or a client that left
// before the response ended); Errors those that failed because of the target.
// outcome.go says, in one place, which outcome counts where: a client's
// broken request (400, 408, 413) and a 503 for want of a target are neither.
//
// Latency is a DDSketch of request durations in SECONDS with 1.5% relative
// accuracy (logarithmic mapping, gamma ≈ 1.0305), mergeable with MergeWith
// across windows, versions and processes using the same mapping. It is never
// nil; it is empty when Requests is zero. Durations below 10µs count as 10µs and
// above one hour as one hour.
type Sample = sources.Sample

const (
	windowSlots = 120 // seconds of history kept per version
	// 1.5% relative accuracy (the analysis needs ≤2%) from 10µs to an hour:
	// about 650 buckets a window. Each window's buckets are allocated on its
	// first request, so a version that takes no traffic costs almost nothing.
	sketchAccuracy    = 0.015
	sketchMinSeconds  = 1e-5
	sketchMaxSeconds  = 3600
	windowMaxDuration = windowSlots * time.Second
)

// latencyMapping is immutable once built; every window shares it.
type latencyMapping struct {
	m      *mapping.LogarithmicMapping
	offset int
	n      int
}

func newLatencyMapping() *latencyMapping {
	m, err := mapping.NewLogarithmicMapping(sketchAccuracy)
	if err != nil {
		panic(err) // constant accuracy: cannot fail
	}
	lo, hi := m.Index(sketchMinSeconds), m.Index(sketchMaxSeconds)
	return &latencyMapping{m: m, offset: lo, n: hi - lo + 1}
}

func (lm *latencyMapping) bucket(seconds float64) int {
	if !(seconds > sketchMinSeconds) { // also catches NaN
		return 0
	}
	if seconds >= sketchMaxSeconds {
		return lm.n - 1
	}
	i := lm.m.Index(seconds) - lm.offset
	return min(max(i, 0), lm.n-1)
}

// window is one second of one version's traffic. Counters are atomic, so
// recording takes no lock; the mutex only serialises the reset when the ring
// wraps round to a new second.
type window struct {
	sec       atomic.Int64
	requests  atomic.Int64
	errors    atomic.Int64
	generated atomic.Int64
	mu        sync.Mutex
	buckets   []atomic.Uint32
}

// stats is a ring of one-second windows.
type stats struct {
	lm    *latencyMapping
	slots [windowSlots]window
}

func newStats(lm *latencyMapping) *stats {
	s := &stats{lm: lm}
	for i := range s.slots {
		s.slots[i].sec.Store(math.MinInt64)
	}
	return s
}

// record adds one request that ended at now (unix seconds) and took d.
func (s *stats) record(nowSec int64, d time.Duration, isErr bool) {
	w := &s.slots[uint64(nowSec)%windowSlots]
	if cur := w.sec.Load(); cur != nowSec {
		if cur > nowSec {
			// A request that ended a ring's length ago and was descheduled
			// since: its second is gone, drop it rather than corrupt a newer one.
			return
		}
		w.mu.Lock()
		if w.sec.Load() < nowSec {
			w.requests.Store(0)
			w.errors.Store(0)
			w.generated.Store(0)
			if w.buckets == nil {
				w.buckets = make([]atomic.Uint32, s.lm.n)
			}
			for i := range w.buckets {
				w.buckets[i].Store(0)
			}
			// Publish the second only after zeroing: a recorder that sees
			// nowSec knows the window is fresh.
			w.sec.Store(nowSec)
		}
		w.mu.Unlock()
	}
	w.requests.Add(1)
	if isErr {
		w.errors.Add(1)
	}
	w.buckets[s.lm.bucket(d.Seconds())].Add(1)
}

// markGenerated counts, in the window of nowSec, that the request record
// just added was the load generator's.
func (s *stats) markGenerated(nowSec int64) {
	if w := &s.slots[uint64(nowSec)%windowSlots]; w.sec.Load() == nowSec {
		w.generated.Add(1)
	}
}

// sample merges the windows of the last d ending at now (the current,
// partial second included).
func (s *stats) sample(nowSec int64, d time.Duration) Sample {
	sk := ddsketch.NewDDSketch(s.lm.m, store.NewDenseStore(), store.NewDenseStore())
	out := Sample{Latency: sk}
	if d <= 0 {
		return out
	}
	d = min(d, windowMaxDuration)
	n := int64((d + time.Second - 1) / time.Second)
	out.Since = time.Unix(nowSec-n+1, 0)
	for sec := nowSec - n + 1; sec <= nowSec; sec++ {
		w := &s.slots[uint64(sec)%windowSlots]
		if w.sec.Load() != sec {
			continue
		}
		out.Requests += w.requests.Load()
		out.Errors += w.errors.Load()
		out.Generated += w.generated.Load()
		for i := range w.buckets {
			if c := w.buckets[i].Load(); c != 0 {
				_ = sk.AddWithCount(s.lm.m.Value(i+s.lm.offset), float64(c))
			}
		}
	}
	return out
}

// second returns the window of one second, and whether the ring still holds it.
func (s *stats) second(sec int64) (Sample, bool) {
	w := &s.slots[uint64(sec)%windowSlots]
	if w.sec.Load() != sec {
		return Sample{}, false
	}
	sk := ddsketch.NewDDSketch(s.lm.m, store.NewDenseStore(), store.NewDenseStore())
	out := Sample{Latency: sk, Since: time.Unix(sec, 0),
		Requests: w.requests.Load(), Errors: w.errors.Load(), Generated: w.generated.Load()}
	for i := range w.buckets {
		if c := w.buckets[i].Load(); c != 0 {
			_ = sk.AddWithCount(s.lm.m.Value(i+s.lm.offset), float64(c))
		}
	}
	if w.sec.Load() != sec { // the ring wrapped round while we read
		return Sample{}, false
	}
	return out, true
}
