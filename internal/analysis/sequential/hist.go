package sequential

import (
	"slices"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
)

// Latencies are compared by bucket of the logarithmic mapping the proxy's
// windows use (1.5% relative accuracy, in seconds): a threshold is a bucket,
// "slower than the threshold" is "in a higher bucket", for every version
// alike, so the tests are exact for the bucketed latencies.
var latencyMapping = func() *mapping.LogarithmicMapping {
	m, err := mapping.NewLogarithmicMapping(0.015)
	if err != nil {
		panic(err)
	}
	return m
}()

// BucketOf returns the bucket of a latency.
func BucketOf(d time.Duration) int32 {
	return int32(latencyMapping.Index(max(d.Seconds(), 1e-5)))
}

// BucketValue returns the latency a bucket stands for.
func BucketValue(i int32) time.Duration {
	return time.Duration(latencyMapping.Value(int(i)) * float64(time.Second))
}

// Bucket is how many requests took a latency of one bucket.
type Bucket struct {
	Index int32 `json:"i"`
	Count int64 `json:"n"`
}

// Window is one version's traffic over one second (or, for a baseline,
// over a longer window): requests, errors (what counts as an error is the
// source's definition: 5xx, connect failures, resets, timeouts) and
// latencies by bucket, sorted by index.
type Window struct {
	Requests int64    `json:"requests"`
	Errors   int64    `json:"errors"`
	Latency  []Bucket `json:"latency,omitempty"`
}

// FromSketch lists a latency sketch (seconds, the proxy's mapping) by
// bucket.
func FromSketch(sk *ddsketch.DDSketch) []Bucket {
	if sk == nil || sk.IsEmpty() {
		return nil
	}
	var out []Bucket
	sk.ForEach(func(value, count float64) bool {
		if n := int64(count + 0.5); n > 0 {
			out = append(out, Bucket{Index: int32(latencyMapping.Index(value)), Count: n})
		}
		return false
	})
	slices.SortFunc(out, func(a, b Bucket) int { return int(a.Index - b.Index) })
	// Merge equal indices (a sketch's value maps back to its own bucket,
	// but be safe against a coarser sketch).
	j := 0
	for i := range out {
		if j > 0 && out[j-1].Index == out[i].Index {
			out[j-1].Count += out[i].Count
			continue
		}
		out[j] = out[i]
		j++
	}
	return out[:j]
}

// above counts the requests of w in buckets above idx.
func above(b []Bucket, idx int32) int64 {
	var n int64
	for i := len(b) - 1; i >= 0 && b[i].Index > idx; i-- {
		n += b[i].Count
	}
	return n
}

// hist is a dense count of buckets Lo .. Lo+len(C)-1: a version's whole
// latency distribution so far.
type hist struct {
	Lo int32   `json:"lo"`
	C  []int64 `json:"c,omitempty"`
	N  int64   `json:"n"`
}

func (h *hist) add(b []Bucket) {
	if len(b) == 0 {
		return
	}
	lo, hi := b[0].Index, b[len(b)-1].Index
	if len(h.C) == 0 {
		h.Lo = lo
	}
	if lo < h.Lo {
		h.C = append(make([]int64, h.Lo-lo), h.C...)
		h.Lo = lo
	}
	if need := int(hi-h.Lo) + 1; need > len(h.C) {
		h.C = append(h.C, make([]int64, need-len(h.C))...)
	}
	for _, x := range b {
		h.C[x.Index-h.Lo] += x.Count
		h.N += x.Count
	}
}

// order returns the bucket of the k-th smallest latency (1-based).
func (h *hist) order(k int64) int32 {
	if 2*k > h.N { // nearer the top: count from there
		r := h.N - k
		for i := len(h.C) - 1; i >= 0; i-- {
			if r -= h.C[i]; r < 0 {
				return h.Lo + int32(i)
			}
		}
		return h.Lo
	}
	for i, c := range h.C {
		if k -= c; k <= 0 {
			return h.Lo + int32(i)
		}
	}
	return h.Lo + int32(len(h.C)) - 1
}

// quantile returns the bucket of the empirical q-quantile.
func (h *hist) quantile(q float64) int32 {
	k := int64(q*float64(h.N)) + 1
	return h.order(min(max(k, 1), h.N))
}

// above counts the latencies in buckets above idx.
func (h *hist) above(idx int32) int64 {
	var n int64
	for i := len(h.C) - 1; i >= 0 && h.Lo+int32(i) > idx; i-- {
		n += h.C[i]
	}
	return n
}

// buckets lists h sparsely.
func (h *hist) buckets() []Bucket {
	var out []Bucket
	for i, c := range h.C {
		if c > 0 {
			out = append(out, Bucket{Index: h.Lo + int32(i), Count: c})
		}
	}
	return out
}

// Add merges o into w.
func (w *Window) Add(o Window) {
	w.Requests += o.Requests
	w.Errors += o.Errors
	if len(o.Latency) == 0 {
		return
	}
	out := make([]Bucket, 0, len(w.Latency)+len(o.Latency))
	a, b := w.Latency, o.Latency
	for len(a) > 0 || len(b) > 0 {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0].Index < b[0].Index:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0].Index < a[0].Index:
			out, b = append(out, b[0]), b[1:]
		default:
			out = append(out, Bucket{Index: a[0].Index, Count: a[0].Count + b[0].Count})
			a, b = a[1:], b[1:]
		}
	}
	w.Latency = out
}
