package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/hook"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/testenv"
)

// webhookService is a canary of green with analysis every second (the built-in windows are whole seconds) and the
// webhooks WEBHOOKS (a YAML list indented under spec.webhooks).
const webhookService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  progressDeadline: 30s
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {duration: 400ms}
  analysis:
    interval: 1s
    threshold: 3
    consecutiveErrorLimit: 20
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 90}, minSamples: 1}
  webhooks:
WEBHOOKS`

// receiver is a webhook receiver on loopback that records every call.
type receiver struct {
	*httptest.Server
	status atomic.Int64 // the answer; 200 unless set
	mu     sync.Mutex
	calls  []call
}

type call struct {
	header http.Header
	body   []byte
	status int // what the receiver answered
}

func startReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.status.Store(http.StatusOK)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		status := int(r.status.Load())
		r.mu.Lock()
		r.calls = append(r.calls, call{req.Header.Clone(), b, status})
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// startWebhookDaemon runs a daemon for the webhooks, allowed to reach
// loopback when allow is set, with blue and green serving and load on it.
func startWebhookDaemon(t *testing.T, webhooks string, allow bool) *admin.Client {
	t.Helper()
	blue, green := startApp(t, "blue"), startApp(t, "green")
	listen := testenv.FreeAddr(t)
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "LISTEN", listen, "WEBHOOKS", webhooks).Replace(webhookService)
	var opts Options
	if allow {
		opts.EgressAllow = loopback
	}
	_, c, _ := runDaemon(t, parseDoc(t, doc), opts)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	load(t, listen, stop)
	if _, err := c.Deploy(context.Background(), "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func history(t *testing.T, c *admin.Client) string {
	t.Helper()
	h, err := c.History(context.Background(), "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range h {
		b.WriteString(e.Message + "\n")
	}
	return b.String()
}

// TestConfirmPromotionHoldsAndLoadTestGetsFlaggerPayload: a
// confirm-promotion gate holds the canary before the switch until its
// receiver answers 200, while a load-test webhook (type rollout, the seed's
// metadata.cmd) is called every interval with Flagger's payload, signed.
func TestConfirmPromotionHoldsAndLoadTestGetsFlaggerPayload(t *testing.T) {
	const secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw=="
	t.Setenv("WEB_WEBHOOK_SECRET", secret)
	gate, loadtester, post := startReceiver(t), startReceiver(t), startReceiver(t)
	gate.status.Store(http.StatusForbidden)
	c := startWebhookDaemon(t, `    - name: load-test
      type: rollout
      url: `+loadtester.URL+`/
      timeout: 5s
      secretEnv: WEB_WEBHOOK_SECRET
      metadata:
        type: cmd
        cmd: "hey -z 1m -q 10 -c 2 http://myapp-canary:8080/"
    - {name: approve, type: confirm-promotion, url: `+gate.URL+`/gate/approve}
    - {name: done, type: post-rollout, url: `+post.URL+`/}
`, true)

	st := waitFor(t, c, "the confirm-promotion gate to be asked twice", func(st admin.ServiceStatus) bool {
		return strings.HasPrefix(st.Step.Description, "gate webhook:approve") && len(gate.received()) >= 2
	})
	if st.LastRollout != nil && st.LastRollout.Version == "green" {
		t.Fatalf("green finished (%+v) before its gate answered 200", st.LastRollout)
	}
	if st.StableVersion != "blue" {
		t.Fatalf("stable is %q while the gate is closed, want blue", st.StableVersion)
	}
	gate.status.Store(http.StatusOK)
	st = waitFor(t, c, "green to be promoted", func(st admin.ServiceStatus) bool {
		return st.LastRollout != nil && st.LastRollout.Version == "green"
	})
	if st.LastRollout.Result != rollout.ResultPromoted {
		t.Fatalf("last rollout %+v, want promoted", st.LastRollout)
	}

	calls := loadtester.received()
	if len(calls) == 0 {
		t.Fatal("the load-test webhook was never called")
	}
	var got map[string]any
	if err := json.Unmarshal(calls[0].body, &got); err != nil {
		t.Fatalf("payload %s: %v", calls[0].body, err)
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"checksum", "metadata", "name", "namespace", "phase"}; !slices.Equal(keys, want) {
		t.Errorf("payload keys %v, want Flagger's %v", keys, want)
	}
	var p hook.Payload
	json.Unmarshal(calls[0].body, &p)
	if p.Name != "web" || p.Namespace != "default" || p.Phase != "Progressing" || p.Checksum != hook.Checksum("web", "green") ||
		p.Metadata["cmd"] != "hey -z 1m -q 10 -c 2 http://myapp-canary:8080/" || p.Metadata["type"] != "cmd" {
		t.Errorf("payload %s, want Flagger's shape for web/green in phase Progressing with the seed's cmd", calls[0].body)
	}
	h := calls[0].header
	ts, _ := parseInt(h.Get("webhook-timestamp"))
	if want := hook.Sign([]byte(secret), h.Get("webhook-id"), ts, calls[0].body); h.Get("webhook-signature") != want || !strings.HasPrefix(h.Get("webhook-id"), "msg_") {
		t.Errorf("headers id %q timestamp %q signature %q; want a signature %q", h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature"), want)
	}
	if g := gate.received(); g[0].header.Get("webhook-signature") != "" {
		t.Errorf("the gate, which has no secret, got a signature")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return len(post.received()) > 0 }, "the post-rollout webhook")
	var pp hook.Payload
	json.Unmarshal(post.received()[0].body, &pp)
	if pp.Phase != "Succeeded" {
		t.Errorf("post-rollout phase %q, want Succeeded", pp.Phase)
	}
	hist := history(t, c)
	if !strings.Contains(hist, "gate webhook:approve opened") || !strings.Contains(hist, "webhook:load-test passed") {
		t.Errorf("history lacks the gate and the load test:\n%s", hist)
	}
	if strings.Contains(hist, "c2VjcmV0") {
		t.Errorf("history shows the secret:\n%s", hist)
	}
}

func parseInt(s string) (int64, error) {
	var n int64
	err := json.Unmarshal([]byte(s), &n)
	return n, err
}

// TestPreRolloutFailureRollsBack: a pre-rollout webhook that answers 500
// (after its retry) rolls back before green takes traffic.
func TestPreRolloutFailureRollsBack(t *testing.T) {
	smoke := startReceiver(t)
	smoke.status.Store(http.StatusInternalServerError)
	c := startWebhookDaemon(t, "    - {name: smoke, type: pre-rollout, url: "+smoke.URL+"/, retries: 1}\n", true)
	st := waitFor(t, c, "the rollout of green to end", func(st admin.ServiceStatus) bool {
		return st.LastRollout != nil && st.LastRollout.Version == "green"
	})
	if st.LastRollout.Result != rollout.ResultRolledBack || st.StableVersion != "blue" {
		t.Fatalf("last rollout %+v, stable %q; want rolled back to blue", st.LastRollout, st.StableVersion)
	}
	if n := len(smoke.received()); n != 2 {
		t.Errorf("pre-rollout called %d times, want 2 (one retry)", n)
	}
	if hist := history(t, c); !strings.Contains(hist, "hook webhook:smoke failed: webhook smoke (pre-rollout): answered HTTP 500") {
		t.Errorf("history does not say the pre-rollout webhook failed:\n%s", hist)
	}
}

// TestWebhookToLoopbackRefused: without an allowlist, a webhook on
// 127.0.0.1 is refused at dial time and the rollout rolls back, saying so.
func TestWebhookToLoopbackRefused(t *testing.T) {
	smoke := startReceiver(t)
	c := startWebhookDaemon(t, "    - {name: smoke, type: pre-rollout, url: "+smoke.URL+"/, retries: 0}\n", false)
	st := waitFor(t, c, "the rollout of green to end", func(st admin.ServiceStatus) bool {
		return st.LastRollout != nil && st.LastRollout.Version == "green"
	})
	if st.LastRollout.Result != rollout.ResultRolledBack {
		t.Fatalf("last rollout %+v, want rolled back", st.LastRollout)
	}
	if n := len(smoke.received()); n != 0 {
		t.Errorf("the refused receiver got %d calls", n)
	}
	if hist := history(t, c); !strings.Contains(hist, "destination refused") || !strings.Contains(hist, "egress allowlist") {
		t.Errorf("history does not say the destination was refused:\n%s", hist)
	}
}
