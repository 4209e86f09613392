package rollout

import (
	"slices"
	"strings"

	"github.com/switchyard/switchyard/internal/spec"
)

// WebhookPrefix starts the Name of a Gate or Hook step that calls a webhook
// of spec.webhooks ("webhook:load-test"), so a stored plan says what it
// calls with the step kinds it already has and an executor can tell a
// webhook from a lifecycle hook.
const WebhookPrefix = "webhook:"

// WebhookName returns the webhook a step or action name calls, and whether
// it names one.
func WebhookName(name string) (string, bool) {
	return strings.CutPrefix(name, WebhookPrefix)
}

// withWebhooks places the webhooks of sp into steps compiled with their
// lifecycle hooks, where Flagger calls them:
//
//   - confirm-rollout gates, then pre-rollout calls, right after the health
//     gate: before the lifecycle hooks and before any traffic;
//   - a confirm-traffic-increase gate before every setWeight that raises
//     the new version's weight (a canary's steps; a blue-green has none);
//   - confirm-promotion gates before the switch.
//
// A gate is asked before a beforeAllowTraffic hook that precedes its step,
// so nothing prepares traffic that a gate then refuses. A gate holds until
// its webhook answers 200, at most progress (the progress deadline); a
// pre-rollout call must succeed within its timeouts and retries. The
// rollout, rollback, post-rollout and event webhooks are called by the
// runner, not as steps.
func withWebhooks(steps []Step, sp *spec.ServiceSpec) []Step {
	if len(sp.Webhooks) == 0 {
		return steps
	}
	gates := func(typ string) []Step {
		var out []Step
		for _, w := range sp.WebhooksOf(typ) {
			out = append(out, Step{Kind: StepGate, Name: WebhookPrefix + w.Name, Timeout: sp.ProgressDeadline.Duration})
		}
		return out
	}
	var out []Step
	weight := 0
	for _, st := range steps {
		var before []Step
		switch {
		case st.Kind == StepSetWeight && st.Weight > weight:
			before = gates(spec.WebhookConfirmTrafficIncrease)
		case st.Kind == StepSwitch:
			before = gates(spec.WebhookConfirmPromotion)
		}
		if st.Kind == StepSetWeight {
			weight = st.Weight
		}
		if len(before) > 0 {
			i := len(out)
			if i > 0 && out[i-1].Kind == StepHook && out[i-1].Name == spec.HookBeforeAllowTraffic {
				i--
			}
			out = slices.Insert(out, i, before...)
		}
		out = append(out, st)
		if st.Kind == StepHealthGate {
			out = append(out, gates(spec.WebhookConfirmRollout)...)
			for _, w := range sp.WebhooksOf(spec.WebhookPreRollout) {
				out = append(out, Step{Kind: StepHook, Name: WebhookPrefix + w.Name, Timeout: w.Budget()})
			}
		}
	}
	return out
}
