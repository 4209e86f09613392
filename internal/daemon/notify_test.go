package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/testenv"
)

// field returns the string field name of every JSON body r accepted
// ("text" for Slack, "kind" for a webhook notification); calls it answered
// while down were not delivered.
func field(t *testing.T, r *receiver, name string) []string {
	var out []string
	for _, c := range r.received() {
		if c.status/100 != 2 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(c.body, &m); err != nil {
			t.Errorf("notification is not JSON: %q", c.body)
			continue
		}
		s, _ := m[name].(string)
		out = append(out, s)
	}
	return out
}

// setDown makes r answer 503 (down) or 200.
func setDown(r *receiver, down bool) {
	if down {
		r.status.Store(http.StatusServiceUnavailable)
	} else {
		r.status.Store(http.StatusOK)
	}
}

const notifiedService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 3}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {}}]
  notifications:
    - {name: team, type: slack, urlFile: SLACKFILE}
    - {name: audit, type: webhook, urlEnv: SWITCHYARD_TEST_AUDIT_URL}
`

// runNotified runs a daemon on stateDir until the returned stop is called.
func runNotified(t *testing.T, doc, stateDir string) (*admin.Client, func()) {
	t.Helper()
	_, c, stop := runDaemon(t, parseDoc(t, doc), Options{StateDir: stateDir, EgressAllow: loopback})
	return c, stop
}

// TestNotificationsSurviveRestart: events that could not be delivered
// before serve stopped (the receivers were down) are delivered after the
// next start, in order, none lost and none sent more than twice; Slack gets
// blocks with a text fallback, the webhook the event as JSON.
func TestNotificationsSurviveRestart(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	slack, audit := startReceiver(t), startReceiver(t)
	slackFile := filepath.Join(t.TempDir(), "slack-url")
	if err := os.WriteFile(slackFile, []byte(slack.URL+"/services/T000/B000/secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWITCHYARD_TEST_AUDIT_URL", audit.URL+"/audit")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "SLACKFILE", slackFile, "LISTEN", testenv.FreeAddr(t)).Replace(notifiedService)
	state := t.TempDir()

	c, stop := runNotified(t, doc, state)
	setDown(slack, true)
	setDown(audit, true)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		st, err := c.Service(ctx, "web")
		return err == nil && st.Weights["green"] == 50
	}, "the canary at its pause")
	stop()

	setDown(slack, false)
	setDown(audit, false)
	c, _ = runNotified(t, doc, state)
	if _, err := c.Promote(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	want := []string{"deploy", "step", "step", "switched", "promoted"}
	testenv.WaitFor(t, 20*time.Second, func() bool { return containsInOrder(field(t, audit, "kind"), want) }, "every event at the webhook: "+strings.Join(field(t, audit, "kind"), ","))
	expected, got := map[string]int{}, map[string]int{}
	for _, k := range want {
		expected[k]++
	}
	for _, k := range field(t, audit, "kind") {
		got[k]++
	}
	for k, n := range got {
		if n > 2*expected[k] {
			t.Errorf("%s delivered %d times, want %d, at most twice each", k, n, expected[k])
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		texts := field(t, slack, "text")
		return len(texts) > 0 && strings.Contains(texts[len(texts)-1], "promoted")
	}, "the promotion in Slack")
	var first map[string]any
	for _, c := range slack.received() {
		if c.status/100 == 2 && json.Unmarshal(c.body, &first) == nil {
			break // the first delivered, not an attempt answered while down
		}
	}
	if blocks, ok := first["blocks"].([]any); !ok || len(blocks) == 0 || !strings.HasPrefix(first["text"].(string), "web deploy") {
		t.Errorf("Slack payload %v, want blocks and a text fallback starting with the service and event", first)
	}
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(h)
	if strings.Contains(string(b), "secret") || strings.Contains(string(b), "/audit") {
		t.Errorf("a notification URL leaked into the history")
	}
	if h[len(h)-1].Kind != string(rollout.ResultPromoted) && !strings.Contains(string(b), `"promoted"`) {
		t.Errorf("history does not end with the promotion")
	}
}

// containsInOrder reports whether want is a subsequence of got.
func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
