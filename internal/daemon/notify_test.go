package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// notifyReceiver records the notifications it is sent; it answers 500 while down.
type notifyReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	down   atomic.Bool
}

func startNotifyReceiver(t *testing.T) *notifyReceiver {
	r := &notifyReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("notification is not JSON: %q", b)
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, m)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// texts returns each notification's "text" (Slack) or "kind" (webhook).
func (r *notifyReceiver) field(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.bodies {
		s, _ := b[name].(string)
		out = append(out, s)
	}
	return out
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
	svcs, err := spec.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Options{Services: svcs, StateDir: stateDir, Admin: "127.0.0.1:0", Tick: 50 * time.Millisecond,
		EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	testenv.WaitFor(t, 10*time.Second, func() bool { return d.AdminURL() != "" && d.readyErr() == nil }, "the daemon to be ready")
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return admin.NewClient(d.AdminURL(), d.Token(), admin.WithUser("alice")), stop
}

// TestNotificationsSurviveRestart: events that could not be delivered
// before serve stopped (the receivers were down) are delivered after the
// next start, in order, none lost and none sent more than twice; Slack gets
// blocks with a text fallback, the webhook the event as JSON.
func TestNotificationsSurviveRestart(t *testing.T) {
	blue, green := startApp(t, "blue"), startApp(t, "green")
	slack, audit := startNotifyReceiver(t), startNotifyReceiver(t)
	slackFile := filepath.Join(t.TempDir(), "slack-url")
	if err := os.WriteFile(slackFile, []byte(slack.URL+"/services/T000/B000/secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWITCHYARD_TEST_AUDIT_URL", audit.URL+"/audit")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "SLACKFILE", slackFile, "LISTEN", testenv.FreeAddr(t)).Replace(notifiedService)
	state := t.TempDir()

	c, stop := runNotified(t, doc, state)
	slack.down.Store(true)
	audit.down.Store(true)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		st, err := c.Service(ctx, "web")
		return err == nil && st.Weights["green"] == 50
	}, "the canary at its pause")
	stop()

	slack.down.Store(false)
	audit.down.Store(false)
	c, _ = runNotified(t, doc, state)
	if _, err := c.Promote(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	want := []string{"deploy", "step", "step", "switched", "promoted"}
	testenv.WaitFor(t, 20*time.Second, func() bool { return containsInOrder(audit.field("kind"), want) }, "every event at the webhook: "+strings.Join(audit.field("kind"), ","))
	expected, got := map[string]int{}, map[string]int{}
	for _, k := range want {
		expected[k]++
	}
	for _, k := range audit.field("kind") {
		got[k]++
	}
	for k, n := range got {
		if n > 2*expected[k] {
			t.Errorf("%s delivered %d times, want %d, at most twice each", k, n, expected[k])
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		texts := slack.field("text")
		return len(texts) > 0 && strings.Contains(texts[len(texts)-1], "promoted")
	}, "the promotion in Slack")
	slack.mu.Lock()
	first := slack.bodies[0]
	slack.mu.Unlock()
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
