package sim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/analysis/sequential"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func TestPoisson(t *testing.T) {
	for _, lam := range []float64{0.5, 3, 9.9, 10, 100, 1000} {
		rng := rand.New(rand.NewPCG(1, uint64(lam*10)))
		p := newPoisson(lam)
		const n = 200000
		var sum, sq float64
		for range n {
			k := float64(p.draw(rng))
			sum += k
			sq += k * k
		}
		mean := sum / n
		v := sq/n - mean*mean
		// Five standard errors of the mean; the variance within 3%.
		if math.Abs(mean-lam) > 5*math.Sqrt(lam/n) || math.Abs(v/lam-1) > 0.03 {
			t.Errorf("Poisson(%g): mean %g, variance %g; want both %g", lam, mean, v, lam)
		}
	}
}

// TestTrafficMatchesScenario: the drawn traffic has the scenario's rate,
// error rates, latency quantiles and split.
func TestTrafficMatchesScenario(t *testing.T) {
	svc := DesignService()
	sc := Slow(svc)
	sc.Canary.ErrorRate = 0.05
	tr := newTraffic(sc, 7, 8)
	var c, s, ca, sa window
	ca.reset()
	sa.reset()
	const seconds = 2000
	for range seconds {
		tr.second(0.2, &c, &s)
		ca.merge(&c)
		sa.merge(&s)
	}
	total := float64(ca.requests + sa.requests)
	if math.Abs(total/seconds-svc.Rate) > 1 {
		t.Errorf("rate %g, want %g", total/seconds, svc.Rate)
	}
	if share := float64(ca.requests) / total; math.Abs(share-0.2) > 0.005 {
		t.Errorf("canary share %g, want 0.2", share)
	}
	if r := float64(ca.errors) / float64(ca.requests); math.Abs(r-0.05) > 0.004 {
		t.Errorf("canary error rate %g, want 0.05", r)
	}
	if r := float64(sa.errors) / float64(sa.requests); math.Abs(r-0.001) > 0.0005 {
		t.Errorf("stable error rate %g, want 0.001", r)
	}
	if r := float64(ca.slowed) / float64(ca.requests); math.Abs(r-0.02) > 0.003 || sa.slowed != 0 {
		t.Errorf("slowed: canary %g (want 0.02), stable %d (want 0)", r, sa.slowed)
	}
	near := func(got, want time.Duration) bool { return math.Abs(float64(got)/float64(want)-1) < 0.05 }
	for _, x := range []struct {
		w    *window
		q    float64
		want time.Duration
	}{
		{&sa, 0.5, 100 * time.Millisecond}, {&sa, 0.99, 400 * time.Millisecond},
		{&ca, 0.5, 100 * time.Millisecond}, {&ca, 0.99, 600 * time.Millisecond},
	} {
		if got := x.w.quantile(x.q); !near(got, x.want) {
			t.Errorf("quantile %g = %s, want %s", x.q, got, x.want)
		}
	}
	win := sa.Window()
	if !slices.IsSortedFunc(win.Latency, func(a, b sequential.Bucket) int { return int(a.Index - b.Index) }) {
		t.Errorf("latency buckets not sorted")
	}
	var n int64
	for _, b := range win.Latency {
		n += b.Count
	}
	if n != win.Requests {
		t.Errorf("buckets hold %d requests, window %d", n, win.Requests)
	}
}

// TestSameRequests: one seed gives the same requests whatever the judge:
// their count and their latencies as the weights route them.
func TestSameRequests(t *testing.T) {
	sc := Good(DesignService())
	a, b := newTraffic(sc, 3, 4), newTraffic(sc, 3, 4)
	var c1, s1, c2, s2 window
	for range 100 {
		a.second(0.1, &c1, &s1)
		b.second(0.7, &c2, &s2)
		if c1.requests+s1.requests != c2.requests+s2.requests {
			t.Fatalf("the same second holds %d requests at 10%% and %d at 70%%", c1.requests+s1.requests, c2.requests+s2.requests)
		}
	}
}

func TestDeterministic(t *testing.T) {
	pols, err := TablePolicies()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pols {
		a, err := Runs(Slow(DesignService()), p.Policy, 6, 42)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Runs(Slow(DesignService()), p.Policy, 6, 42)
		if !slices.Equal(a, b) {
			t.Errorf("%s: two runs with seed 42 differ:\n%v\n%v", p.Name, a, b)
		}
	}
}

// fill puts n requests of 100 ms into w, failed of them failed.
func fill(w *window, n, failed int) {
	w.reset()
	for i := range n {
		w.add(i < failed, false, math.Log(0.1))
	}
}

// drive runs a controller on windows where the canary's requests in the
// j-th minute (j from 1) fail half the time when fail(j); it returns the
// decision, its second and the weights the canary had at each minute.
func drive(t *testing.T, c controller, fail func(j int) bool) (decision, int64, []int) {
	t.Helper()
	var cw, sw window
	var weights []int
	for s := int64(0); s < 3600; s++ {
		if d, ok := c.at(s); ok {
			return d, s, weights
		}
		if s%60 == 0 {
			weights = append(weights, c.weight())
		}
		failed := 0
		if fail(int(s/60) + 1) {
			failed = 50
		}
		fill(&cw, 100, failed)
		fill(&sw, 100, 0)
		c.feed(s, &cw, &sw)
	}
	t.Fatal("no decision in an hour")
	return decision{}, 0, nil
}

// pattern is pass/fail by minute, from minute 1; later minutes pass.
func pattern(p string) func(int) bool {
	return func(j int) bool { return j <= len(p) && p[j-1] == 'F' }
}

// TestFlaggerSemantics: Flagger's scheduler, interval 1m, threshold 5,
// stepWeight 10, maxWeight 50: failed checks are never reset; the
// threshold-th rolls back at the next run; promotion on the check that
// passes at maxWeight.
func TestFlaggerSemantics(t *testing.T) {
	for _, c := range []struct {
		name    string
		pattern string
		want    Result
		at      int64
		weights []int
	}{
		{"all pass", "", Promote, 300, []int{10, 20, 30, 40, 50}},
		{"all fail", "FFFFFFFFFF", Rollback, 360, []int{10, 10, 10, 10, 10, 10}},
		{"failures never reset", "FPFPFPFPF", Rollback, 600, []int{10, 10, 20, 20, 30, 30, 40, 40, 50, 50}},
		{"four failures then passes", "FFFF", Promote, 540, []int{10, 10, 10, 10, 10, 20, 30, 40, 50}},
		{"a failure at maxWeight holds", "PPPPF", Promote, 360, []int{10, 20, 30, 40, 50, 50}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fc, err := Policy{Judge: JudgeFlagger, Flagger: FlaggerDefaults()}.controller(Good(DesignService()), 1)
			if err != nil {
				t.Fatal(err)
			}
			d, at, weights := drive(t, fc, pattern(c.pattern))
			if d.result != c.want || at != c.at || !slices.Equal(weights, c.weights) {
				t.Errorf("%s at %d s, weights %v; want %s at %d s, weights %v", d.result, at, weights, c.want, c.at, c.weights)
			}
		})
	}
}

// TestThresholdSemantics: Switchyard's checks on the same steps: the
// threshold-th failed check rolls back at once; a pause ends on a check
// measured at its weight.
func TestThresholdSemantics(t *testing.T) {
	p, _, err := PolicyFor(TableService(spec.JudgeThresholds), rollout.StrategyCanary)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		pattern string
		want    Result
		at      int64
		weights []int
	}{
		{"all pass", "", Promote, 300, []int{10, 20, 30, 40, 50}},
		{"all fail", "FFFFFFFFFF", Rollback, 300, []int{10, 10, 10, 10, 10}},
		{"failures never reset", "FPFPFPFPF", Rollback, 540, []int{10, 10, 20, 20, 30, 30, 40, 40, 50}},
		{"four failures then passes", "FFFF", Promote, 540, []int{10, 10, 10, 10, 10, 20, 30, 40, 50}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc, err := p.controller(Good(DesignService()), 1)
			if err != nil {
				t.Fatal(err)
			}
			d, at, weights := drive(t, tc, pattern(c.pattern))
			if d.result != c.want || at != c.at || !slices.Equal(weights, c.weights) {
				t.Errorf("%s at %d s, weights %v; want %s at %d s, weights %v", d.result, at, weights, c.want, c.at, c.weights)
			}
		})
	}
}

// TestSequentialRamp: the weight follows the steps while no test fired;
// when the steps run out the rollout holds at the last weight; maxDuration
// then holds for a person (no decision).
func TestSequentialRamp(t *testing.T) {
	p, _, err := PolicyFor(TableService(spec.JudgeSequential), rollout.StrategyCanary)
	if err != nil {
		t.Fatal(err)
	}
	p.Sequential.NoPromotion = true
	p.Sequential.MaxDuration = 3 * time.Minute
	c, err := p.controller(Good(DesignService()), 1)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTraffic(Good(DesignService()), 1, 2)
	var cw, sw window
	var weights []int
	for s := int64(0); s < 3600; s++ {
		if d, ok := c.at(s); ok {
			if d.result != None || s != 180 {
				t.Fatalf("%s (%s) at %d s; want no decision at 180 s (maxDuration)", d.result, d.reason, s)
			}
			break
		}
		if s%30 == 0 {
			weights = append(weights, c.weight())
		}
		tr.second(float64(c.weight())/100, &cw, &sw)
		c.feed(s, &cw, &sw)
	}
	if want := []int{5, 10, 20, 50, 50, 50}; !slices.Equal(weights, want) {
		t.Errorf("weights every 30 s %v, want %v", weights, want)
	}
}

// TestSequentialBlueGreen: the judge starts at the switch and watches the
// bake; a good version is promoted by it during the bake, a bad one rolled
// back within a minute.
func TestSequentialBlueGreen(t *testing.T) {
	svc := TableService(spec.JudgeSequential)
	svc.Spec.Strategy = spec.Strategy{BlueGreen: &spec.BlueGreen{PreviewDuration: spec.D(time.Minute), BakeDuration: spec.D(10 * time.Minute)}}
	svc.Default()
	p, _, err := PolicyFor(svc, rollout.StrategyBlueGreen)
	if err != nil {
		t.Fatal(err)
	}
	good, err := Run(Good(DesignService()), p, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A judged bake ends on the judge's promotion, not on the clock: after
	// the switch (1m) and minExposure, within the bake's 10 minutes.
	if good.Result != Promote || good.At < 2*time.Minute || good.At > 11*time.Minute {
		t.Errorf("good: %+v; want promoted by the judge during the bake", good)
	}
	bad, _ := Run(Bad(DesignService()), p, 1)
	if bad.Result != Rollback || bad.At <= time.Minute || bad.At > 2*time.Minute {
		t.Errorf("bad: %+v; want rolled back within a minute of the switch", bad)
	}
}
