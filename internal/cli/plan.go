package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/sim"
	"github.com/switchyard/switchyard/internal/spec"
)

// planMaxRate bounds --rate: every simulated request is drawn, and the
// judge's baseline alone is 30 minutes of them per run.
const planMaxRate = 5000

// planOutput is what plan prints (-o json|yaml as is).
type planOutput struct {
	Service  string      `json:"service"`
	Version  string      `json:"version"`
	From     string      `json:"from"`
	Strategy string      `json:"strategy"`
	Analysis string      `json:"analysis"`
	Timeline []sim.Entry `json:"timeline"`
	// Simulated is false when the analysis cannot be simulated; Reason
	// says why.
	Simulated bool             `json:"simulated"`
	Reason    string           `json:"reason,omitempty"`
	Traffic   string           `json:"traffic,omitempty"`
	Rate      float64          `json:"rate,omitempty"`
	Runs      int              `json:"runs,omitempty"`
	Seed      uint64           `json:"seed,omitempty"`
	Cases     []sim.CaseResult `json:"cases,omitempty"`
	Notes     []string         `json:"notes,omitempty"`
}

func (e *env) planCommand() *cobra.Command {
	var (
		files    []string
		service  string
		version  string
		strategy string
		traffic  = sim.DesignService()
		errRate  = 100 * traffic.ErrorRate
		runs     int
		seed     uint64
	)
	cmd := &cobra.Command{
		Use:   "plan -f FILE --version V [--rate R] [--strategy canary|blue-green]",
		Short: "Show a rollout's timeline and its simulated time to a decision, before deploying",
		Long: `plan reads the service file (validated as validate does; nothing runs, no daemon is
needed) and prints the compiled timeline of a rollout of --version: every step with
its start time and weight, and what waits for a hook, a webhook or a person. Then, for
the configured analysis (the sequential judge, or the built-in threshold checks) at
--rate requests a second, it simulates a bad canary (5% errors), a subtle one (0.6%),
a slow one (its slowest 2% take 200 ms more) and a good one, and prints how long the
analysis takes to decide and how many users it exposes: canary requests, failed
requests and slowed requests, as median [p90] over --runs runs. The simulation is the
one behind docs/judge.md: synthetic, stationary traffic; prometheus checks cannot be
simulated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageErr("no service file: pass -f FILE")
			}
			if version == "" {
				return usageErr("--version is required: the version to plan a rollout of")
			}
			switch {
			case !(traffic.Rate > 0 && traffic.Rate <= planMaxRate):
				return usageErr("--rate %g is out of range; must be above 0 and at most %d requests a second", traffic.Rate, planMaxRate)
			case !(errRate >= 0 && errRate < 5):
				return usageErr("--error-rate %g is out of range; must be from 0 to below 5 (percent; the bad case fails 5%%)", errRate)
			case traffic.Median <= 0 || traffic.P99 <= traffic.Median:
				return usageErr("--median %s and --p99 %s: need 0 < median < p99", traffic.Median, traffic.P99)
			case runs < 1 || runs > 10000:
				return usageErr("--runs %d is out of range; must be 1-10000", runs)
			}
			traffic.ErrorRate = errRate / 100
			svcs, err := spec.LoadFiles(files...)
			if err != nil {
				return e.invalidConfig(err)
			}
			svc, err := pickService(svcs, service)
			if err != nil {
				return err
			}
			kind := rollout.StrategyBlueGreen
			if svc.Spec.Strategy.Canary != nil {
				kind = rollout.StrategyCanary
			}
			switch strategy {
			case "":
			case string(rollout.StrategyCanary), string(rollout.StrategyBlueGreen):
				kind = rollout.StrategyKind(strategy)
			default:
				return usageErr("--strategy %q is not a strategy; use canary or blue-green", strategy)
			}
			if version == svc.Spec.Stable {
				return usageErr("--version %s is the stable version of %q; plan the rollout of a new one", version, svc.Metadata.Name)
			}
			out, err := plan(svc, version, kind, traffic, runs, seed)
			if err != nil {
				return err
			}
			return e.print(out, func(w io.Writer) { writePlan(w, out) })
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "file", "f", nil, "service file (YAML); repeat for several")
	f.StringVar(&service, "service", "", "the service to plan, when the files hold several")
	f.StringVar(&version, "version", "", "the version to roll out")
	f.StringVar(&strategy, "strategy", "", "canary or blue-green (default: the service's strategy)")
	f.Float64Var(&traffic.Rate, "rate", traffic.Rate, "requests a second to the service (all versions)")
	f.Float64Var(&errRate, "error-rate", errRate, "the stable version's error rate, percent")
	f.DurationVar(&traffic.Median, "median", traffic.Median, "the stable version's median latency")
	f.DurationVar(&traffic.P99, "p99", traffic.P99, "the stable version's p99 latency (log-normal with the median)")
	f.IntVar(&runs, "runs", 100, "simulated rollouts per case")
	f.Uint64Var(&seed, "seed", 1, "seed of the first simulated rollout")
	return cmd
}

func pickService(svcs []*spec.Service, name string) (*spec.Service, error) {
	var names []string
	for _, s := range svcs {
		if name == "" && len(svcs) == 1 || s.Metadata.Name == name {
			return s, nil
		}
		names = append(names, s.Metadata.Name)
	}
	if name == "" {
		return nil, usageErr("the files hold %d services (%s); pick one with --service", len(svcs), strings.Join(names, ", "))
	}
	return nil, usageErr("--service %q is not in the files; they hold %s", name, strings.Join(names, ", "))
}

// plan compiles and simulates the rollout of version.
func plan(svc *spec.Service, version string, kind rollout.StrategyKind, traffic sim.Service, runs int, seed uint64) (planOutput, error) {
	out := planOutput{Service: svc.Metadata.Name, Version: version, From: svc.Spec.Stable, Strategy: string(kind)}
	if !slices.ContainsFunc(svc.Spec.Versions, func(v spec.Version) bool { return v.Name == version }) {
		out.Notes = append(out.Notes, fmt.Sprintf("version %s is not in the file: deploy it with --targets", version))
	}
	p, notes, err := sim.PolicyFor(svc, kind)
	out.Notes = append(out.Notes, notes...)
	out.Timeline = sim.Timeline(p)
	out.Analysis = describeAnalysis(svc.Spec.Analysis, p)
	if errors.Is(err, sim.ErrNotSimulated) {
		out.Reason = strings.TrimPrefix(err.Error(), sim.ErrNotSimulated.Error()+": ")
		return out, nil
	}
	if err != nil {
		return out, &ExitError{Code: ExitUsage, Err: err}
	}
	out.Simulated, out.Rate, out.Runs, out.Seed = true, traffic.Rate, runs, seed
	out.Traffic = fmt.Sprintf("%g requests/s; the stable version fails %g%% of requests, latency log-normal with median %s and p99 %s",
		traffic.Rate, 100*traffic.ErrorRate, traffic.Median, traffic.P99)
	if out.Cases, err = sim.Plan(p, sim.PlanCases(traffic), runs, seed); err != nil {
		return out, &ExitError{Code: ExitFailed, Err: fmt.Errorf("simulate: %w", err)}
	}
	for _, c := range out.Cases {
		if c.Bad && c.Summary.Promotions*2 > c.Summary.Runs && p.Judge == sim.JudgeThresholds {
			out.Notes = append(out.Notes, fmt.Sprintf("%q is promoted: it stays within the thresholds; judge: sequential compares the canary with the stable version and catches it (docs/judge.md)", c.Case))
		}
	}
	return out, nil
}

// describeAnalysis says in one line how the rollout is judged.
func describeAnalysis(a *spec.Analysis, p sim.Policy) string {
	switch {
	case a == nil:
		return "none"
	case p.Judge == sim.JudgeSequential:
		c := p.Sequential
		return fmt.Sprintf("sequential judge: αRollback %g, αLatency %g, αPromotion %g, errorMargin %g and slowMargin %g (percentage points), minExposure %s, maxDuration %s, baseline %s",
			c.AlphaRollback, c.AlphaLatency, c.AlphaPromotion, c.ErrorMargin, c.SlowMargin, c.MinExposure, c.MaxDuration, p.Baseline)
	}
	var checks []string
	for _, m := range a.Metrics {
		var r []string
		if m.ThresholdRange.Min != nil {
			r = append(r, fmt.Sprintf("min %g", *m.ThresholdRange.Min))
		}
		if m.ThresholdRange.Max != nil {
			r = append(r, fmt.Sprintf("max %g", *m.ThresholdRange.Max))
		}
		if m.SuccessCondition != "" {
			r = append(r, "success when "+m.SuccessCondition)
		}
		if m.FailureCondition != "" {
			r = append(r, "failure when "+m.FailureCondition)
		}
		name := m.Name
		if m.Name == spec.MetricRequestDuration {
			name += fmt.Sprintf(" (p%g, ms)", 100*m.Quantile)
		}
		if m.Provider == spec.ProviderPrometheus {
			name += " (prometheus)"
		}
		checks = append(checks, fmt.Sprintf("%s %s every %s", name, strings.Join(r, ", "), m.Interval))
	}
	return fmt.Sprintf("threshold checks: %s; %d failed checks roll back", strings.Join(checks, "; "), a.Threshold)
}

func writePlan(w io.Writer, p planOutput) {
	fmt.Fprintf(w, "%s: %s rollout of %s (from %s)\n", p.Service, p.Strategy, p.Version, p.From)
	fmt.Fprintf(w, "analysis: %s\n\n", p.Analysis)
	fmt.Fprintln(w, "timeline (if nothing holds it):")
	var tl strings.Builder
	tw := tabwriter.NewWriter(&tl, 0, 4, 2, ' ', 0)
	for _, en := range p.Timeline {
		waits := ""
		if en.Waits != "" {
			waits = "waits for " + en.Waits
		}
		// Every line has every cell, so that the columns line up.
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", en.At, en.What, waits)
	}
	tw.Flush()
	for line := range strings.Lines(tl.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	fmt.Fprintln(w)
	if !p.Simulated {
		fmt.Fprintf(w, "no simulation: %s\n", p.Reason)
		writeNotes(w, p.Notes)
		return
	}
	fmt.Fprintf(w, "simulated, %d rollouts per case (seed %d): %s\n", p.Runs, p.Seed, p.Traffic)
	fmt.Fprintln(w, "median [p90]; requests counted up to the decision; time from the first step:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  CASE\tDECISION\tTIME TO DECISION\tCANARY REQUESTS\tFAILED\tSLOWED")
	for _, c := range p.Cases {
		s := c.Summary
		slowed := "-"
		if c.Latency {
			slowed = stat(s.Slowed, "")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Case, s.Decision(), stat(s.Time, "s"), stat(s.CanaryRequests, ""), stat(s.Failed, ""), slowed)
	}
	tw.Flush()
	writeNotes(w, p.Notes)
}

func stat(s sim.Stat, unit string) string {
	if s.N == 0 {
		return "-"
	}
	if unit == "s" {
		return fmt.Sprintf("%s [%s]", secs(s.Median), secs(s.P90))
	}
	return fmt.Sprintf("%.0f [%.0f]", s.Median, s.P90)
}

func secs(f float64) string { return (time.Duration(f) * time.Second).String() }

func writeNotes(w io.Writer, notes []string) {
	if len(notes) == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintln(w, "note: "+n)
	}
}
