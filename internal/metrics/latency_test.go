package metrics

import (
	"math"
	"testing"
)

func TestLatencyBuckets(t *testing.T) {
	b := NewLatencyBuckets()
	if n := b.Len(); n < 600 || n > 700 {
		t.Errorf("Len() = %d, want about 650 buckets", n)
	}
	tests := []struct {
		seconds float64
		want    int
	}{
		{math.NaN(), 0}, {-1, 0}, {0, 0}, {LatencyMinSeconds, 0}, {LatencyMaxSeconds, b.Len() - 1}, {1e9, b.Len() - 1},
	}
	for _, tt := range tests {
		if got := b.Bucket(tt.seconds); got != tt.want {
			t.Errorf("Bucket(%v) = %d, want %d", tt.seconds, got, tt.want)
		}
	}
	sk := b.NewSketch()
	for _, s := range []float64{0.001, 0.002, 0.004, 0.5} {
		b.Add(sk, b.Bucket(s), 1)
	}
	q, err := sk.GetValueAtQuantile(0.5)
	if err != nil || math.Abs(q-0.002)/0.002 > LatencyAccuracy*2 {
		t.Errorf("median = %v, %v; want 2ms within the accuracy", q, err)
	}
}
