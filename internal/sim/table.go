package sim

import (
	"fmt"
	"io"
	"math"
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
	var rows []Row
	for _, sc := range TableScenarios() {
		for _, p := range pols {
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
// a canary exactly at the error margin.
type ErrorControl struct {
	Watch                 time.Duration
	AARuns, AARollbacks   int
	MarginRuns, MarginPro int
	// MarginRollbacks is how many margin runs rolled back instead.
	MarginRollbacks int
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

// MeasureErrorControl runs the two error-control experiments.
func MeasureErrorControl(aaRuns, marginRuns int, watch time.Duration, seed uint64) (ErrorControl, error) {
	ec := ErrorControl{Watch: watch, AARuns: aaRuns, MarginRuns: marginRuns}
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
	pols, err := TablePolicies()
	if err != nil {
		return ec, err
	}
	seq := pols[len(pols)-1].Policy
	out, err = Runs(AtMargin(svc, seq.Sequential.ErrorMargin), seq, marginRuns, seed)
	if err != nil {
		return ec, err
	}
	s := Summarize(out)
	ec.MarginPro, ec.MarginRollbacks = s.Promotions, s.Rollbacks
	return ec, nil
}

// WriteDoc writes the generated section of docs/judge.md: the table, the
// error control and how they were made.
func WriteDoc(w io.Writer, rows []Row, ec ErrorControl, runs int, seed uint64) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d runs per row (seeds %d-%d, the same requests for every judge), %s; medians, p90 in brackets.\n\n", runs, seed, seed+uint64(runs)-1, describe(DesignService()))
	WriteTable(&b, rows)
	fmt.Fprintf(&b, "\nError control of the sequential judge (α = %s: αRollback %s, αLatency %s):\n\n",
		fmtF(0.01), fmtF(0.005), fmtF(0.005))
	fmt.Fprintf(&b, "- A/A (the canary identical to stable) on the ramp, never promoting, watched for %s: %d false rollbacks in %d runs (%s; bound 1%%).\n",
		ec.Watch, ec.AARollbacks, ec.AARuns, percent(ec.AARollbacks, ec.AARuns))
	fmt.Fprintf(&b, "- A canary exactly at the margin (%s): promoted in %d of %d runs (%s; bound 2.5%%), rolled back in %d.\n",
		AtMargin(DesignService(), 0.5).Name, ec.MarginPro, ec.MarginRuns, percent(ec.MarginPro, ec.MarginRuns), ec.MarginRollbacks)
	io.WriteString(w, b.String())
}

func describe(s Service) string {
	return fmt.Sprintf("%g requests/s, stable errors %g%%, log-normal latency with median %s ms and p99 %s ms, canary weight drawn per request",
		s.Rate, 100*s.ErrorRate, ms(s.Median), ms(s.P99))
}

func fmtF(f float64) string { return fmt.Sprintf("%g", f) }

// The docs' run counts and seed (docs/judge.md, TestJudgeDoc).
const (
	DocRuns       = 100
	DocAARuns     = 200
	DocMarginRuns = 200
	DocSeed       = 1
)

// DocOptions are the run counts of the generated section.
type DocOptions struct {
	Runs, AARuns, MarginRuns int
	Seed                     uint64
	Watch                    time.Duration
}

// Doc runs the table and the error control and writes the section.
func Doc(w io.Writer, o DocOptions) error {
	rows, err := TableRows(o.Runs, o.Seed)
	if err != nil {
		return err
	}
	ec, err := MeasureErrorControl(o.AARuns, o.MarginRuns, o.Watch, o.Seed)
	if err != nil {
		return err
	}
	WriteDoc(w, rows, ec, o.Runs, o.Seed)
	return nil
}
