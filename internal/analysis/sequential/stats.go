package sequential

import "math"

// The statistics of the judge, each a test supermartingale or a confidence
// sequence: valid however often they are looked at.

// gridSize is K, the number of alternatives the e-processes mix over.
const gridSize = 10

// grid is the relative risks r_k = 1.25 · 1.6^(k-1), k = 1..K: from "a
// quarter worse" to about 86 times worse.
var grid = func() [gridSize]float64 {
	var g [gridSize]float64
	r := 1.25
	for k := range g {
		g[k] = r
		r *= 1.6
	}
	return g
}()

// eprocess is a mixture, with equal weights over the grid, of products of
// likelihood ratios: E = (1/K) Σ_k exp(L[k]). Each L[k] only ever adds the
// log of a factor whose expectation under the null is at most 1, so E is a
// test supermartingale and P(sup E ≥ 1/α) ≤ α (Ville).
type eprocess struct {
	L [gridSize]float64 `json:"l"`
}

// logE returns ln E by log-sum-exp.
func (e *eprocess) logE() float64 {
	m := math.Inf(-1)
	for _, l := range e.L {
		m = math.Max(m, l)
	}
	var s float64
	for _, l := range e.L {
		s += math.Exp(l - m)
	}
	return m + math.Log(s/gridSize)
}

// labels adds c bad events from the canary and s from the stable version,
// seen in one second in which the canary had share rho of the requests:
// the label test. Under "the canary's bad-event probability is at most
// tol times the stable's", each bad event is the canary's with probability
// at most θ0 = ρ·tol/(1+ρ(tol−1)); the factor of alternative k is the
// Bernoulli likelihood ratio of θk = ρ·tol·r_k/(1+ρ(tol·r_k−1)) against θ0.
//
// rho is the canary's share of the second's requests (exact counts), not
// its routing weight: given the counts, the canary's bad events are a draw
// without replacement, whose moment generating function is at most the
// binomial's (Hoeffding 1963, Theorem 4), so each factor keeps expectation
// ≤ 1 whatever the rules, stickiness or weight changes within the second.
func (e *eprocess) labels(c, s int64, rho, tol float64) {
	if c+s == 0 || rho <= 0 || rho >= 1 {
		return
	}
	theta0 := rho * tol / (1 + rho*(tol-1))
	l0c, l0s := math.Log(theta0), math.Log1p(-theta0)
	for k, r := range grid {
		rr := tol * r
		th := rho * rr / (1 + rho*(rr-1))
		e.L[k] += float64(c)*(math.Log(th)-l0c) + float64(s)*(math.Log1p(-th)-l0s)
	}
}

// rate adds n requests of which bad were bad events, against a null
// bad-event rate p0 (a frozen baseline): the one-sample test used when no
// stable version takes traffic (after a switch). The alternative k is
// p0·r_k, capped halfway between p0 and 1 (a ratio is meaningless beyond).
func (e *eprocess) rate(bad, n int64, p0 float64) {
	if n == 0 || p0 <= 0 || p0 >= 1 {
		return
	}
	good := float64(n - bad)
	for k, r := range grid {
		p := math.Min(p0*r, 0.5*(1+p0))
		if p <= p0 {
			continue
		}
		e.L[k] += float64(bad)*math.Log(p/p0) + good*(math.Log1p(-p)-math.Log1p(-p0))
	}
}

// betaBinomial is the confidence sequence of a rate from s bad events of n
// under a Beta(a, b) mixture: { p : g(p) < ln(1/α) } with
//
//	g(p) = ln B(a+s, b+n−s) − ln B(a, b) − s ln p − (n−s) ln(1−p)
//
// (the log of the mixture martingale against p). The prior changes the
// speed only, never the validity. It returns the interval's ends, found by
// bisection on each side of the minimum of the convex g.
func betaBinomial(s, n int64, a, b, alpha float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	fs, fn := float64(s), float64(n)
	c := lbeta(a+fs, b+fn-fs) - lbeta(a, b)
	g := func(p float64) float64 {
		v := c
		if s > 0 {
			v -= fs * math.Log(p)
		}
		if n > s {
			v -= (fn - fs) * math.Log1p(-p)
		}
		return v
	}
	th := math.Log(1 / alpha)
	// The maximum-likelihood estimate is always inside: a mixture of
	// likelihoods never exceeds the largest, so g(s/n) ≤ 0 < th.
	mid := fs / fn
	lo, hi = 0, 1
	if s > 0 {
		lo = bisect(g, th, 0, mid)
	}
	if s < n {
		hi = bisect(g, th, 1, mid)
	}
	return lo, hi
}

// bisect finds, between out (where g ≥ th) and in (where g < th), the
// point where g crosses th, on the side of out (conservatively wide).
func bisect(g func(float64) float64, th, out, in float64) float64 {
	for range 60 {
		m := (out + in) / 2
		if g(m) >= th {
			out = m
		} else {
			in = m
		}
	}
	return out
}

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// prior is Beta(1, 1/p0 − 1), whose mean is p0 (the baseline rate, floored
// at 1e-4 so that a perfect baseline does not make the prior degenerate).
func prior(p0 float64) (a, b float64) {
	p0 = math.Min(math.Max(p0, 1e-4), 0.5)
	return 1, 1/p0 - 1
}

// Double stitching (Howard & Ramdas 2022, Theorem 3): a bound on the
// deviation, in samples, of the empirical CDF at the p-quantile, uniform
// over time and over p. Parameters as in their reference code: delta 0.5,
// s 1.4, eta 2, and tOpt the sample size the bound is tuned for.
const (
	dsDelta = 0.5
	dsS     = 1.4
	dsEta   = 2.0
)

var (
	dsK1   = (math.Pow(dsEta, 0.25) + math.Pow(dsEta, -0.25)) / math.Sqrt2
	dsK2   = (math.Sqrt(dsEta) + 1) / 2
	dsZeta = zeta(dsS)
)

// doubleStitching returns f(p, t): with probability at least 1−α, for all
// t ≥ 1 and all p at once, at most t·p + f(p, t) of the first t samples lie
// at or below the true p-quantile. So Q(p) ≤ Q̂_t(p + f(p, t)/t), and,
// applied to 1−p, Q(p) ≥ Q̂_t(p − f(1−p, t)/t).
func doubleStitching(p, t, alpha, tOpt float64) float64 {
	tm := math.Max(t, tOpt)
	r := p
	if p < 0.5 {
		r = math.Min(0.5, expit(logit(p)+2*dsDelta*math.Sqrt(tOpt*dsEta/tm)))
	}
	sigma2 := r * (1 - r)
	j := math.Sqrt(tm/tOpt)*math.Abs(logit(p))/(2*dsDelta) + 1
	ell := dsS*math.Log(math.Log(dsEta*tm/tOpt)) + dsS*math.Log(j) +
		math.Log(2*dsZeta*(2*dsZeta+1)/(alpha*math.Pow(math.Log(dsEta), dsS)))
	cp := (1 - 2*p) / 3
	term2 := dsK2 * cp * ell
	return dsDelta*math.Sqrt(dsEta*tm*sigma2/tOpt) + math.Sqrt(dsK1*dsK1*sigma2*tm*ell+term2*term2) + term2
}

func logit(p float64) float64 { return math.Log(p / (1 - p)) }
func expit(l float64) float64 { return 1 / (1 + math.Exp(-l)) }

// zeta is the Riemann zeta function for s > 1 (Euler–Maclaurin after 20
// terms: exact to about 1e-12 for the s used here).
func zeta(s float64) float64 {
	const n = 20
	var sum float64
	for k := 1; k < n; k++ {
		sum += math.Pow(float64(k), -s)
	}
	N := float64(n)
	sum += math.Pow(N, 1-s)/(s-1) + 0.5*math.Pow(N, -s)
	// Bernoulli terms B2/2! s N^{-s-1}, B4/4! s(s+1)(s+2) N^{-s-3}, ...
	sum += s / 12 * math.Pow(N, -s-1)
	sum -= s * (s + 1) * (s + 2) / 720 * math.Pow(N, -s-3)
	sum += s * (s + 1) * (s + 2) * (s + 3) * (s + 4) / 30240 * math.Pow(N, -s-5)
	return sum
}
