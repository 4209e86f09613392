// Package spec holds Switchyard's one schema: the Go types behind the YAML
// service file, the admin API and (later) the Kubernetes CRD, with one strict
// decoder, one Default and one Validate.
package spec

import (
	"encoding/json"
	"fmt"
	"time"
)

// APIVersion and Kind identify a Switchyard service document.
const (
	APIVersion  = "switchyard.dev/v1alpha1"
	KindService = "Service"
)

// Service is one Kubernetes-style document describing a service and how new
// versions of it are rolled out.
type Service struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   Metadata    `json:"metadata"`
	Spec       ServiceSpec `json:"spec"`

	// Line is the 1-based line of the document's first line in its file
	// (0 when the service did not come from a file). Not part of the schema.
	Line int `json:"-"`
	// File is the file the service was read from, if any.
	File string `json:"-"`

	// positions maps field paths ("spec.versions[0].name") to where they
	// were written, so Validate can name the line of a bad field. It is
	// filled by Decode and is empty for services built in code.
	positions map[string]position
}

// Metadata names a service.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// ServiceSpec is the desired shape of a service.
type ServiceSpec struct {
	// Listen is the address the built-in proxy serves this service on.
	Listen string `json:"listen,omitempty"`
	// TLS, when set, serves HTTPS (and HTTP/2) on Listen.
	TLS *TLS `json:"tls,omitempty"`
	// Versions are the known versions, each a pool of targets.
	Versions []Version `json:"versions"`
	// Stable is the version that takes all traffic when no rollout runs.
	Stable string `json:"stable"`
	// HealthCheck configures the active health checks of every target.
	HealthCheck HealthCheck `json:"healthCheck,omitempty"`
	// Routing holds header/cookie rules and sticky sessions.
	Routing Routing `json:"routing,omitempty"`
	// Strategy is how a new version replaces the stable one.
	Strategy Strategy `json:"strategy,omitempty"`
	// Analysis is the metric analysis that runs during a rollout.
	Analysis *Analysis `json:"analysis,omitempty"`
	// ProgressDeadline is how long a rollout may wait for its new version to
	// become healthy before it is rolled back.
	ProgressDeadline Duration `json:"progressDeadline,omitempty"`
	// Proxy tunes the built-in proxy for this service.
	Proxy ProxyOptions `json:"proxy,omitempty"`
}

// TLS names static certificate files.
type TLS struct {
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// Version is a named pool of targets (host:port).
type Version struct {
	Name    string   `json:"name"`
	Targets []string `json:"targets"`
}

// HealthCheck configures active health checks.
type HealthCheck struct {
	Path               string   `json:"path,omitempty"`
	Interval           Duration `json:"interval,omitempty"`
	Timeout            Duration `json:"timeout,omitempty"`
	HealthyThreshold   int      `json:"healthyThreshold,omitempty"`
	UnhealthyThreshold int      `json:"unhealthyThreshold,omitempty"`
	// ExpectedStatus lists acceptable status codes; empty means 200-399.
	ExpectedStatus []int `json:"expectedStatus,omitempty"`
	// Passive ejects a target after consecutive proxied failures.
	Passive PassiveHealth `json:"passive,omitempty"`
}

// PassiveHealth configures passive (traffic-based) ejection.
type PassiveHealth struct {
	ConsecutiveFailures int      `json:"consecutiveFailures,omitempty"`
	Backoff             Duration `json:"backoff,omitempty"`
}

// Routing holds the match rules and sticky sessions of a service.
type Routing struct {
	Rules          []Rule          `json:"rules,omitempty"`
	StickySessions *StickySessions `json:"stickySessions,omitempty"`
	// TrustedSources limits header rules to clients in these CIDRs.
	TrustedSources []string `json:"trustedSources,omitempty"`
}

// Rule sends matching requests to a version role. Exactly one of Header or
// Cookie is set. Value "always" forces To, "never" forces the other role.
type Rule struct {
	Header *Match `json:"header,omitempty"`
	Cookie *Match `json:"cookie,omitempty"`
	// To is "canary" or "stable".
	To string `json:"to"`
}

// Match names a header or cookie and the value that matches.
type Match struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// StickySessions keeps a client on one version for a whole rollout.
type StickySessions struct {
	Cookie string   `json:"cookie"`
	TTL    Duration `json:"ttl,omitempty"`
}

// Strategy is one of Canary or BlueGreen.
type Strategy struct {
	Canary    *Canary    `json:"canary,omitempty"`
	BlueGreen *BlueGreen `json:"blueGreen,omitempty"`
}

// Canary shifts traffic step by step. Exactly one of Steps, Preset or the
// Flagger-style fields (StepWeight/StepWeights, MaxWeight, Interval) is used.
type Canary struct {
	Steps []Step `json:"steps,omitempty"`
	// Preset is Canary10Percent5Minutes, Linear10PercentEvery1Minute,
	// AllAtOnce, "canary N%/INTERVAL" or "linear N%/INTERVAL".
	Preset      string   `json:"preset,omitempty"`
	StepWeight  int      `json:"stepWeight,omitempty"`
	StepWeights []int    `json:"stepWeights,omitempty"`
	MaxWeight   int      `json:"maxWeight,omitempty"`
	Interval    Duration `json:"interval,omitempty"`
}

// Step is one canary step: exactly one field is set.
type Step struct {
	SetWeight *int   `json:"setWeight,omitempty"`
	Pause     *Pause `json:"pause,omitempty"`
}

// Pause waits for Duration, or for a promote when Duration is zero.
type Pause struct {
	Duration Duration `json:"duration,omitempty"`
}

// BlueGreen prepares the new version beside the old and switches at once.
type BlueGreen struct {
	// AutoPromote switches without waiting for `switchyard promote` (default true).
	AutoPromote *bool `json:"autoPromote,omitempty"`
	// PreviewDuration is how long the new version is reachable only through
	// routing rules before the switch.
	PreviewDuration Duration `json:"previewDuration,omitempty"`
	// BakeDuration is the post-switch window in which failed analysis switches back.
	BakeDuration Duration `json:"bakeDuration,omitempty"`
	// ScaleDownDelay is how long the old version stays routable for an instant rollback.
	ScaleDownDelay Duration `json:"scaleDownDelay,omitempty"`
}

// Analysis checks metrics every Interval; Threshold failed checks roll back.
type Analysis struct {
	Interval  Duration `json:"interval,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
	Metrics   []Metric `json:"metrics,omitempty"`
}

// Metric is one check. Built-in names: request-success-rate (percent),
// request-duration (p99, milliseconds).
type Metric struct {
	Name           string         `json:"name"`
	ThresholdRange ThresholdRange `json:"thresholdRange"`
	Interval       Duration       `json:"interval,omitempty"`
}

// ThresholdRange bounds a metric value; a nil bound is open.
type ThresholdRange struct {
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// ProxyOptions tunes the built-in proxy.
type ProxyOptions struct {
	// DrainTimeout bounds how long retired targets keep in-flight requests.
	DrainTimeout Duration `json:"drainTimeout,omitempty"`
	// ReadHeaderTimeout, IdleTimeout, ReadTimeout guard against slow clients.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout,omitempty"`
	IdleTimeout       Duration `json:"idleTimeout,omitempty"`
	ReadTimeout       Duration `json:"readTimeout,omitempty"`
	// UpstreamTimeout bounds a whole request to a target (0: none, for streams).
	UpstreamTimeout Duration `json:"upstreamTimeout,omitempty"`
	MaxHeaderBytes  int      `json:"maxHeaderBytes,omitempty"`
	MaxBodyBytes    int64    `json:"maxBodyBytes,omitempty"`
	// VersionHeader, when set, names a response header carrying the version
	// that served the request (off by default).
	VersionHeader string `json:"versionHeader,omitempty"`
	// Retries is how many other targets of the same version an idempotent
	// request may be retried on after a connect failure.
	Retries *int `json:"retries,omitempty"`
}

// Duration is a time.Duration written as "30s", "1m", "2h45m".
type Duration struct{ time.Duration }

// D builds a Duration.
func D(d time.Duration) Duration { return Duration{d} }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "30s" style strings; bare numbers are refused so that
// "30" (seconds? milliseconds?) is never guessed.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or \"1m\", got %s", b)
	}
	if s == "" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q is not valid; use a number with a unit like \"500ms\", \"30s\", \"1m\"", s)
	}
	d.Duration = v
	return nil
}
