package sequential

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestZeta(t *testing.T) {
	// ζ(1.4) by brute force: a million terms and the integral of the tail.
	var direct float64
	const n = 1e6
	for k := 1.0; k < n; k++ {
		direct += math.Pow(k, -1.4)
	}
	direct += math.Pow(n, -0.4)/0.4 + math.Pow(n, -1.4)/2
	for _, c := range []struct{ s, want float64 }{{2, math.Pi * math.Pi / 6}, {4, math.Pow(math.Pi, 4) / 90}, {1.4, direct}} {
		if got := zeta(c.s); math.Abs(got-c.want) > 1e-8 {
			t.Errorf("zeta(%g) = %.10f, want %.10f", c.s, got, c.want)
		}
	}
}

// TestBetaBinomialCovers: the confidence sequence contains the true rate
// at every n in at least 1−α of runs (checked after every sample).
func TestBetaBinomialCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const runs, n, p, alpha = 300, 3000, 0.01, 0.05
	a, b := prior(p)
	miss := 0
	for range runs {
		var s int64
		for i := int64(1); i <= n; i++ {
			if rng.Float64() < p {
				s++
			}
			if i%50 != 0 {
				continue
			}
			if lo, hi := betaBinomial(s, i, a, b, alpha); p < lo || p > hi {
				miss++
				break
			}
		}
	}
	if float64(miss)/runs > alpha {
		t.Fatalf("the sequence missed the true rate in %d of %d runs, more than α = %g", miss, runs, alpha)
	}
	lo, hi := betaBinomial(10, 1000, a, b, alpha)
	if !(lo > 0.002 && lo < 0.01 && hi > 0.01 && hi < 0.03) {
		t.Fatalf("10 of 1000 at α 0.05: [%g, %g], implausible", lo, hi)
	}
}

// TestQuantileBandsCover: the time-uniform bands of a quantile contain
// the true quantile at every t in at least 1−α of runs.
func TestQuantileBandsCover(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const runs, n, alpha = 200, 4000, 0.05
	miss := 0
	for range runs {
		var h hist
		for i := 1; i <= n; i++ {
			// Latencies whose buckets are exactly uniform over 0..999.
			h.add([]Bucket{{Index: int32(rng.IntN(1000)), Count: 1}})
			if i%20 != 0 {
				continue
			}
			for _, q := range []float64{0.5, 0.9, 0.99} {
				truth := int32(q * 1000)
				if lo, ok := lowerBand(&h, q, alpha/2, 1000); ok && lo > truth {
					miss++
					goto next
				}
				if hi, ok := upperBand(&h, q, alpha/2, 1000); ok && hi < truth-1 {
					miss++
					goto next
				}
			}
		}
	next:
	}
	if float64(miss)/runs > alpha {
		t.Fatalf("bands missed the true quantile in %d of %d runs, more than α = %g", miss, runs, alpha)
	}
}
