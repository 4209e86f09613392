package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// The policies of the table, each from a service spec through the same
// compilation as a real rollout (except Flagger's, which has its own).

// SequentialRamp is the ramp the table runs the sequential judge on:
// 5 → 10 → 20 → 50% every 30 s, then hold at 50% until it decides.
func SequentialRamp() []spec.Step {
	var steps []spec.Step
	for _, w := range []int{5, 10, 20, 50} {
		w := w
		steps = append(steps, spec.Step{SetWeight: &w}, spec.Step{Pause: &spec.Pause{Duration: spec.D(30 * time.Second)}})
	}
	return steps
}

// TableService returns the service the table's Switchyard rows deploy:
// with judge sequential, the SequentialRamp and the judge's defaults;
// with judge thresholds, Flagger's analysis (stepWeight 10 to maxWeight 50
// every minute, threshold 5, success rate ≥ 99%, p99 ≤ 500 ms) under
// Switchyard's semantics.
func TableService(judge string) *spec.Service {
	svc := &spec.Service{APIVersion: spec.APIVersion, Kind: spec.KindService, Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Listen:   "127.0.0.1:8080",
		Stable:   "v1",
		Versions: []spec.Version{{Name: "v1", Targets: []string{"127.0.0.1:8081"}}},
	}}
	if judge == spec.JudgeSequential {
		svc.Spec.Strategy.Canary = &spec.Canary{Steps: SequentialRamp()}
		svc.Spec.Analysis = &spec.Analysis{Judge: spec.JudgeSequential}
	} else {
		f := FlaggerDefaults()
		minRate, maxP99 := f.MinSuccessRate, float64(f.MaxP99/time.Millisecond)
		svc.Spec.Strategy.Canary = &spec.Canary{StepWeight: f.StepWeight, MaxWeight: f.MaxWeight, Interval: spec.D(f.Interval)}
		svc.Spec.Analysis = &spec.Analysis{Interval: spec.D(f.Interval), Threshold: f.Threshold, Metrics: []spec.Metric{
			{Name: spec.MetricRequestSuccessRate, ThresholdRange: spec.ThresholdRange{Min: &minRate}},
			{Name: spec.MetricRequestDuration, ThresholdRange: spec.ThresholdRange{Max: &maxP99}},
		}}
	}
	svc.Default()
	return svc
}

// TablePolicies are the table's three judges, in its order.
func TablePolicies() ([]NamedPolicy, error) {
	var out []NamedPolicy
	fl := Policy{Judge: JudgeFlagger, Flagger: FlaggerDefaults(), Limit: DefaultLimit}
	out = append(out, NamedPolicy{"Flagger (interval 1m, threshold 5, step 10 → 50%)", fl})
	for _, j := range []struct{ judge, name string }{
		{spec.JudgeThresholds, "Switchyard thresholds (same checks and steps)"},
		{spec.JudgeSequential, "Switchyard sequential (5 → 10 → 20 → 50% every 30 s)"},
	} {
		svc := TableService(j.judge)
		if err := svc.Validate(); err != nil {
			return nil, err
		}
		p, _, err := PolicyFor(svc, rollout.StrategyCanary)
		if err != nil {
			return nil, err
		}
		out = append(out, NamedPolicy{j.name, p})
	}
	return out, nil
}

// HeldPolicy is the sequential judge with the canary held at weight
// percent until it decides.
func HeldPolicy(weight int) (NamedPolicy, error) {
	svc := TableService(spec.JudgeSequential)
	svc.Spec.Strategy.Canary.Steps = []spec.Step{{SetWeight: &weight}}
	p, _, err := PolicyFor(svc, rollout.StrategyCanary)
	return NamedPolicy{fmt.Sprintf("Switchyard sequential, held at %d%%", weight), p}, err
}

// NamedPolicy is a policy with the name the table shows.
type NamedPolicy struct {
	Name   string
	Policy Policy
}

// TableScenarios are the design note's cases, on DesignService.
func TableScenarios() []Scenario {
	svc := DesignService()
	return []Scenario{Bad(svc), Subtle(svc), Slow(svc), UnderGate(svc), Good(svc)}
}

// Row is one line of the table.
type Row struct {
	Scenario Scenario
	Judge    string
	Summary  Summary
}

// TableRows runs every scenario under every table policy, runs times each,
// with the same seeds for every policy (the same requests).
func TableRows(runs int, seed uint64) ([]Row, error) {
	pols, err := TablePolicies()
	if err != nil {
		return nil, err
	}
	held, err := HeldPolicy(5)
	if err != nil {
		return nil, err
	}
	var rows []Row
	for _, sc := range TableScenarios() {
		ps := pols
		if sc.Name == Slow(DesignService()).Name {
			// What the ramp costs in users for a tail regression.
			ps = append(slices.Clip(ps), held)
		}
		for _, p := range ps {
			out, err := Runs(sc, p.Policy, runs, seed)
			if err != nil {
				return nil, err
			}
			rows = append(rows, Row{Scenario: sc, Judge: p.Name, Summary: Summarize(out)})
		}
	}
	return rows, nil
}

// WriteTable writes rows as a markdown table.
func WriteTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| case | judge | decision | time to decision | canary requests | failed requests | slowed requests |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	prev := ""
	for _, r := range rows {
		name := r.Scenario.Name
		if name == prev {
			name = ""
		}
		prev = r.Scenario.Name
		s := r.Summary
		slowed := "–"
		if r.Scenario.Canary.SlowAdd > 0 {
			slowed = s.Slowed.format("")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", name, r.Judge, s.Decision(),
			s.Time.format(" s"), s.CanaryRequests.format(""), s.Failed.format(""), slowed)
	}
}

// format writes "median [p90]".
func (s Stat) format(unit string) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s%s [%s]", round(s.Median), unit, round(s.P90))
}

func round(f float64) string { return fmt.Sprintf("%.0f", math.Round(f)) }

// ErrorControl is the measured error control of the sequential judge:
// false rollbacks of an A/A canary watched for Watch, and promotions of
// a canary exactly at the error margin, with the whole judge and with the
// promotion bound alone.
type ErrorControl struct {
	Watch               time.Duration
	AARuns, AARollbacks int
	// MarginPromotions of MarginRuns promoted a canary at the margin;
	// MarginRollbacks rolled it back instead.
	MarginRuns, MarginPromotions, MarginRollbacks int
	// The same with tolerance 10, so that the rollback test cannot fire at
	// this relative risk (6) and only the promotion bound stands between
	// the canary and a promotion, for up to maxDuration.
	AloneRuns, AlonePromotions int
}

// AAPolicy is the sequential judge of the table, never promoting and
// watching for watch: the error-control run of an identical canary.
func AAPolicy(watch time.Duration) (Policy, error) {
	p, _, err := PolicyFor(TableService(spec.JudgeSequential), rollout.StrategyCanary)
	if err != nil {
		return p, err
	}
	p.Sequential.NoPromotion = true
	p.Watch = true
	p.Limit = watch
	return p, nil
}

// MeasureErrorControl runs the error-control experiments on
// DesignService and the table's ramp.
func MeasureErrorControl(aaRuns, marginRuns, aloneRuns int, watch time.Duration, seed uint64) (ErrorControl, error) {
	ec := ErrorControl{Watch: watch, AARuns: aaRuns, MarginRuns: marginRuns, AloneRuns: aloneRuns}
	aa, err := AAPolicy(watch)
	if err != nil {
		return ec, err
	}
	svc := DesignService()
	out, err := Runs(Good(svc), aa, aaRuns, seed)
	if err != nil {
		return ec, err
	}
	ec.AARollbacks = Summarize(out).Rollbacks
	seq, _, err := PolicyFor(TableService(spec.JudgeSequential), rollout.StrategyCanary)
	if err != nil {
		return ec, err
	}
	margin := AtMargin(svc, seq.Sequential.ErrorMargin)
	out, err = Runs(margin, seq, marginRuns, seed)
	if err != nil {
		return ec, err
	}
	s := Summarize(out)
	ec.MarginPromotions, ec.MarginRollbacks = s.Promotions, s.Rollbacks
	seq.Sequential.Tolerance = 10
	out, err = Runs(margin, seq, aloneRuns, seed)
	if err != nil {
		return ec, err
	}
	ec.AlonePromotions = Summarize(out).Promotions
	return ec, nil
}

// The docs' run counts and seed (docs/judge.md, TestJudgeDoc).
const (
	DocRuns       = 100
	DocAARuns     = 200
	DocMarginRuns = 200
	DocAloneRuns  = 40
	DocSeed       = 1
)

// DocOptions are the run counts of the generated section.
type DocOptions struct {
	Runs, AARuns, MarginRuns, AloneRuns int
	Seed                                uint64
	Watch                               time.Duration
}

// DocDefaults are the docs' options.
func DocDefaults() DocOptions {
	return DocOptions{Runs: DocRuns, AARuns: DocAARuns, MarginRuns: DocMarginRuns, AloneRuns: DocAloneRuns, Seed: DocSeed, Watch: time.Hour}
}

// Measured is what the docs' section reports.
type Measured struct {
	Options DocOptions
	Rows    []Row
	Errors  ErrorControl
}

// Measure runs the table and the error control.
func Measure(o DocOptions) (Measured, error) {
	rows, err := TableRows(o.Runs, o.Seed)
	if err != nil {
		return Measured{}, err
	}
	ec, err := MeasureErrorControl(o.AARuns, o.MarginRuns, o.AloneRuns, o.Watch, o.Seed)
	if err != nil {
		return Measured{}, err
	}
	return Measured{Options: o, Rows: rows, Errors: ec}, nil
}

// WriteDoc writes the generated section of docs/judge.md: how the table
// was made, the table and the error control.
func WriteDoc(w io.Writer, m Measured) {
	var b strings.Builder
	o, ec := m.Options, m.Errors
	svc := DesignService()
	fmt.Fprintf(&b, `The three judges below see the same synthetic traffic: %g requests a second
(Poisson), each routed to the canary with the weight in force by its own draw, failing
with its version's error rate (stable: %g%%), taking a log-normal latency (median %s ms,
p99 %s ms), aggregated per second per version exactly as the proxy reports its windows
(the judge's 1.5%% latency buckets). The sequential judge also gets %s of stable traffic
before the rollout as its baseline. %d runs per row, seeds %d-%d: run i of every judge
sees the same requests (a request routed differently is the same request served by the
other version). Medians, p90 in brackets. Times are from the start of the rollout;
requests are counted up to the decision: those the canary served, those of them that
failed, and, in the latency cases, those it made slower (the ones that got the added
200 ms).

- **Flagger** as its scheduler runs it (fluxcd/flagger pkg/controller/scheduler.go,
  advanceCanary and runCanary): every interval (1m) it first rolls back when failedChecks
  ≥ threshold (5), then checks the canary alone over the last interval (success rate ≥
  99%%, p99 ≤ 500 ms; no canary requests is a failed check); a failure increments
  failedChecks, which a passing check never resets, and leaves the weight; a pass adds
  stepWeight (10) up to maxWeight (50) and, at maxWeight, promotes. So the canary starts
  at 10%%, and the 5th failed check rolls back a minute later. Real Flagger reads
  Prometheus, whose scrape and rate windows add delay: this model is Flagger at its best.
- **Switchyard thresholds**: the same checks and steps (stepWeight 10, maxWeight 50,
  interval 1m, threshold 5) under Switchyard's rules: checks restart at each weight, a
  pause ends on a check measured entirely at its weight, the 5th failed check rolls back
  at once.
- **Switchyard sequential**: judge: sequential with its defaults on the steps 5 → 10 →
  20 → 50%% with 30 s pauses; a test that fires rolls back or promotes at once; once the
  steps run out it holds at 50%% until the judge decides (maxDuration 30 minutes).

The latency cases: "slowest 2%%" adds 200 ms to every canary request that would have
taken longer than stable's p98 (%s ms), so the canary's p99 is 200 ms higher; "p99 242 →
442" is a service with median 100 ms and p99 242 ms whose canary does the same (above
its p98, %s ms), staying under the 500 ms gate.

`, svc.Rate, 100*svc.ErrorRate, ms(svc.Median), ms(svc.P99), human(spec.DefaultBaselineWindow), o.Runs, o.Seed, o.Seed+uint64(o.Runs)-1,
		ms(svc.Quantile(0.98)), ms(UnderGate(svc).Canary.SlowAbove))
	WriteTable(&b, m.Rows)
	var ramp, held Summary
	for _, r := range m.Rows {
		if r.Scenario.Name == Slow(svc).Name && r.Judge == "Switchyard sequential, held at 5%" {
			held = r.Summary
		} else if r.Scenario.Name == Slow(svc).Name && strings.HasPrefix(r.Judge, "Switchyard sequential") {
			ramp = r.Summary
		}
	}
	fmt.Fprintf(&b, `
The tail regression is where the sequential judge gains least in users: its latency tests
need on the order of a thousand canary requests to tell a 2%% tail shift from noise at
αLatency 0.005, and 2%% of those are slowed. Ramping gets there sooner (%s s against %s s
held at 5%%) but at 50%% weight each canary request is weaker evidence (the label test
compares the canary's share of slow requests with its share of traffic), so the ramp
slows %s requests against %s held at 5%% (medians). "Slowed" here is every canary request
that got the added 200 ms (2%% of them). Counting only those the regression pushed above
stable's p99 (the 1%% beyond the 1%% that are always there), as the design note's figure of
15-22 appears to, the ramp pushes %s [%s] and held at 5%%, %s [%s].

With the sequential judge, promotion compares the versions over the seconds of the
current weight only (its promotion α split over the weights in proportion to their
squares), so that a latency or error rate drifting during the ramp, whose canary traffic
comes later than stable's, biases neither side; that costs the good canary some time
against comparing the whole rollout at once.
`, round(ramp.Time.Median), round(held.Time.Median), round(ramp.Slowed.Median), round(held.Slowed.Median),
		round(ramp.Pushed.Median), round(ramp.Pushed.P90), round(held.Pushed.Median), round(held.Pushed.P90))
	fmt.Fprintf(&b, `
Error control of the sequential judge at its defaults (αRollback 0.005 + αLatency 0.005
= 0.01; αPromotion 0.05; errorMargin 0.5 points), same ramp and traffic:

- A canary identical to stable, never promoted, watched for %s: rolled back in %d of %d
  runs (%s; the bound is 1%%).
- A canary exactly at the margin (%g%% errors against stable's %g%%): promoted in %d of
  %d runs (%s; the bound is 2.5%%); the rollback test caught it in %d. With tolerance 10,
  so that only the promotion bound can stop it, watched up to maxDuration: promoted in
  %d of %d runs.

Regenerate with `+"`go run ./internal/sim/cmd/judgetable`"+` (flags: -runs, -seed, -aa,
-margin, -alone); `+"`go test ./internal/sim -run TestJudgeDoc -update`"+` rewrites this section.
`, human(ec.Watch), ec.AARollbacks, ec.AARuns, percent(ec.AARollbacks, ec.AARuns),
		100*(svc.ErrorRate+0.005), 100*svc.ErrorRate, ec.MarginPromotions, ec.MarginRuns, percent(ec.MarginPromotions, ec.MarginRuns), ec.MarginRollbacks,
		ec.AlonePromotions, ec.AloneRuns)
	io.WriteString(w, b.String())
}

// human writes a whole number of minutes or hours in words.
func human(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "an hour"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d hours", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}
