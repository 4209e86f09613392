package spec

import (
	"fmt"
	"slices"
	"strings"
)

// Notification is a channel the rollout's events are sent to: a Slack
// incoming webhook or a generic JSON webhook. Deliveries go through the
// store's history (the outbox): a crash loses none and sends each at most
// twice.
type Notification struct {
	// Name identifies the channel among the service's (unique); it keys how
	// far delivery has got.
	Name string `json:"name"`

	// +kubebuilder:validation:Enum=slack;webhook

	// Type is "slack" (an incoming webhook: blocks with a text fallback) or
	// "webhook" (a JSON POST of the event).
	Type string `json:"type"`
	// URLFile is a file holding the URL. A Slack URL embeds its token, so the
	// URL is never in the spec, and never in logs, status or history.
	URLFile string `json:"urlFile,omitempty"`
	// URLEnv names an environment variable holding the URL, instead of URLFile.
	URLEnv string `json:"urlEnv,omitempty"`

	// +kubebuilder:validation:items:Enum=deploy;step;paused;resumed;switched;promoted;rolled-back;aborted;rollback;hook;gate;analysis-failed;judge-promote;degraded;recovered;removed;retired

	// Events are the kinds to send; default: all of NotificationEvents.
	Events []string `json:"events,omitempty"`
}

// Notification types.
const (
	NotifySlack   = "slack"
	NotifyWebhook = "webhook"
)

// NotificationEvents are the events a notification can be sent for: a
// rollout's start (deploy), each step, pause and resume, the switch,
// promotion, rollback and abort, hooks and gates, failed checks, and the
// service becoming degraded or recovering.
var NotificationEvents = []string{"deploy", "step", "paused", "resumed", "switched", "promoted", "rolled-back",
	"aborted", "rollback", "hook", "gate", "analysis-failed", "judge-promote", "degraded", "recovered", "removed", "retired"}

func (v *validator) notifications() {
	seen := map[string]int{}
	for i, n := range v.s.Spec.Notifications {
		p := fmt.Sprintf("spec.notifications[%d]", i)
		switch {
		case !metricName.MatchString(n.Name):
			v.add(p+".name", quote(n.Name), "must be letters, digits, '-', '_' or '.', like \"team-slack\"")
		default:
			if j, dup := seen[n.Name]; dup {
				v.add(p+".name", quote(n.Name), fmt.Sprintf("must be unique; notifications[%d] has the same name", j))
			}
			seen[n.Name] = i
		}
		if n.Type != NotifySlack && n.Type != NotifyWebhook {
			v.add(p+".type", quote(n.Type), fmt.Sprintf("must be %q or %q", NotifySlack, NotifyWebhook))
		}
		if (n.URLFile == "") == (n.URLEnv == "") {
			v.add(p, "", "needs exactly one of urlFile or urlEnv (the URL itself is a secret and is never written in the spec)")
		}
		for j, e := range n.Events {
			if !slices.Contains(NotificationEvents, e) {
				v.add(fmt.Sprintf("%s.events[%d]", p, j), quote(e), "must be one of "+strings.Join(NotificationEvents, ", "))
			}
		}
	}
}
