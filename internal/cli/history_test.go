package cli

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/rollout"
)

// TestDecisiveHistory: two checks an interval for two minutes flooded the
// timeline (124 of 133 entries) so that --limit 50 hid the steps. The
// default view keeps every step and decision, every failed check, and each
// check's latest verdict before a decision.
func TestDecisiveHistory(t *testing.T) {
	verdict := func(metric string, res rollout.VerdictResult) rollout.HistoryEntry {
		return rollout.HistoryEntry{Kind: "verdict", Verdict: &rollout.VerdictRecord{Metric: metric, Result: res}, Message: metric + " " + string(res)}
	}
	var h []rollout.HistoryEntry
	h = append(h, rollout.HistoryEntry{Kind: "deploy", Message: "deploy"})
	for step := 1; step <= 3; step++ {
		for range 20 {
			h = append(h, verdict("request-success-rate", rollout.VerdictPassed), verdict("request-duration", rollout.VerdictPassed))
		}
		h = append(h, rollout.HistoryEntry{Kind: "step", Message: fmt.Sprintf("step %d", step)})
	}
	h = append(h, verdict("request-success-rate", rollout.VerdictFailed), verdict("request-duration", rollout.VerdictInconclusive))
	h = append(h, rollout.HistoryEntry{Kind: "rolled-back", Message: "rolled back"})

	kept, hidden := decisive(h, 50)
	var got []string
	for _, e := range kept {
		got = append(got, e.Message)
	}
	want := []string{"deploy"}
	for step := 1; step <= 3; step++ {
		want = append(want, "request-success-rate passed", "request-duration passed", fmt.Sprintf("step %d", step))
	}
	want = append(want, "request-success-rate failed", "request-duration inconclusive", "rolled back")
	if !slices.Equal(got, want) {
		t.Fatalf("decisive history =\n%q\nwant\n%q", got, want)
	}
	if want := len(h) - len(kept); hidden != want {
		t.Errorf("hidden = %d, want %d", hidden, want)
	}
	if kept, _ := decisive(h, 3); len(kept) != 3 || kept[2].Message != "rolled back" {
		t.Errorf("decisive(limit 3) = %d entries ending %q, want the newest 3", len(kept), kept[len(kept)-1].Message)
	}
}

func TestHistoryOutcome(t *testing.T) {
	h := []rollout.HistoryEntry{
		{Rollout: 1, Kind: "deploy", Message: "deploy #1"},
		{Rollout: 1, Kind: "promoted", Message: "rollout #1 of green promoted: all steps passed"},
		{Rollout: 2, Kind: "deploy", Message: "deploy #2"},
		{Rollout: 2, Kind: "rolled-back", Message: "rollout #2 of blue rolled-back: analysis at step 3/4 (blue 10%): request-success-rate is 94.10%, below the minimum 99% over 312 requests; failed check 2 of 2"},
	}
	if got := outcome(h); !strings.Contains(got, "why: rollout #2 of blue rolled-back: analysis at step 3/4") {
		t.Errorf("outcome = %q, want the last rollout's sentence", got)
	}
	if got := outcome(ofRollout(h, 1)); got != "why: rollout #1 of green promoted: all steps passed" {
		t.Errorf("outcome of #1 = %q", got)
	}
	if got := outcome(h[:1]); got != "" {
		t.Errorf("outcome with no ended rollout = %q, want none", got)
	}
}
