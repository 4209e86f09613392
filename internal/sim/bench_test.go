package sim

import (
	"math"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/analysis/sequential"
)

// BenchmarkBaseline is the 30 minutes of stable traffic every sequential
// run starts from (180,000 requests at 100 req/s).
func BenchmarkBaseline(b *testing.B) {
	b.ReportAllocs()
	tr := newTraffic(Good(DesignService()), 1, 2)
	var w window
	for b.Loop() {
		tr.baseline(30*time.Minute, &w)
	}
}

// BenchmarkRunSequential is one run of the sequential judge on the
// table's ramp, a good canary to its promotion.
func BenchmarkRunSequential(b *testing.B) {
	b.ReportAllocs()
	pols, err := TablePolicies()
	if err != nil {
		b.Fatal(err)
	}
	p := pols[2].Policy
	seed := uint64(0)
	for b.Loop() {
		seed++
		if _, err := Run(Good(DesignService()), p, seed); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBucketOfLog: the table lookup is sequential.BucketOf.
func TestBucketOfLog(t *testing.T) {
	for x := -11.0; x < 4; x += 0.0001 {
		d := time.Duration(math.Exp(x) * float64(time.Second))
		if got, want := bucketOfLog(x), int(sequential.BucketOf(d)); got != want {
			t.Fatalf("bucketOfLog(%g) = %d, want BucketOf(%s) = %d", x, got, d, want)
		}
	}
}
