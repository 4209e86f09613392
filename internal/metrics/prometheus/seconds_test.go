package prometheus

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
	"github.com/switchyard/switchyard/internal/spec"
)

func pts(start int64, vs ...float64) []point {
	out := make([]point, 0, len(vs))
	for i, v := range vs {
		if v < 0 { // a missing point
			continue
		}
		out = append(out, point{unix: start + int64(i), v: v})
	}
	return out
}

// TestIncrements: a counter's points become per-second increments after
// the second asked for, each request counted once: a reset counts the new
// value, a missing point moves its increment to the next point, and a
// series that starts inside the range is a new counter counted from zero.
func TestIncrements(t *testing.T) {
	tests := []struct {
		name  string
		pts   []point
		after int64
		want  map[int64]float64
	}{
		{name: "steady", pts: pts(100, 5, 7, 7, 10), after: 100, want: map[int64]float64{101: 2, 103: 3}},
		{name: "points before after are the base", pts: pts(97, 1, 2, 5, 7, 8), after: 100, want: map[int64]float64{101: 1}},
		{name: "reset", pts: pts(100, 50, 60, 4, 9), after: 100, want: map[int64]float64{101: 10, 102: 4, 103: 5}},
		{name: "reset to zero", pts: pts(100, 50, 0, 3), after: 100, want: map[int64]float64{102: 3}},
		{name: "missing points", pts: pts(100, 10, -1, -1, 16, 17), after: 100, want: map[int64]float64{103: 6, 104: 1}},
		{name: "missing base", pts: pts(100, -1, -1, 4, 6), after: 101, want: map[int64]float64{102: 4, 103: 2}},
		{name: "new series", pts: pts(103, 2, 5), after: 100, want: map[int64]float64{103: 2, 104: 3}},
		{name: "NaN skipped", pts: []point{{100, 1}, {101, math.NaN()}, {102, 4}}, after: 100, want: map[int64]float64{102: 3}},
		{name: "nothing after", pts: pts(95, 1, 2, 3), after: 100, want: map[int64]float64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[int64]float64{}
			increments(tc.pts, tc.after, got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("increments(%v, %d) = %v, want %v", tc.pts, tc.after, got, tc.want)
			}
		})
	}
}

// TestVersionSeconds: a version's series are summed by second, and its
// histogram buckets (differenced per le) become the second's sketch, in
// seconds whatever the le unit.
func TestVersionSeconds(t *testing.T) {
	s := (&Querier{}).SecondSource(spec.SequentialPrometheus{DurationUnit: spec.DurationMilliseconds}, "stable")
	requests := []series{{points: pts(100, 10, 20, 20, 25)}, {points: pts(100, 0, 5, 2)}} // the second pod restarts at 102
	errs := []series{{points: pts(100, 1, 2)}}
	buckets := []series{
		// 101: 9 fast (≤ 10ms), 1 at ≤ 100ms; 103: 5 slow (> 1s)
		{le: "10", points: pts(100, 0, 9, 9, 9)},
		{le: "100", points: pts(100, 0, 10, 10, 10)},
		{le: "1000", points: pts(100, 0, 10, 10, 10)},
		{le: "+Inf", points: pts(100, 0, 10, 10, 15)},
	}
	got, last := s.version(requests, errs, buckets, 100)
	if last != 103 {
		t.Errorf("last = %d, want 103", last)
	}
	want := []struct {
		unix             int64
		requests, errors int64
		count            float64
		p50, max         time.Duration
	}{
		{unix: 101, requests: 15, errors: 1, count: 10, p50: 10 * time.Millisecond, max: 100 * time.Millisecond},
		{unix: 102, requests: 2},
		{unix: 103, requests: 5, count: 5, p50: time.Second, max: time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("version = %+v, want %d seconds", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Unix != w.unix || g.Requests != w.requests || g.Errors != w.errors {
			t.Errorf("second %d = {%d %d req %d err}, want {%d %d req %d err}", i, g.Unix, g.Requests, g.Errors, w.unix, w.requests, w.errors)
		}
		if w.count == 0 {
			if g.Latency != nil {
				t.Errorf("second %d: latency %v, want none", g.Unix, g.Latency.GetCount())
			}
			continue
		}
		if g.Latency == nil || g.Latency.GetCount() != w.count {
			t.Fatalf("second %d: latency sketch %v, want %v requests", g.Unix, g.Latency, w.count)
		}
		near := func(a, b time.Duration) bool { return math.Abs(float64(a-b)) <= 0.02*float64(b) }
		if p := g.Quantile(0.5); !near(p, w.p50) {
			t.Errorf("second %d: p50 %v, want %v", g.Unix, p, w.p50)
		}
		if p := g.Quantile(1); !near(p, w.max) {
			t.Errorf("second %d: max %v, want %v", g.Unix, p, w.max)
		}
	}
	var _ metrics.SecondSource = s
}
