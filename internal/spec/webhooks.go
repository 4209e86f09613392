package spec

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Webhook types, Flagger's, so flagger-loadtester and existing gates work
// unchanged (docs/webhooks.md says where each is called).
const (
	WebhookConfirmRollout         = "confirm-rollout"
	WebhookPreRollout             = "pre-rollout"
	WebhookRollout                = "rollout"
	WebhookConfirmTrafficIncrease = "confirm-traffic-increase"
	WebhookConfirmPromotion       = "confirm-promotion"
	WebhookPostRollout            = "post-rollout"
	WebhookRollback               = "rollback"
	WebhookEvent                  = "event"
)

// WebhookTypes lists the webhook types.
var WebhookTypes = []string{
	WebhookConfirmRollout, WebhookPreRollout, WebhookRollout, WebhookConfirmTrafficIncrease,
	WebhookConfirmPromotion, WebhookPostRollout, WebhookRollback, WebhookEvent,
}

// Webhook defaults.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookRetries = 2
	// DefaultGatePoll is how often a confirm-* gate is asked again when the
	// service has no analysis (with analysis: every analysis.interval).
	DefaultGatePoll = 10 * time.Second
)

// Webhook is an HTTP call a rollout makes, with Flagger's payload
// {name, namespace, phase, checksum, metadata}, signed by the Standard
// Webhooks headers when a secret is set. Calls go through the egress
// policy: internal addresses are refused unless allowlisted.
type Webhook struct {
	// Name identifies the webhook (unique within the service), like load-test.
	Name string `json:"name"`

	// +kubebuilder:validation:Enum=confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback;event

	// Type is when it is called: confirm-rollout, pre-rollout, rollout,
	// confirm-traffic-increase, confirm-promotion, post-rollout, rollback or
	// event.
	Type string `json:"type"`
	// URL is the http or https address POSTed to; no user:password in it.
	URL string `json:"url"`
	// Timeout bounds one call (default 10s).
	Timeout Duration `json:"timeout,omitempty" range:"1s,5m"`

	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10

	// Retries (default 2) is how many times a failed call of pre-rollout, rollout,
	// post-rollout and event webhooks is tried again, with a backoff from
	// 1s doubling up to 30s (confirm-* gates are polled instead).
	Retries *int `json:"retries,omitempty" range:"0,10"`
	// SecretFile is a file holding the signing secret (relative to the
	// service file's directory); the secret itself never goes in the spec.
	SecretFile string `json:"secretFile,omitempty"`
	// SecretEnv is an environment variable of serve holding the signing
	// secret; at most one of secretFile and secretEnv.
	SecretEnv string `json:"secretEnv,omitempty"`
	// Metadata is sent as the payload's metadata, like Flagger's (cmd,
	// type for flagger-loadtester).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// WebhooksOf returns the webhooks of type t, in the spec's order.
func (sp *ServiceSpec) WebhooksOf(t string) []Webhook {
	var out []Webhook
	for _, w := range sp.Webhooks {
		if w.Type == t {
			out = append(out, w)
		}
	}
	return out
}

// Webhook returns the webhook named name, or nil.
func (sp *ServiceSpec) Webhook(name string) *Webhook {
	for i := range sp.Webhooks {
		if sp.Webhooks[i].Name == name {
			return &sp.Webhooks[i]
		}
	}
	return nil
}

// GatePoll is how often a confirm-* gate of this service is asked again:
// every analysis interval, as Flagger does, or DefaultGatePoll.
func (sp *ServiceSpec) GatePoll() time.Duration {
	if a := sp.Analysis; a != nil && a.Interval.Duration > 0 {
		return a.Interval.Duration
	}
	return DefaultGatePoll
}

// SecretPath is where w's secretFile is read from: relative to dir, the
// service file's directory.
func (w *Webhook) SecretPath(dir string) string {
	if w.SecretFile == "" || filepath.IsAbs(w.SecretFile) || dir == "" {
		return w.SecretFile
	}
	return filepath.Join(dir, w.SecretFile)
}

// Secret reads w's signing secret (nil when none is configured). Errors
// name where it was looked for, never the secret.
func (w *Webhook) Secret(dir string) ([]byte, error) {
	switch {
	case w.SecretFile != "":
		b, err := os.ReadFile(w.SecretPath(dir))
		if err != nil {
			return nil, fmt.Errorf("webhook %s: read secretFile: %w", w.Name, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil, fmt.Errorf("webhook %s: secretFile %s is empty", w.Name, w.SecretPath(dir))
		}
		return []byte(s), nil
	case w.SecretEnv != "":
		s := strings.TrimSpace(os.Getenv(w.SecretEnv))
		if s == "" {
			return nil, fmt.Errorf("webhook %s: environment variable %s (secretEnv) is not set", w.Name, w.SecretEnv)
		}
		return []byte(s), nil
	}
	return nil, nil
}

// defaultWebhooks gives every webhook its timeout and retries.
func defaultWebhooks(sp *ServiceSpec) {
	for i := range sp.Webhooks {
		w := &sp.Webhooks[i]
		setDuration(&w.Timeout, DefaultWebhookTimeout)
		if w.Retries == nil {
			n := DefaultWebhookRetries
			w.Retries = &n
		}
	}
}

// webhooks checks every webhook: a known type, an http(s) URL without
// credentials, unique names, one secret source that exists now, and
// analysis for the types called every analysis interval.
func (v *validator) webhooks() {
	sp := &v.s.Spec
	seen := map[string]int{}
	for i, w := range sp.Webhooks {
		p := fmt.Sprintf("spec.webhooks[%d]", i)
		switch {
		case w.Name == "":
			v.add(p+".name", "", "is required; a name like \"load-test\"")
		case !metricName.MatchString(w.Name):
			v.add(p+".name", quote(w.Name), "must be at most 63 letters, digits, '.', '_' and '-', starting with a letter or digit")
		default:
			if j, dup := seen[w.Name]; dup {
				v.add(p+".name", quote(w.Name), fmt.Sprintf("must be unique; spec.webhooks[%d] has the same name", j))
			} else {
				seen[w.Name] = i
			}
		}
		switch {
		case w.Type == "":
			v.add(p+".type", "", "is required; one of "+strings.Join(WebhookTypes, ", "))
		case !slices.Contains(WebhookTypes, w.Type):
			v.add(p+".type", quote(w.Type), "must be one of "+strings.Join(WebhookTypes, ", "))
		case (w.Type == WebhookRollout || w.Type == WebhookRollback) && sp.Analysis == nil:
			v.add(p+".type", quote(w.Type), "is called every analysis interval; set spec.analysis (interval and metrics), or use type pre-rollout for a single call")
		}
		if want := checkWebhookURL(w.URL); want != "" {
			v.add(p+".url", quote(redactURL(w.URL)), want)
		}
		switch {
		case w.SecretFile != "" && w.SecretEnv != "":
			v.add(p+".secretEnv", quote(w.SecretEnv), "must not be set with secretFile; choose one")
		case w.SecretFile != "":
			path := w.SecretPath(v.s.Dir())
			if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
				v.add(p+".secretFile", quote(w.SecretFile), fmt.Sprintf("must be a readable file; %s does not exist or is not a regular file (a relative path is resolved against the service file's directory)", path))
			}
		case w.SecretEnv != "":
			if os.Getenv(w.SecretEnv) == "" {
				v.add(p+".secretEnv", quote(w.SecretEnv), "must name an environment variable that is set where serve runs")
			}
		}
	}
}

// checkWebhookURL returns what is wrong with a webhook URL, or "".
func checkWebhookURL(raw string) string {
	if raw == "" {
		return "is required; an http or https URL like \"http://flagger-loadtester/\""
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "must be an http or https URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must be an http or https URL; the scheme is " + quote(u.Scheme)
	case u.Host == "":
		return "must name a host, like \"http://flagger-loadtester/\""
	case u.User != nil:
		return "must not carry a user or password; sign the calls with secretFile or secretEnv instead"
	}
	return ""
}

// redactURL drops a URL's user and password, so that an error about it
// never repeats them.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// MaxWebhookCall bounds one webhook call whatever its timeout says (the
// upper end of spec.webhooks[].timeout).
const MaxWebhookCall = 5 * time.Minute

// MaxWebhookBackoff caps the wait between two tries of a webhook call.
const MaxWebhookBackoff = 30 * time.Second

// WebhookBackoff is the wait before try n+1 of a webhook call (n from 1):
// 1s, 2s, 4s, ... up to MaxWebhookBackoff.
func WebhookBackoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 6 {
		return MaxWebhookBackoff
	}
	return min(time.Second<<(n-1), MaxWebhookBackoff)
}

// Budget is the longest a call of w may take with every retry: each try's
// timeout plus the backoffs between them.
func (w *Webhook) Budget() time.Duration {
	retries := 0
	if w.Retries != nil {
		retries = *w.Retries
	}
	d := time.Duration(retries+1) * w.Timeout.Duration
	for n := 1; n <= retries; n++ {
		d += WebhookBackoff(n)
	}
	return d
}
