package daemon

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/testenv"
)

// promService judges the canary by a PromQL query over Switchyard's own
// switchyard_requests_total, scraped by a real Prometheus.
const promService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
  stable: blue
  # Tolerant probes: these tests judge by Prometheus, and a slow probe on a
  # busy machine must not roll the canary back for health instead.
  healthCheck: {path: /health, interval: 500ms, timeout: 450ms, healthyThreshold: 1, unhealthyThreshold: 5}
  strategy:
    canary:
      steps: [{setWeight: 50}, {pause: {duration: PAUSE}}]
  analysis:
    interval: 2s
    threshold: 2
    consecutiveErrorLimit: 3
    metrics:
      - name: error-rate
        prometheus:
          address: PROM
          query: >-
            (sum(rate(switchyard_requests_total{service="{{ service }}",version="{{ version }}",code=~"5.."}[{{ interval }}])) or vector(0))
            / sum(rate(switchyard_requests_total{service="{{ service }}",version="{{ version }}"}[{{ interval }}]))
        thresholdRange: {max: 0.01}
`

// startPromDaemon runs Prometheus scraping a daemon's /metrics on a fixed
// admin address, then the daemon, allowed to query it on loopback.
func startPromDaemon(t *testing.T, doc string) (*Daemon, *admin.Client, string, *testenv.Prometheus) {
	t.Helper()
	adminAddr, listen := testenv.FreeAddr(t), testenv.FreeAddr(t)
	prom := testenv.StartPrometheus(t, 500*time.Millisecond, adminAddr)
	svcs := parseDoc(t, strings.NewReplacer("LISTEN", listen, "PROM", prom.URL()).Replace(doc))
	d, c, _ := runDaemon(t, svcs, Options{Admin: adminAddr, EgressAllow: loopback})
	return d, c, listen, prom
}

// TestPrometheusCheckRollsBackBadVersion: a canary failing 5% of its
// requests is rolled back by a Prometheus query, and the history names the
// check and the value it measured.
func TestPrometheusCheckRollsBackBadVersion(t *testing.T) {
	testenv.Integration(t)
	blue, green := startApp(t, "blue"), startApp(t, "green")
	green.failEvery.Store(20) // 5% of requests fail
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "PAUSE", "60s").Replace(promService)
	_, c, listen, _ := startPromDaemon(t, doc)
	stop := make(chan struct{})
	defer close(stop)
	load(t, listen, stop)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	var st admin.ServiceStatus
	testenv.WaitFor(t, 60*time.Second, func() bool {
		var err error
		st, err = c.Service(ctx, "web")
		return err == nil && st.LastRollout != nil
	}, "the bad canary's rollout to end")
	if st.LastRollout.Result != rollout.ResultRolledBack || !strings.Contains(st.LastRollout.Reason, "error-rate") {
		t.Fatalf("last rollout %+v, want rolled back by error-rate", st.LastRollout)
	}
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, e := range h {
		if v := e.Verdict; v != nil && v.Metric == "error-rate" && v.Result == rollout.VerdictFailed {
			failed++
			if v.Value < 0.02 || !strings.Contains(v.Reason, "above the maximum 0.01") {
				t.Errorf("failed verdict %+v, want the measured error rate (about 0.05) and the bound", *v)
			}
		}
	}
	if failed < 2 {
		t.Errorf("%d failed error-rate verdicts in the history, want the 2 of the threshold", failed)
	}
}

// TestPrometheusDownPausesNeverPromotes: with Prometheus stopped mid-
// rollout, the checks become errors; the rollout holds, then pauses after
// consecutiveErrorLimit of them, saying why, and never promotes.
func TestPrometheusDownPausesNeverPromotes(t *testing.T) {
	testenv.Integration(t)
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "PAUSE", "4s").Replace(promService)
	_, c, listen, prom := startPromDaemon(t, doc)
	stop := make(chan struct{})
	defer close(stop)
	load(t, listen, stop)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	var st admin.ServiceStatus
	testenv.WaitFor(t, 30*time.Second, func() bool {
		var err error
		st, err = c.Service(ctx, "web")
		return err == nil && st.Weights["green"] == 50
	}, "the canary at 50%")
	prom.Stop(syscall.SIGTERM)
	st = waitPausedOrEnded(t, c)
	if st.LastRollout != nil || st.Phase != rollout.PhasePaused || st.Weights["green"] != 50 {
		t.Fatalf("with Prometheus down: phase %s, weights %v, last rollout %+v; want paused at 50%%, not promoted", st.Phase, st.Weights, st.LastRollout)
	}
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	var paused string
	for _, e := range h {
		if e.Kind == "paused" {
			paused = e.Message
		}
	}
	if !strings.Contains(paused, "consecutiveErrorLimit 3") || !strings.Contains(paused, "error-rate") {
		t.Errorf("pause message %q, want it to name the check and the limit", paused)
	}
}

// TestPrometheusOnLoopbackRefused: without the allowlist a metric address
// on loopback is refused at dial time; the checks are errors, the rollout
// pauses and never promotes, and the reason says why.
func TestPrometheusOnLoopbackRefused(t *testing.T) {
	testenv.Integration(t)
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "PAUSE", "4s",
		"LISTEN", testenv.FreeAddr(t), "PROM", "http://127.0.0.1:9").Replace(promService)
	_, c, _ := runDaemon(t, parseDoc(t, doc), Options{}) // no allowlist: loopback is refused
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitPausedOrEnded(t, c)
	if st.LastRollout != nil {
		t.Fatalf("with Prometheus refused: last rollout %+v, want paused, never promoted", st.LastRollout)
	}
	found := false
	for _, v := range st.LastVerdicts {
		found = found || (v.Result == rollout.VerdictError && strings.Contains(v.Reason, "destination refused"))
	}
	if !found {
		t.Errorf("verdicts %+v, want an error saying the destination was refused", st.LastVerdicts)
	}
}

// waitPausedOrEnded waits until web's rollout paused or ended.
func waitPausedOrEnded(t *testing.T, c *admin.Client) admin.ServiceStatus {
	t.Helper()
	var st admin.ServiceStatus
	testenv.WaitFor(t, 30*time.Second, func() bool {
		var err error
		st, err = c.Service(context.Background(), "web")
		return err == nil && (st.Phase == rollout.PhasePaused || st.LastRollout != nil)
	}, "the rollout to pause or end")
	return st
}
