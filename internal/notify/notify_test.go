package notify

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/egress"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// TestErrorsNeverCarryTheURL: a Slack URL is a token; a failed delivery
// says which channel and why, never the URL.
func TestErrorsNeverCarryTheURL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(file, []byte("http://127.0.0.1:1/services/T0/B0/supersecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := New(slog.New(slog.DiscardHandler), nil, egress.Policy{}.Client(0))
	ch := spec.Notification{Name: "team", Type: spec.NotifySlack, URLFile: file}
	err := n.send(context.Background(), "web", ch, "deploy", rollout.HistoryEntry{Kind: "deploy", Message: "m"})
	if err == nil || strings.Contains(err.Error(), "supersecret") || !strings.Contains(err.Error(), "channel team") {
		t.Fatalf("send = %v, want an error naming the channel and not the URL", err)
	}
}

func TestWanted(t *testing.T) {
	all := spec.Notification{}
	only := spec.Notification{Events: []string{"promoted"}}
	failed := rollout.HistoryEntry{Kind: "verdict", Verdict: &rollout.VerdictRecord{Result: rollout.VerdictFailed}}
	passed := rollout.HistoryEntry{Kind: "verdict", Verdict: &rollout.VerdictRecord{Result: rollout.VerdictPassed}}
	for _, tc := range []struct {
		ch   spec.Notification
		e    rollout.HistoryEntry
		kind string
		ok   bool
	}{
		{all, rollout.HistoryEntry{Kind: "deploy"}, "deploy", true},
		{all, rollout.HistoryEntry{Kind: "weights"}, "weights", false},
		{all, failed, "analysis-failed", true},
		{all, passed, "", false},
		{only, rollout.HistoryEntry{Kind: "deploy"}, "deploy", false},
		{only, rollout.HistoryEntry{Kind: "promoted"}, "promoted", true},
	} {
		if kind, ok := wanted(tc.ch, tc.e); kind != tc.kind || ok != tc.ok {
			t.Errorf("wanted(%v, %s) = %q, %v; want %q, %v", tc.ch.Events, tc.e.Kind, kind, ok, tc.kind, tc.ok)
		}
	}
}
