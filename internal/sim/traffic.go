// Package sim simulates rollouts on synthetic traffic, to compare judges:
// the sequential judge (internal/analysis/sequential) on Switchyard's ramp,
// Switchyard's threshold checks, and Flagger's threshold checks, each fed
// the same requests. It is pure and deterministic: a seed decides every
// request, and no clock is read. `switchyard plan` and the table in
// docs/judge.md come from here.
//
// Traffic is a Poisson stream of Rate requests a second. Each request is
// routed to the canary with the weight in force (an independent draw per
// request, as the proxy's weighted split does), fails with its version's
// error rate and takes a log-normal latency, which a canary scenario may
// lengthen; each second's requests are aggregated per version into a
// sequential.Window exactly as the proxy reports one (requests, errors,
// latencies by the proxy's 1.5% logarithmic buckets).
//
// Every request draws the same random numbers whatever its routing (route,
// error, latency), so two judges run with one seed see the same requests:
// where they route one differently, it is the same request served by the
// other version.
package sim

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/analysis/sequential"
)

// z99 is the standard normal's 0.99 quantile.
const z99 = 2.3263478740408408

// Service is the stable version's traffic: the rate and how its requests
// fail and take time.
type Service struct {
	// Rate is the requests a second (all versions together).
	Rate float64
	// ErrorRate is the stable version's share of failed requests (0..1).
	ErrorRate float64
	// Median and P99 define the log-normal latency of the stable version.
	Median, P99 time.Duration
}

// Canary is how the new version differs from the stable one.
type Canary struct {
	// ErrorRate is the canary's share of failed requests (0..1).
	ErrorRate float64
	// SlowAbove and SlowAdd model a tail regression: a canary request
	// that would have taken longer than SlowAbove (as the stable version
	// serves it) takes SlowAdd more. Such a request is "slowed".
	SlowAbove time.Duration
	SlowAdd   time.Duration
}

// Scenario is one simulated case: the service and the canary.
type Scenario struct {
	Name    string
	Service Service
	Canary  Canary
	// Bad says whether the right decision is a rollback.
	Bad bool
}

// Quantile returns the stable latency distribution's q-quantile.
func (s Service) Quantile(q float64) time.Duration {
	return time.Duration(float64(s.Median) * math.Exp(s.sigma()*normalQuantile(q)))
}

// sigma is the log-normal's shape: ln(p99/median) / z(0.99).
func (s Service) sigma() float64 {
	if s.P99 <= s.Median || s.Median <= 0 {
		return 0
	}
	return math.Log(float64(s.P99)/float64(s.Median)) / z99
}

// normalQuantile is the standard normal quantile function (by bisection
// on math.Erf: only used to describe scenarios, never per request).
func normalQuantile(q float64) float64 {
	lo, hi := -10.0, 10.0
	for range 100 {
		m := (lo + hi) / 2
		if 0.5*(1+math.Erf(m/math.Sqrt2)) < q {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}

// Bucket indices of the proxy's mapping, in a dense array: BucketOf of
// 10 µs is about -383 and of 100 s about +153.
const (
	bucketOffset = 512
	bucketSpan   = 1024
)

// window aggregates one version's requests of one second (or a longer
// window) without allocating per request.
type window struct {
	requests, errors, slowed int64
	// pushed counts the slowed requests that the added latency took from
	// at or below stable's p99 to above it.
	pushed int64
	counts [bucketSpan]int64
	lo, hi int // touched range of counts, lo > hi when empty
	out    []sequential.Bucket
}

func (w *window) reset() {
	for i := w.lo; i <= w.hi; i++ {
		w.counts[i] = 0
	}
	w.requests, w.errors, w.slowed, w.pushed = 0, 0, 0, 0
	w.lo, w.hi = bucketSpan, -1
}

// add counts one request whose latency is exp(lnSeconds) seconds.
func (w *window) add(failed, slowed bool, lnSeconds float64) {
	w.requests++
	if failed {
		w.errors++
	}
	if slowed {
		w.slowed++
	}
	i := bucketOfLog(lnSeconds) + bucketOffset
	w.counts[i]++
	w.lo, w.hi = min(w.lo, i), max(w.hi, i)
}

// buckets is, for every bucket index of the dense range from the lowest
// one BucketOf returns (its floor, 10 µs), the natural log (of seconds) at
// which sequential.BucketOf starts returning it: found once by bisection
// on BucketOf itself, so the buckets are the proxy's exactly, and a
// request's bucket costs no exp or log. The mapping is logarithmic, so the
// boundaries are evenly spaced and a linear guess is at most a bucket off.
type bucketTable struct {
	lowest int // the lowest index, bucketOffset-based
	bound  [bucketSpan + 1]float64
}

var buckets = sync.OnceValue(func() *bucketTable {
	var t bucketTable
	of := func(x float64) int {
		return int(sequential.BucketOf(time.Duration(math.Exp(x)*float64(time.Second)))) + bucketOffset
	}
	t.lowest = of(-40)
	for k := t.lowest + 1; k <= bucketSpan; k++ {
		lo, hi := -40.0, 40.0 // log-seconds, far beyond the dense range
		for range 80 {
			m := (lo + hi) / 2
			if of(m) >= k {
				hi = m
			} else {
				lo = m
			}
		}
		t.bound[k] = hi
	}
	return &t
})

// bucketOfLog returns sequential.BucketOf(exp(x) seconds), clamped to the
// dense range.
func bucketOfLog(x float64) int {
	t := buckets()
	first, last := t.bound[t.lowest+1], t.bound[bucketSpan-1]
	switch {
	case x < first:
		return t.lowest - bucketOffset
	case x >= last:
		return bucketSpan - 1 - bucketOffset
	}
	k := t.lowest + 1 + int((x-first)/(last-first)*float64(bucketSpan-2-t.lowest))
	for x < t.bound[k] {
		k--
	}
	for x >= t.bound[k+1] {
		k++
	}
	return k - bucketOffset
}

// merge adds another window's counts (threshold checks accumulate their
// interval from seconds).
func (w *window) merge(o *window) {
	w.requests += o.requests
	w.errors += o.errors
	w.slowed += o.slowed
	w.pushed += o.pushed
	for i := o.lo; i <= o.hi; i++ {
		w.counts[i] += o.counts[i]
	}
	if o.lo <= o.hi {
		w.lo, w.hi = min(w.lo, o.lo), max(w.hi, o.hi)
	}
}

// Window returns the window as the proxy reports it. The latency slice is
// reused by the next call.
func (w *window) Window() sequential.Window {
	w.out = w.out[:0]
	for i := w.lo; i <= w.hi; i++ {
		if c := w.counts[i]; c > 0 {
			w.out = append(w.out, sequential.Bucket{Index: int32(i - bucketOffset), Count: c})
		}
	}
	return sequential.Window{Requests: w.requests, Errors: w.errors, Latency: w.out}
}

// quantile returns the latency at quantile q as a DDSketch answers it
// (the bucket holding rank q·(n−1)), as the proxy's windows do; 0 when
// empty.
func (w *window) quantile(q float64) time.Duration {
	if w.requests == 0 {
		return 0
	}
	rank := q * float64(w.requests-1)
	var seen int64
	for i := w.lo; i <= w.hi; i++ {
		seen += w.counts[i]
		if float64(seen) > rank {
			return sequential.BucketValue(int32(i - bucketOffset))
		}
	}
	return sequential.BucketValue(int32(w.hi - bucketOffset))
}

// traffic draws the requests of a scenario, second by second.
type traffic struct {
	rng        *rand.Rand
	sc         Scenario
	mu, sigma  float64 // of the latency in seconds
	slowAbove  float64 // log-seconds
	slowAdd    float64 // seconds
	lnP99      float64 // stable's p99, log-seconds
	poissonTab poisson
}

func newTraffic(sc Scenario, seed1, seed2 uint64) *traffic {
	return &traffic{
		rng:        rand.New(rand.NewPCG(seed1, seed2)),
		sc:         sc,
		mu:         math.Log(sc.Service.Median.Seconds()),
		sigma:      sc.Service.sigma(),
		slowAbove:  math.Log(max(sc.Canary.SlowAbove.Seconds(), 1e-9)),
		slowAdd:    sc.Canary.SlowAdd.Seconds(),
		lnP99:      math.Log(max(sc.Service.P99.Seconds(), 1e-9)),
		poissonTab: newPoisson(sc.Service.Rate),
	}
}

// second draws one second of traffic with the canary's share weight
// (0..1) into c and s, which it resets first.
func (t *traffic) second(weight float64, c, s *window) {
	c.reset()
	s.reset()
	t.fill(t.poissonTab.draw(t.rng), weight, c, s)
}

// fill draws n requests.
func (t *traffic) fill(n int64, weight float64, c, s *window) {
	se, ce := t.sc.Service.ErrorRate, t.sc.Canary.ErrorRate
	for range n {
		route, fail := t.rng.Float64(), t.rng.Float64()
		lat := t.mu + t.sigma*t.rng.NormFloat64() // log-seconds
		if route < weight {
			slowed := t.slowAdd > 0 && lat > t.slowAbove
			if slowed {
				was := lat
				lat = math.Log(math.Exp(lat) + t.slowAdd)
				if was <= t.lnP99 && lat > t.lnP99 {
					c.pushed++
				}
			}
			c.add(fail < ce, slowed, lat)
			continue
		}
		s.add(fail < se, false, lat)
	}
}

// baseline draws d of stable-only traffic into w: what the proxy saw of
// the stable version before the rollout.
func (t *traffic) baseline(d time.Duration, w *window) {
	w.reset()
	var none window
	none.reset()
	n := int64(0)
	for range int64(d / time.Second) {
		n += t.poissonTab.draw(t.rng)
	}
	t.fill(n, 0, &none, w)
}

// poisson draws Poisson counts of a fixed mean: by multiplication of
// uniforms for small means, by Hörmann's transformed rejection (PTRS,
// "The transformed rejection method for generating Poisson random
// variables", 1993) above.
type poisson struct {
	lam, expNeg, slam, loglam, a, b, invAlpha, vr float64
}

func newPoisson(lam float64) poisson {
	p := poisson{lam: lam, expNeg: math.Exp(-lam)}
	if lam >= 10 {
		p.slam, p.loglam = math.Sqrt(lam), math.Log(lam)
		p.b = 0.931 + 2.53*p.slam
		p.a = -0.059 + 0.02483*p.b
		p.invAlpha = 1.1239 + 1.1328/(p.b-3.4)
		p.vr = 0.9277 - 3.6224/(p.b-2)
	}
	return p
}

func (p poisson) draw(rng *rand.Rand) int64 {
	switch {
	case p.lam <= 0:
		return 0
	case p.lam < 10:
		k, prod := int64(0), rng.Float64()
		for prod > p.expNeg {
			k++
			prod *= rng.Float64()
		}
		return k
	}
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*p.a/us+p.b)*u + p.lam + 0.43)
		if us >= 0.07 && v <= p.vr {
			return int64(k)
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(p.invAlpha)-math.Log(p.a/(us*us)+p.b) <= -p.lam+k*p.loglam-lg {
			return int64(k)
		}
	}
}
