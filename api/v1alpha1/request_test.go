package v1alpha1

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/internal/rollout"
)

func TestParseRequest(t *testing.T) {
	good := Request{ID: "a1", Command: CommandAbort, Reason: "bad canary", By: "alice"}
	got, err := ParseRequest(good.String())
	if err != nil || got != good {
		t.Fatalf("ParseRequest(%s) = %+v, %v; want %+v", good.String(), got, err, good)
	}
	for _, tt := range []struct{ value, want string }{
		{"promote", "is not a request"},
		{`{"command":"promote"}`, "id is empty"},
		{`{"id":" ","command":"promote"}`, "id is empty"},
		{`{"id":"x","command":"deploy"}`, `command "deploy" is not one of`},
		{`{"id":"x"}`, `command "" is not one of`},
	} {
		_, err := ParseRequest(tt.value)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), AnnotationRequest) {
			t.Errorf("ParseRequest(%s) = %v; want an error naming %s and saying %q", tt.value, err, AnnotationRequest, tt.want)
		}
	}
}

func TestHistory(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	failed := &rollout.VerdictRecord{Metric: "success-rate", Result: rollout.VerdictFailed, Value: 0.93, Samples: 120, Reason: "below 0.99", At: at}
	var s RolloutStatus
	s.AppendHistory(
		rollout.HistoryEntry{At: at, Rollout: 3, Kind: "deploy", By: "template change", Weights: rollout.Weights{"r1": 100, "r2": 0}, Message: "deploy r2"},
		rollout.HistoryEntry{At: at, Rollout: 3, Kind: "verdict", Verdict: &rollout.VerdictRecord{Metric: "p99", Result: rollout.VerdictPassed, Value: 0.2}},
		rollout.HistoryEntry{At: at, Rollout: 3, Kind: "verdict", Verdict: failed},
		rollout.HistoryEntry{At: at, Rollout: 3, Kind: "promote", By: "alice", Step: 2, Message: strings.Repeat("é", 1000)},
	)
	if len(s.History) != 3 {
		t.Fatalf("history has %d entries, want 3 (a passed verdict is left out): %+v", len(s.History), s.History)
	}
	if m := s.History[2].Message; len(m) > maxHistoryMessage || !utf8.ValidString(m) || !strings.HasSuffix(m, "…") {
		t.Fatalf("a long message is %d bytes, valid UTF-8 %v; want at most %d, cut on a rune and marked", len(m), utf8.ValidString(m), maxHistoryMessage)
	}
	back := s.EngineHistory()
	if len(back) != 3 || back[0].Weights["r1"] != 100 || back[0].By != "template change" || back[2].Step != 2 || !back[0].At.Equal(at) {
		t.Fatalf("EngineHistory = %+v", back)
	}
	if v := back[1].Verdict; v == nil || v.Metric != "success-rate" || v.Result != rollout.VerdictFailed || v.Value != 0.93 || v.Samples != 120 || !v.At.Equal(at) {
		t.Fatalf("the failed verdict came back as %+v", back[1].Verdict)
	}

	for i := range MaxHistory + 20 {
		s.AppendHistory(rollout.HistoryEntry{At: at, Rollout: 4, Kind: "step", Step: i})
	}
	if len(s.History) != MaxHistory {
		t.Fatalf("history has %d entries, want the newest %d", len(s.History), MaxHistory)
	}
	if first, last := s.History[0], s.History[MaxHistory-1]; first.Step != 20 || last.Step != MaxHistory+19 {
		t.Fatalf("history kept steps %d..%d, want the newest: 20..%d", first.Step, last.Step, MaxHistory+19)
	}
}
