package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
)

// hookedService is a blue-green service whose validateService hook is
// HOOK (a YAML flow list) with timeout TIMEOUT.
const hookedService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: LISTEN
  versions:
    - {name: blue, targets: ["BLUE"]}
    - {name: green, targets: ["GREEN"]}
  stable: blue
  healthCheck: {path: /health, interval: 100ms, timeout: 90ms, healthyThreshold: 1, unhealthyThreshold: 1}
  strategy:
    blueGreen: {}
  hooks:
    validateService: {command: HOOK, timeout: TIMEOUT}
`

// deployWithHook starts blue and green, a daemon whose validateService hook
// is hook, deploys green and returns the finished rollout and the history.
func deployWithHook(t *testing.T, hook, timeout string) (admin.ServiceStatus, []rollout.HistoryEntry) {
	t.Helper()
	blue, green := startApp(t, "blue"), startApp(t, "green")
	doc := strings.NewReplacer("BLUE", blue.addr(), "GREEN", green.addr(), "HOOK", hook, "TIMEOUT", timeout).Replace(hookedService)
	_, c, _ := startDaemon(t, doc)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "green"}); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, c, "the rollout of green to end", func(st admin.ServiceStatus) bool {
		return st.LastRollout != nil && st.LastRollout.Version == "green"
	})
	h, err := c.History(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	return st, h
}

func hookMessages(h []rollout.HistoryEntry) []string {
	var out []string
	for _, e := range h {
		if e.Kind == "hook" {
			out = append(out, e.Message)
		}
	}
	return out
}

// TestSeedValidateServicePasses runs the seed's validate_service.sh,
// unchanged, as the validateService hook: it polls the new version's
// /health on localhost:$PORT, which Switchyard sets for a one-target
// version, and the rollout is promoted.
func TestSeedValidateServicePasses(t *testing.T) {
	script, err := filepath.Abs("testdata/validate_service.sh")
	if err != nil {
		t.Fatal(err)
	}
	st, h := deployWithHook(t, `["`+script+`"]`, "2m")
	if st.LastRollout.Result != rollout.ResultPromoted || st.StableVersion != "green" {
		t.Fatalf("last rollout %+v, stable %q; want green promoted", st.LastRollout, st.StableVersion)
	}
	msgs := strings.Join(hookMessages(h), "\n")
	if !strings.Contains(msgs, "hook validateService succeeded; output: Service is healthy") {
		t.Errorf("history's hook entries lack the script's success and output:\n%s", msgs)
	}
}

// TestFailingHookRollsBack: a validateService hook that exits non-zero
// rolls back before green takes traffic; the reason names the hook and
// the history keeps its output.
func TestFailingHookRollsBack(t *testing.T) {
	st, h := deployWithHook(t, `["sh", "-c", "echo checking green; echo Service failed health check >&2; exit 1"]`, "1m")
	if st.LastRollout.Result != rollout.ResultRolledBack || st.StableVersion != "blue" || st.Weights["blue"] != 100 {
		t.Fatalf("last rollout %+v, stable %q, weights %v; want rolled back to blue 100", st.LastRollout, st.StableVersion, st.Weights)
	}
	if want := "hook validateService failed: exit status 1"; !strings.Contains(st.LastRollout.Reason, want) {
		t.Errorf("reason %q, want it to contain %q", st.LastRollout.Reason, want)
	}
	msgs := strings.Join(hookMessages(h), "\n")
	if !strings.Contains(msgs, "output: checking green\nService failed health check") {
		t.Errorf("history's hook entries lack the hook's output:\n%s", msgs)
	}
}

// TestHangingHookTimesOut: a hook that never ends is killed at its timeout
// and the rollout rolled back.
func TestHangingHookTimesOut(t *testing.T) {
	st, _ := deployWithHook(t, `["sh", "-c", "echo waiting; sleep 300"]`, "1s")
	if st.LastRollout.Result != rollout.ResultRolledBack || st.StableVersion != "blue" {
		t.Fatalf("last rollout %+v, stable %q; want rolled back to blue", st.LastRollout, st.StableVersion)
	}
	// The machine's tick or the executor's kill reports it, whichever is first.
	if r := st.LastRollout.Reason; !strings.Contains(r, "validateService") ||
		!strings.Contains(r, "did not finish within 1s") && !strings.Contains(r, "timed out after 1s") {
		t.Errorf("reason %q, want the validateService hook's 1s timeout", r)
	}
}
