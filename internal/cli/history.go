package cli

import (
	"fmt"

	"github.com/switchyard/switchyard/internal/rollout"
)

// decisive keeps what a person reading a timeline needs: every entry that
// is not a measurement, every failed or error verdict, and, before each
// step, promotion, rollback or pause, the latest verdict of each check
// (the measurements that decided). Analysis writes a verdict per check per
// interval: shown all, they pushed the steps out of `history --limit 50`.
// It returns the kept entries, the newest limit of them (0: all), and how
// many measurements it left out.
func decisive(h []rollout.HistoryEntry, limit int) (kept []rollout.HistoryEntry, hidden int) {
	pending := map[string]int{} // metric → index in h of its latest undisplayed verdict
	var order []string
	flush := func() {
		for _, m := range order {
			if i, ok := pending[m]; ok {
				kept = append(kept, h[i])
				hidden--
			}
		}
		pending, order = map[string]int{}, nil
	}
	for i, e := range h {
		v := e.Verdict
		if v == nil {
			switch e.Kind {
			case "step", "promoted", "rolled-back", "paused", "aborted", "switched", "promote", "judge-promote":
				flush()
			}
			kept = append(kept, e)
			continue
		}
		if v.Result == rollout.VerdictFailed || v.Result == rollout.VerdictError {
			delete(pending, v.Metric)
			kept = append(kept, e)
			continue
		}
		if _, ok := pending[v.Metric]; !ok {
			order = append(order, v.Metric)
		}
		pending[v.Metric] = i
		hidden++
	}
	if limit > 0 && len(kept) > limit {
		kept = kept[len(kept)-limit:]
	}
	return kept, hidden
}

// ofRollout keeps the entries of rollout id.
func ofRollout(h []rollout.HistoryEntry, id uint64) []rollout.HistoryEntry {
	var out []rollout.HistoryEntry
	for _, e := range h {
		if e.Rollout == id {
			out = append(out, e)
		}
	}
	return out
}

// outcome is the one sentence that says why the latest rollout in h that
// ended was promoted, rolled back or aborted (the machine writes the
// numbers behind the decision into that entry), or "" when none ended.
func outcome(h []rollout.HistoryEntry) string {
	for i := len(h) - 1; i >= 0; i-- {
		switch e := h[i]; e.Kind {
		case string(rollout.ResultPromoted), string(rollout.ResultRolledBack), string(rollout.ResultAborted), "rollback":
			return fmt.Sprintf("why: %s", e.Message)
		}
	}
	return ""
}
