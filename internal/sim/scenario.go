package sim

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// DesignService is the design note's service: 100 requests a second,
// 0.1% errors, log-normal latency with median 100 ms and p99 400 ms.
func DesignService() Service {
	return Service{Rate: 100, ErrorRate: 0.001, Median: 100 * time.Millisecond, P99: 400 * time.Millisecond}
}

// Bad is a canary that fails 5% of its requests.
func Bad(svc Service) Scenario {
	return Scenario{Name: "canary 5% errors", Service: svc, Canary: Canary{ErrorRate: 0.05}, Bad: true}
}

// Subtle is a canary that fails 0.6% of its requests: under a 99% success
// rate gate, and exactly the stable rate plus the default error margin
// (0.5 points) at the design note's 0.1%.
func Subtle(svc Service) Scenario {
	return Scenario{Name: "canary 0.6% errors", Service: svc, Canary: Canary{ErrorRate: 0.006}, Bad: true}
}

// Slow is a tail regression: every canary request that would take longer
// than the stable version's p98 takes 200 ms more, so the slowest 2% are
// slowed and the p99 rises by 200 ms (400 → 600 ms for DesignService).
func Slow(svc Service) Scenario {
	return Scenario{
		Name:    fmt.Sprintf("slowest 2%% +200 ms (p99 %s → %s)", ms(svc.P99), ms(svc.P99+200*time.Millisecond)),
		Service: svc, Bad: true,
		Canary: Canary{ErrorRate: svc.ErrorRate, SlowAbove: svc.Quantile(0.98), SlowAdd: 200 * time.Millisecond},
	}
}

// UnderGate is a tail regression that stays under a 500 ms p99 gate: a
// service with median 100 ms and p99 242 ms whose canary adds 200 ms to
// its slowest 2% (those above stable's p98, about 218 ms), so its p99 is
// 442 ms.
func UnderGate(svc Service) Scenario {
	svc.Median, svc.P99 = 100*time.Millisecond, 242*time.Millisecond
	s := Slow(svc)
	s.Name = "p99 242 → 442 ms (under the 500 ms gate)"
	return s
}

// Good is a canary identical to the stable version.
func Good(svc Service) Scenario {
	return Scenario{Name: "good canary", Service: svc, Canary: Canary{ErrorRate: svc.ErrorRate}}
}

// AtMargin is a canary whose error rate is the stable's plus margin
// percentage points: the worst a promotion may let through.
func AtMargin(svc Service, margin float64) Scenario {
	return Scenario{Name: fmt.Sprintf("errors at the margin (+%g points)", margin), Service: svc,
		Canary: Canary{ErrorRate: svc.ErrorRate + margin/100}}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%d", d.Round(time.Millisecond).Milliseconds())
}

// Stat is a median and a 90th percentile (nearest rank).
type Stat struct {
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
	N      int     `json:"n"`
}

func stat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := func(q float64) float64 {
		return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
	}
	return Stat{Median: rank(0.5), P90: rank(0.9), N: len(s)}
}

// Summary is what many runs of one scenario and policy did.
type Summary struct {
	Runs       int `json:"runs"`
	Rollbacks  int `json:"rollbacks"`
	Promotions int `json:"promotions"`
	Others     int `json:"undecided"`
	// Time (seconds) is the time to a decision of the runs that decided;
	// the exposure stats are over every run, up to its decision or its end.
	Time           Stat `json:"timeSeconds"`
	CanaryRequests Stat `json:"canaryRequests"`
	Failed         Stat `json:"failed"`
	Slowed         Stat `json:"slowed"`
	Pushed         Stat `json:"pushedAboveP99"`
}

// Summarize summarizes outcomes.
func Summarize(out []Outcome) Summary {
	s := Summary{Runs: len(out)}
	var times, reqs, failed, slowed, pushed []float64
	for _, o := range out {
		switch o.Result {
		case Rollback:
			s.Rollbacks++
		case Promote:
			s.Promotions++
		default:
			s.Others++
		}
		if o.Result != None {
			times = append(times, o.At.Seconds())
		}
		reqs = append(reqs, float64(o.CanaryRequests))
		failed = append(failed, float64(o.Failed))
		slowed = append(slowed, float64(o.Slowed))
		pushed = append(pushed, float64(o.Pushed))
	}
	s.Time, s.CanaryRequests, s.Failed, s.Slowed, s.Pushed = stat(times), stat(reqs), stat(failed), stat(slowed), stat(pushed)
	return s
}

// Decision says what the runs decided: "rollback", "promote 97%,
// rollback 3%", "no decision".
func (s Summary) Decision() string {
	type part struct {
		n    int
		name string
	}
	parts := []part{{s.Rollbacks, "rollback"}, {s.Promotions, "promote"}, {s.Others, "no decision"}}
	slices.SortStableFunc(parts, func(a, b part) int { return b.n - a.n })
	if parts[0].n == s.Runs {
		return parts[0].name
	}
	out := ""
	for _, p := range parts {
		if p.n == 0 {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += fmt.Sprintf("%s %s", p.name, percent(p.n, s.Runs))
	}
	return out
}

func percent(n, of int) string {
	p := 100 * float64(n) / float64(max(of, 1))
	if p >= 10 || p == math.Trunc(p) {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.1f%%", p)
}
