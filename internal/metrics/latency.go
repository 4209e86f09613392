package metrics

import (
	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// The latency sketch of every one-second window, whichever source made it:
// seconds, 1.5% relative accuracy (logarithmic mapping, gamma ≈ 1.0305),
// durations clamped to 10µs..1h. The built-in proxy's windows
// (internal/proxy/window.go) use the same three numbers, so sketches of
// both sources merge and the analysis reads them alike.
const (
	LatencyAccuracy   = 0.015
	LatencyMinSeconds = 1e-5
	LatencyMaxSeconds = 3600
)

// LatencyBuckets is the fixed bucket layout of a window's latency sketch:
// a window can count requests per bucket index (Bucket) in a plain array
// and turn the counts into a DDSketch (Sketch) when it is read. It is
// immutable; every window of a source shares one.
type LatencyBuckets struct {
	m      *mapping.LogarithmicMapping
	offset int
	n      int
}

// NewLatencyBuckets returns the layout of LatencyAccuracy from
// LatencyMinSeconds to LatencyMaxSeconds (about 650 buckets).
func NewLatencyBuckets() *LatencyBuckets {
	m, err := mapping.NewLogarithmicMapping(LatencyAccuracy)
	if err != nil {
		panic(err) // constant accuracy: cannot fail
	}
	lo, hi := m.Index(LatencyMinSeconds), m.Index(LatencyMaxSeconds)
	return &LatencyBuckets{m: m, offset: lo, n: hi - lo + 1}
}

// Len is the number of buckets.
func (b *LatencyBuckets) Len() int { return b.n }

// Bucket returns the bucket index (0..Len()-1) of a duration in seconds,
// clamped to the layout's range; NaN counts as the smallest.
func (b *LatencyBuckets) Bucket(seconds float64) int {
	if !(seconds > LatencyMinSeconds) { // also catches NaN
		return 0
	}
	if seconds >= LatencyMaxSeconds {
		return b.n - 1
	}
	i := b.m.Index(seconds) - b.offset
	return min(max(i, 0), b.n-1)
}

// NewSketch returns an empty sketch with the layout's mapping.
func (b *LatencyBuckets) NewSketch() *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(b.m, store.NewDenseStore(), store.NewDenseStore())
}

// Add adds count requests of bucket i to sk (a sketch from NewSketch).
func (b *LatencyBuckets) Add(sk *ddsketch.DDSketch, i int, count float64) {
	_ = sk.AddWithCount(b.m.Value(i+b.offset), count)
}
