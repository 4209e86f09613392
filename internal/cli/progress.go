package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
)

// pollInterval is how often --wait and --watch read the status.
const pollInterval = 250 * time.Millisecond

// progressHeartbeat is the longest --wait and --watch stay silent when
// stdout is not a terminal, even when nothing changes.
const progressHeartbeat = 5 * time.Second

// palette colours terminal output; the zero value prints plain text.
type palette struct{ on bool }

func (p palette) wrap(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}
func (p palette) green(s string) string { return p.wrap("32", s) }
func (p palette) red(s string) string   { return p.wrap("31", s) }
func (p palette) yellow(s string) string {
	return p.wrap("33", s)
}
func (p palette) bold(s string) string { return p.wrap("1", s) }
func (p palette) dim(s string) string  { return p.wrap("2", s) }

// tty reports whether stdout is a terminal.
func (e *env) tty() bool {
	f, ok := e.stdout.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// color is on for terminals unless NO_COLOR is set.
func (e *env) color() palette {
	return palette{on: e.tty() && e.getenv("NO_COLOR") == "" && e.output == "text"}
}

// watch shows a service's progress until the rollout id ends (id > 0), or
// until ctx ends (id == 0, status --watch). In a terminal it redraws one
// block; otherwise it prints a line whenever something changes, and at
// least every progressHeartbeat, so a CI log shows the command is alive.
func (e *env) watch(ctx context.Context, c *admin.Client, service string, id uint64, timeout time.Duration) error {
	return e.watchWith(ctx, func(ctx context.Context) (admin.ServiceStatus, error) { return c.Service(ctx, service) }, c, service, id, timeout)
}

// watchWith is watch reading the status with get (a Rollout's, on a
// cluster: c is nil there, and id 0).
func (e *env) watchWith(ctx context.Context, get func(context.Context) (admin.ServiceStatus, error), c *admin.Client, service string, id uint64, timeout time.Duration) error {
	wctx, cancel := timeoutCtx(ctx, timeout)
	defer cancel()
	live := e.tty() && e.output == "text" && !e.plain
	pal := e.color()
	var lastLine string
	var lastAt time.Time
	heartbeat := e.heartbeat
	if heartbeat <= 0 {
		heartbeat = progressHeartbeat
	}
	drawn := 0
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		st, err := get(wctx)
		switch {
		case err == nil:
		case wctx.Err() != nil && ctx.Err() == nil:
			return e.timedOut(service, timeout)
		case ctx.Err() != nil:
			return nil
		default:
			return apiErr(err)
		}
		if e.output == "text" {
			if live {
				var b bytes.Buffer
				writeStatus(&b, st, pal)
				if drawn > 0 {
					fmt.Fprintf(e.stdout, "\x1b[%dA\x1b[J", drawn)
				}
				e.stdout.Write(b.Bytes())
				drawn = bytes.Count(b.Bytes(), []byte("\n"))
			} else if line, now := progressLine(st), time.Now(); line != lastLine || now.Sub(lastAt) >= heartbeat {
				fmt.Fprintf(e.stdout, "%s %s\n", now.Format("15:04:05"), line)
				lastLine, lastAt = line, now
			}
		}
		if id > 0 {
			if done, err := e.finished(wctx, c, st, id); done {
				return err
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() == nil {
				return e.timedOut(service, timeout)
			}
			return nil
		case <-t.C:
		}
	}
}

func (e *env) timedOut(service string, timeout time.Duration) error {
	return &ExitError{Code: ExitTimeout, Err: fmt.Errorf("timed out after %s; the rollout goes on: see `switchyard status %s`", timeout, service)}
}

// finished reports whether rollout id has ended, and its exit error.
func (e *env) finished(ctx context.Context, c *admin.Client, st admin.ServiceStatus, id uint64) (bool, error) {
	if st.Rollout != nil && st.Rollout.ID == id {
		return false, nil
	}
	last := st.LastRollout
	if last == nil || last.ID < id {
		return false, nil
	}
	if e.output != "text" {
		if err := e.print(st, nil); err != nil {
			return true, err
		}
	}
	if last.ID != id {
		// Something else (a rollback, a forced deploy) ran since: the
		// awaited rollout's own end is in the history.
		res, err := resultOf(ctx, c, st.Name, id)
		if err != nil {
			return true, apiErr(err)
		}
		last = &res
	}
	switch last.Result {
	case rollout.ResultPromoted:
		if e.output == "text" {
			fmt.Fprintf(e.stdout, "%s %s promoted: all traffic on %s\n", e.color().green("✔"), st.Name, last.Version)
		}
		return true, nil
	default:
		return true, &ExitError{Code: ExitFailed, Err: fmt.Errorf("rollout #%d of %s %s: %s: %s", id, st.Name, last.Version, last.Result, last.Reason)}
	}
}

// resultOf finds how rollout id ended in the service's history.
func resultOf(ctx context.Context, c *admin.Client, service string, id uint64) (admin.RolloutStatus, error) {
	h, err := c.History(ctx, service, 0)
	if err != nil {
		return admin.RolloutStatus{}, err
	}
	for _, entry := range slices.Backward(h) {
		if entry.Rollout != id {
			continue
		}
		switch r := rollout.Result(entry.Kind); r {
		case rollout.ResultPromoted, rollout.ResultRolledBack, rollout.ResultAborted:
			return admin.RolloutStatus{ID: id, Version: fmt.Sprintf("(rollout #%d)", id), Result: r, Reason: entry.Message}, nil
		}
	}
	return admin.RolloutStatus{}, fmt.Errorf("rollout #%d has no result in the history of %s", id, service)
}

// progressLine is the one-line summary printed when stdout is not a terminal.
func progressLine(st admin.ServiceStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", st.Name, st.Phase)
	if st.Step.Total > 0 {
		fmt.Fprintf(&b, " step %d/%d", st.Step.Index+1, st.Step.Total)
		if st.Step.Description != "" {
			// Drop the countdown so the line changes only when something happens.
			d := st.Step.Description
			if i := strings.Index(d, " ("); i > 0 {
				d = d[:i]
			}
			fmt.Fprintf(&b, " (%s)", d)
		}
	}
	fmt.Fprintf(&b, " weights %s", formatWeights(st.Weights))
	healthy, total := rolloutHealth(st)
	fmt.Fprintf(&b, " healthy %d/%d", healthy, total)
	for _, v := range st.LastVerdicts {
		fmt.Fprintf(&b, " %s=%s", v.Metric, v.Result)
	}
	return b.String()
}

// rolloutHealth counts the healthy targets of the versions taking part:
// the stable one and the canary. Other versions (a kept previous one, or
// one only listed in the file) are probed too, but they carry no traffic,
// and counting them made "healthy 3/4" of a rollout whose targets were all up.
func rolloutHealth(st admin.ServiceStatus) (healthy, total int) {
	for _, t := range st.Targets {
		if t.Version != st.StableVersion && t.Version != st.CanaryVersion {
			continue
		}
		total++
		if t.Healthy {
			healthy++
		}
	}
	return healthy, total
}

func formatWeights(w rollout.Weights) string {
	names := slices.Sorted(mapKeys(w))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s=%d%%", n, w[n]))
	}
	return strings.Join(parts, ",")
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// weightBar draws a 30-cell bar: stable cells then canary cells.
func weightBar(st admin.ServiceStatus, pal palette) string {
	const cells = 30
	canary := 0
	if st.CanaryVersion != "" {
		canary = st.Weights[st.CanaryVersion]
	}
	n := (canary*cells + 50) / 100
	if canary > 0 && n == 0 {
		n = 1
	}
	return pal.green(strings.Repeat("█", cells-n)) + pal.yellow(strings.Repeat("█", n))
}

// writeStatus prints one service in full.
func writeStatus(w io.Writer, st admin.ServiceStatus, pal palette) {
	phase := string(st.Phase)
	switch st.Phase {
	case rollout.PhaseStable:
		phase = pal.green(phase)
	case rollout.PhaseDegraded, rollout.PhaseRollingBack:
		phase = pal.red(phase)
	default:
		phase = pal.yellow(phase)
	}
	fmt.Fprintf(w, "%s  %s  stable %s", pal.bold(st.Name), phase, st.StableVersion)
	if st.CanaryVersion != "" {
		fmt.Fprintf(w, "  canary %s", st.CanaryVersion)
	}
	if st.Listen != "" {
		fmt.Fprintf(w, "  %s", pal.dim("on "+st.Listen))
	}
	fmt.Fprintln(w)
	if st.CanaryVersion != "" {
		fmt.Fprintf(w, "  weights  %s  %s\n", weightBar(st, pal), formatWeights(st.Weights))
	} else {
		fmt.Fprintf(w, "  weights  %s\n", formatWeights(st.Weights))
	}
	if st.Message != "" && st.AppliedWeights != nil && !maps.Equal(st.AppliedWeights, st.Weights) {
		// The router refused the newest weights: say what still serves.
		fmt.Fprintf(w, "  in force %s  %s\n", formatWeights(st.AppliedWeights), pal.dim("(the router has not applied the weights above)"))
	}
	if st.Step.Total > 0 {
		fmt.Fprintf(w, "  step     %d/%d  %s", st.Step.Index+1, st.Step.Total, st.Step.Description)
		switch {
		case st.Paused:
			fmt.Fprint(w, pal.yellow("  [paused: switchyard resume]"))
		case st.Phase == rollout.PhasePaused:
			fmt.Fprint(w, pal.yellow("  [waits for: switchyard promote "+st.Name+"]"))
		}
		fmt.Fprintln(w)
	}
	for _, t := range st.Targets {
		mark := pal.green("healthy")
		if !t.Healthy {
			mark = pal.red("unhealthy")
			if t.LastError != "" {
				mark += pal.dim(" (" + t.LastError + ")")
			}
		}
		if t.Ejected {
			mark += pal.red(" ejected")
		}
		fmt.Fprintf(w, "  target   %-8s %-21s %s\n", t.Version, t.Address, mark)
	}
	for _, v := range st.LastVerdicts {
		res := string(v.Result)
		switch v.Result {
		case rollout.VerdictPassed:
			res = pal.green(res)
		case rollout.VerdictFailed:
			res = pal.red(res)
		default:
			res = pal.yellow(res)
		}
		fmt.Fprintf(w, "  verdict  %-22s %s %s\n", v.Metric, res, pal.dim(v.Reason))
	}
	if st.Threshold > 0 && len(st.LastVerdicts) > 0 {
		fmt.Fprintf(w, "  checks   %d failed of %d allowed\n", st.FailedChecks, st.Threshold)
	}
	if st.PreviousVersion != "" && st.PreviousUntil != nil {
		fmt.Fprintf(w, "  previous %s kept for rollback until %s\n", st.PreviousVersion, st.PreviousUntil.Local().Format("15:04:05"))
	}
	if l := st.LastRollout; l != nil && st.Rollout == nil {
		res := string(l.Result)
		if l.Result == rollout.ResultPromoted {
			res = pal.green(res)
		} else {
			res = pal.red(res)
		}
		fmt.Fprintf(w, "  last     #%d %s %s", l.ID, l.Version, res)
		if l.Reason != "" {
			fmt.Fprintf(w, ": %s", l.Reason)
		}
		fmt.Fprintln(w)
	}
	if st.Message != "" {
		fmt.Fprintf(w, "  message  %s\n", pal.red(st.Message))
	}
}

// writeServices prints a table of all services.
func writeServices(w io.Writer, all []admin.ServiceStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tSTABLE\tCANARY\tWEIGHTS\tSTEP\tHEALTHY\tLAST")
	for _, st := range all {
		step := "-"
		if st.Step.Total > 0 {
			step = fmt.Sprintf("%d/%d", st.Step.Index+1, st.Step.Total)
		}
		healthy, total := rolloutHealth(st)
		last := "-"
		if l := st.LastRollout; l != nil {
			last = fmt.Sprintf("%s %s", l.Version, l.Result)
		}
		canary := st.CanaryVersion
		if canary == "" {
			canary = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", st.Name, st.Phase, st.StableVersion, canary, formatWeights(st.Weights), step, healthy, total, last)
	}
	tw.Flush()
}

// writeHistory prints a rollout timeline.
func writeHistory(w io.Writer, h []rollout.HistoryEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tROLLOUT\tEVENT\tWEIGHTS\tBY\tMESSAGE")
	for _, e := range h {
		by := e.By
		if by == "" {
			by = "-"
		}
		msg := e.Message
		if e.Verdict != nil && msg == "" {
			msg = fmt.Sprintf("%s %s %.2f", e.Verdict.Metric, e.Verdict.Result, e.Verdict.Value)
		}
		fmt.Fprintf(tw, "%s\t#%d\t%s\t%s\t%s\t%s\n", e.At.Local().Format(time.DateTime), e.Rollout, e.Kind, formatWeights(e.Weights), by, msg)
	}
	tw.Flush()
}
