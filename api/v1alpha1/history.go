package v1alpha1

import (
	"strconv"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard/switchyard/internal/rollout"
)

// MaxHistory is how many entries status.history keeps (the oldest go
// first); maxHistoryMessage bounds each entry's message.
const (
	MaxHistory        = 100
	maxHistoryMessage = 1024
)

// HistoryEntry is one event of a Rollout's timeline (the engine's
// rollout.HistoryEntry).
type HistoryEntry struct {
	// At is when it happened.
	At metav1.Time `json:"at"`
	// Rollout is the number of the rollout it belongs to.
	Rollout int64 `json:"rollout"`
	// Kind is deploy, step, switched, weights, verdict, promote, paused,
	// resumed, promoted, rolled-back, aborted, retired, router-failed,
	// degraded, recovered or judge-promote.
	Kind string `json:"kind"`
	// By is who asked, for a command.
	// +optional
	By string `json:"by,omitempty"`
	// Step is the step's index, from 0.
	// +optional
	Step int32 `json:"step,omitempty"`
	// Weights are the percentages of traffic by revision set then.
	// +optional
	Weights map[string]int32 `json:"weights,omitempty"`
	// Verdict is a failed or erroring measurement.
	// +optional
	Verdict *Verdict `json:"verdict,omitempty"`
	// Message says what happened, in a sentence.
	// +optional
	Message string `json:"message,omitempty"`
}

// AppendHistory adds the engine's entries to status.history, keeping what
// explains a rollout within MaxHistory entries: every step, decision and
// command, and of the measurements only those that failed or erred (the
// latest of each check is in status.verdicts).
func (s *RolloutStatus) AppendHistory(entries ...rollout.HistoryEntry) {
	for _, h := range entries {
		if h.Verdict != nil && h.Verdict.Result != rollout.VerdictFailed && h.Verdict.Result != rollout.VerdictError {
			continue
		}
		e := HistoryEntry{
			At: metav1.NewTime(h.At), Rollout: int64(h.Rollout), Kind: h.Kind, By: h.By,
			Step: int32(h.Step), Weights: weights32(h.Weights), Message: truncateText(h.Message, maxHistoryMessage),
		}
		if v := h.Verdict; v != nil {
			vv := verdictOf(*v)
			vv.Reason = truncateText(vv.Reason, maxHistoryMessage)
			e.Verdict = &vv
		}
		s.History = append(s.History, e)
	}
	if n := len(s.History) - MaxHistory; n > 0 {
		s.History = append(s.History[:0:0], s.History[n:]...)
	}
}

// EngineHistory returns status.history as the engine's entries, for the
// tools that show a standalone service's history.
func (s *RolloutStatus) EngineHistory() []rollout.HistoryEntry {
	out := make([]rollout.HistoryEntry, 0, len(s.History))
	for _, e := range s.History {
		h := rollout.HistoryEntry{
			At: e.At.Time, Rollout: uint64(max(e.Rollout, 0)), Kind: e.Kind, By: e.By, Step: int(e.Step), Message: e.Message,
		}
		if len(e.Weights) > 0 {
			h.Weights = rollout.Weights{}
			for v, w := range e.Weights {
				h.Weights[v] = int(w)
			}
		}
		if v := e.Verdict; v != nil {
			vr := rollout.VerdictRecord{Metric: v.Metric, Result: rollout.VerdictResult(v.Result), Samples: v.Samples, Reason: v.Reason}
			vr.Value, _ = strconv.ParseFloat(v.Value, 64)
			if v.At != nil {
				vr.At = v.At.Time
			}
			h.Verdict = &vr
		}
		out = append(out, h)
	}
	return out
}

// verdictOf is a verdict as the status shows it.
func verdictOf(vr rollout.VerdictRecord) Verdict {
	v := Verdict{Metric: vr.Metric, Result: string(vr.Result), Samples: vr.Samples, Reason: vr.Reason,
		Value: strconv.FormatFloat(vr.Value, 'g', 6, 64)}
	if !vr.At.IsZero() {
		t := metav1.NewTime(vr.At)
		v.At = &t
	}
	return v
}

// truncateText cuts s to at most n bytes, on a rune boundary, marking the cut.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
