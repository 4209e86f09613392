// Package spec holds Switchyard's one schema: the Go types behind the YAML
// service file, the admin API and (later) the Kubernetes CRD, with one strict
// decoder, one Default and one Validate.
package spec

import (
	"encoding/json"
	"fmt"
	"strings"
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
	// APIVersion must be "switchyard.dev/v1alpha1".
	APIVersion string `json:"apiVersion"`
	// Kind must be "Service".
	Kind string `json:"kind"`
	// Metadata names the service.
	Metadata Metadata `json:"metadata"`
	// Spec describes the service's versions and how they are rolled out.
	Spec ServiceSpec `json:"spec"`

	// Line is the 1-based line of the document's first line in its file
	// (0 when the service did not come from a file). Not part of the schema.
	Line int `json:"-"`
	// File is the file the service was read from, if any.
	File string `json:"-"`
	// Cluster is set for a service built from a Kubernetes Rollout
	// (api/v1alpha1): the cluster, not the user, provides its listen
	// address, TLS, traffic router, versions and stable version, so
	// Validate does not report those fields (see clusterProvided) and
	// Default gives it no spec.trafficRouter.
	Cluster bool `json:"-"`

	// positions maps field paths ("spec.versions[0].name") to where they
	// were written, so Validate can name the line of a bad field. It is
	// filled by Decode and is empty for services built in code.
	positions map[string]position
	// dropped holds the paths Decode left out because they could not be
	// decoded (and their parents'), so Validate does not report them a
	// second time as missing. Non-empty only with a decode error.
	dropped map[string]bool
}

// Metadata names a service.
type Metadata struct {
	// Name identifies the service in every command, metric and API path; a
	// DNS-1123 label (lower-case letters, digits and '-'), unique across files.
	Name string `json:"name"`
	// Labels are free-form key/value pairs, kept for the user.
	Labels map[string]string `json:"labels,omitempty"`
}

// ServiceSpec is the desired shape of a service.
type ServiceSpec struct {
	// Listen is the host:port the built-in proxy serves this service on
	// (":8080" for every interface); needed in standalone mode, unique
	// across services. Must be empty with trafficRouter.nginx: nginx
	// listens, Switchyard does not.
	Listen string `json:"listen,omitempty"`
	// TLS, when set, serves HTTPS (and HTTP/2) on Listen (built-in proxy
	// only; nginx terminates TLS in nginx mode).
	TLS *TLS `json:"tls,omitempty"`
	// Versions are the known versions, each a pool of targets.
	Versions []Version `json:"versions"`
	// Stable names the version that takes all traffic when no rollout runs.
	Stable string `json:"stable"`
	// HealthCheck configures the active health checks of every target.
	HealthCheck HealthCheck `json:"healthCheck,omitempty"`
	// Routing holds header/cookie rules and sticky sessions.
	Routing Routing `json:"routing,omitempty"`
	// Strategy is how a new version replaces the stable one.
	Strategy Strategy `json:"strategy,omitempty"`
	// Analysis is the metric analysis that runs during a rollout.
	Analysis *Analysis `json:"analysis,omitempty"`
	// Hooks are the lifecycle commands a rollout runs (see docs/hooks.md).
	Hooks *Hooks `json:"hooks,omitempty"`
	// Webhooks are the HTTP calls and gates of a rollout, Flagger's types
	// and payload (see docs/webhooks.md).
	Webhooks []Webhook `json:"webhooks,omitempty"`
	// ProgressDeadline is how long a rollout may wait for its new version to
	// become healthy before it is rolled back; greater than 0.
	ProgressDeadline Duration `json:"progressDeadline,omitempty" range:"1s,720h"`
	// Proxy tunes the built-in proxy for this service (not used in nginx
	// mode, where nginx.conf holds those settings).
	Proxy ProxyOptions `json:"proxy,omitempty"`
	// Notifications are where the rollout's events are sent.
	Notifications []Notification `json:"notifications,omitempty"`
	// TrafficRouter selects what moves this service's traffic: exactly one
	// of its fields (default: the built-in proxy).
	TrafficRouter TrafficRouter `json:"trafficRouter,omitempty"`
}

// TrafficRouter selects what moves a service's traffic; exactly one field
// is set. An unknown router is a decode error.
type TrafficRouter struct {
	// Proxy is Switchyard's own reverse proxy, serving spec.listen (the default).
	Proxy *ProxyRouter `json:"proxy,omitempty"`
	// Nginx drives an nginx that already runs on this host: Switchyard
	// renders one include file (upstreams and routing maps), checks it with
	// testCommand and reloads nginx (see docs/nginx.md).
	Nginx *NginxRouter `json:"nginx,omitempty"`
}

// NginxRouter is nginx mode: Switchyard owns only IncludeFile, which
// nginx.conf includes inside its http block; the server blocks stay the
// user's and send traffic with `proxy_pass http://$switchyard_UPSTREAM;`
// (routing rules and weights) or `proxy_pass http://UPSTREAM;` (weights
// only). Commands are argv lists, run without a shell (write
// ["sh", "-c", "..."] for one), so no value is ever split or expanded.
type NginxRouter struct {
	// IncludeFile is the absolute path of the file Switchyard renders and
	// owns (written through a temporary file in the same directory and
	// renamed into place); its directory must exist.
	IncludeFile string `json:"includeFile"`
	// UpstreamName is the name of the weighted upstream proxy_pass refers
	// to; each version also gets an upstream UPSTREAM__VERSION, and the
	// routing map sets $switchyard_UPSTREAM. Letters, digits and '_',
	// starting with a letter or '_', at most 64; default: metadata.name with
	// '-' written as '_'.
	UpstreamName string `json:"upstreamName,omitempty"`
	// AccessLog is the absolute path of the access log nginx writes for this
	// service in Switchyard's log_format (docs/nginx.md); when set, the
	// built-in checks (provider builtin) read their numbers from it.
	AccessLog string `json:"accessLog,omitempty"`
	// TestCommand checks the configuration with the new include file in
	// place; a non-zero exit puts the previous file back, and its output is
	// the error. An argv list, like ["nginx", "-t", "-c", "/etc/nginx/nginx.conf"].
	TestCommand []string `json:"testCommand,omitempty"`
	// ReloadCommand makes the running nginx read the checked configuration;
	// an argv list, like ["nginx", "-s", "reload"] or
	// ["systemctl", "reload", "nginx"].
	ReloadCommand []string `json:"reloadCommand,omitempty"`
	// Mode is how weight changes reach nginx: "reload" (the default: every
	// change is rendered into the file and nginx reloads) or "lua" (needs
	// Debian's libnginx-mod-http-lua: the upstreams are balanced by
	// balancer_by_lua from a lua_shared_dict, and weight and health changes
	// are posted to ControlAddress without a reload; only a change of the
	// versions or the rules reloads). docs/nginx.md has the measured cost
	// of each.
	Mode string `json:"mode,omitempty"`
	// ControlAddress is the loopback IP:port of the control server the
	// include file opens in lua mode (Switchyard posts weights there);
	// required with mode lua, unused otherwise.
	ControlAddress string `json:"controlAddress,omitempty"`
}

// Modes of spec.trafficRouter.nginx.
const (
	NginxModeReload = "reload"
	NginxModeLua    = "lua"
)

// ProxyRouter selects the built-in proxy; it is tuned by spec.proxy.
type ProxyRouter struct{}

// TLS names static certificate files.
type TLS struct {
	// CertFile is the PEM certificate (chain) file.
	CertFile string `json:"certFile"`
	// KeyFile is the PEM private key file.
	KeyFile string `json:"keyFile"`
}

// Version is a named pool of targets (host:port).
type Version struct {
	// Name identifies the version, like "blue" or "v1.4.0": lower-case
	// letters, digits, '-' and '.', unique within the service.
	Name string `json:"name"`
	// Targets are the host:port addresses of the version's instances; a
	// target belongs to one version only. Prefix a target with h2c:// for
	// cleartext HTTP/2 (gRPC) or https:// for TLS; plain host:port is HTTP/1.1.
	Targets []string `json:"targets"`
}

// HealthCheck configures active health checks.
type HealthCheck struct {
	// Path is the HTTP path requested from every target; starts with "/".
	Path string `json:"path,omitempty"`
	// Interval is the time between two checks of a target.
	Interval Duration `json:"interval,omitempty" range:"10ms,1h"`
	// Timeout bounds one check; less than Interval.
	Timeout Duration `json:"timeout,omitempty" range:"1ms,1h"`
	// HealthyThreshold is how many checks in a row must pass before an
	// unhealthy target is healthy again. A target's first probe (a new
	// target, or every target when serve starts) decides at once, with no
	// threshold: passed, it is healthy and may take traffic; failed, it is
	// unhealthy. So a restart does not hold traffic back for
	// healthyThreshold intervals, and a new version's health gate opens
	// after one good probe of each target.
	HealthyThreshold int `json:"healthyThreshold,omitempty" range:"1,100"`
	// UnhealthyThreshold is how many checks in a row must fail before a
	// healthy target is unhealthy (after its first probe, which decides at
	// once).
	UnhealthyThreshold int `json:"unhealthyThreshold,omitempty" range:"1,100"`
	// ExpectedStatus lists acceptable status codes (100-599); empty means 200-399.
	ExpectedStatus []int `json:"expectedStatus,omitempty"`
	// Passive ejects a target after consecutive proxied failures.
	Passive PassiveHealth `json:"passive,omitempty"`
}

// PassiveHealth configures passive (traffic-based) ejection.
type PassiveHealth struct {
	// ConsecutiveFailures is how many proxied requests in a row must fail
	// (connection error or 502-504) before the target is ejected.
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty" range:"1,1000"`
	// Backoff is how long an ejected target gets no traffic before it is
	// tried again.
	Backoff Duration `json:"backoff,omitempty" range:"0s,24h"`
}

// Routing holds the match rules and sticky sessions of a service.
type Routing struct {
	// Rules send matching requests to the canary or the stable version,
	// checked in order before the weights.
	Rules []Rule `json:"rules,omitempty"`
	// StickySessions keeps a client on one version for a whole rollout.
	StickySessions *StickySessions `json:"stickySessions,omitempty"`
	// TrustedSources limits header rules to clients in these CIDRs or IP
	// addresses (empty: every client), so the header cannot be spoofed.
	TrustedSources []string `json:"trustedSources,omitempty"`
}

// +kubebuilder:validation:ExactlyOneOf=header;cookie

// Rule sends matching requests to a version role. Exactly one of Header or
// Cookie is set. Value "always" forces To, "never" forces the other role.
type Rule struct {
	// Header matches a request header.
	Header *Match `json:"header,omitempty"`
	// Cookie matches a request cookie.
	Cookie *Match `json:"cookie,omitempty"`

	// +kubebuilder:validation:Enum=canary;stable

	// To is the role matching requests go to: "canary" or "stable".
	To string `json:"to"`
}

// Match names a header or cookie and the value that matches.
type Match struct {
	// Name is the header or cookie name.
	Name string `json:"name"`
	// Value is the value that matches (quote "true" in YAML).
	Value string `json:"value,omitempty"`
}

// StickySessions keeps a client on one version for a whole rollout.
type StickySessions struct {
	// Cookie is the name of the cookie that records the client's version.
	Cookie string `json:"cookie"`
	// TTL is the cookie's lifetime.
	TTL Duration `json:"ttl,omitempty" range:"1s,8760h"`
}

// +kubebuilder:validation:AtMostOneOf=canary;blueGreen

// Strategy is one of Canary or BlueGreen.
type Strategy struct {
	// Canary shifts traffic step by step.
	Canary *Canary `json:"canary,omitempty"`
	// BlueGreen switches all traffic at once; the default when no strategy is given.
	BlueGreen *BlueGreen `json:"blueGreen,omitempty"`
}

// Canary shifts traffic step by step. Exactly one of Steps, Preset or the
// Flagger-style fields (StepWeight/StepWeights, MaxWeight, Interval) is used.
type Canary struct {
	// Steps are explicit setWeight and pause steps, run in order.
	Steps []Step `json:"steps,omitempty"`
	// Preset is a CodeDeploy configuration name: a predefined one
	// (Canary10Percent5Minutes, Linear10PercentEvery1Minute, AllAtOnce, ...,
	// with or without the CodeDeployDefault. prefix) or one in the same
	// pattern (Canary20Percent10Minutes, Linear15PercentEvery3Minutes, with
	// or without a Custom. prefix); or "canary N%/INTERVAL" or
	// "linear N%/INTERVAL".
	Preset string `json:"preset,omitempty"`
	// StepWeight is the weight added every Interval, up to MaxWeight (Flagger style, 1-99).
	StepWeight int `json:"stepWeight,omitempty"`
	// StepWeights are the weights to go through, one every Interval
	// (Flagger style; strictly increasing, 1-99).
	StepWeights []int `json:"stepWeights,omitempty"`
	// MaxWeight is the last canary weight before promotion, with StepWeight (1-100).
	MaxWeight int `json:"maxWeight,omitempty"`
	// Interval is the pause after each weight change, with StepWeight or StepWeights.
	Interval Duration `json:"interval,omitempty" range:"0s,24h"`
	// BakeDuration is the post-promotion window: after 100%, the previous
	// version stays warm while analysis keeps running, and a failure
	// switches back at once (0: no bake).
	BakeDuration Duration `json:"bakeDuration,omitempty" range:"0s,720h"`
}

// +kubebuilder:validation:ExactlyOneOf=setWeight;pause

// Step is one canary step: exactly one field is set.
type Step struct {
	// SetWeight sends this percentage (0-100) of traffic to the canary.
	SetWeight *int `json:"setWeight,omitempty"`
	// Pause waits before the next step; "pause: {}" waits for a promote.
	Pause *Pause `json:"pause,omitempty"`
}

// Pause waits for Duration, or for a promote when Duration is zero.
type Pause struct {
	// Duration is how long to wait; zero or unset waits for `switchyard promote`.
	Duration Duration `json:"duration,omitempty" range:"0s,720h"`
}

// BlueGreen prepares the new version beside the old and switches at once.
type BlueGreen struct {
	// AutoPromote switches without waiting for `switchyard promote` (default true).
	AutoPromote *bool `json:"autoPromote,omitempty"`
	// PreviewDuration is how long the new version is reachable only through
	// routing rules before the switch.
	PreviewDuration Duration `json:"previewDuration,omitempty" range:"0s,720h"`
	// BakeDuration is the post-switch window in which failed analysis switches back.
	BakeDuration Duration `json:"bakeDuration,omitempty" range:"0s,720h"`
	// ScaleDownDelay is how long the old version stays routable for an instant rollback.
	ScaleDownDelay Duration `json:"scaleDownDelay,omitempty" range:"0s,720h"`
}

// Analysis checks metrics every Interval; Threshold failed checks roll back.
type Analysis struct {
	// Interval is the time between two checks of every metric (default
	// 1m); with judge: sequential, how often the judge records its evidence
	// and lets a step end (default 10s; it decides every second).
	Interval Duration `json:"interval,omitempty" range:"100ms,24h"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000

	// Threshold is how many failed checks roll the rollout back (at least 1).
	Threshold int `json:"threshold,omitempty" range:"1,1000"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000

	// ConsecutiveErrorLimit is how many checks in a row may be inconclusive
	// (too few samples, a source that is down) or in error before the
	// rollout pauses and says why; it never promotes on them.
	ConsecutiveErrorLimit int `json:"consecutiveErrorLimit,omitempty" range:"1,1000"`
	// Metrics are the checks; at least one, each name at most once.
	Metrics []Metric `json:"metrics,omitempty"`
	// Load, when set, generates traffic to the canary while analysis runs.
	Load *Load `json:"load,omitempty"`
	// Breaker, when set, rolls back at once, between intervals, when the
	// canary's error rate is very high (a crash-looping version should not
	// wait for threshold failed checks).
	Breaker *Breaker `json:"breaker,omitempty"`

	// +kubebuilder:validation:Enum=thresholds;sequential

	// Judge is how the canary is judged: "thresholds" (the default: each
	// metric's checks against its range, threshold failures roll back) or
	// "sequential": anytime-valid tests of the canary against the stable
	// version in the same seconds, which roll back or promote the moment
	// the evidence is enough, at a stated false-alarm rate (docs/judge.md).
	// Metrics, if any, are checked beside it.
	Judge string `json:"judge,omitempty"`
	// Sequential tunes the sequential judge; only with judge: sequential.
	Sequential *Sequential `json:"sequential,omitempty"`
}

// Sequential is the sequential judge's parameters (defaults from the
// design note, docs/judge.md).
type Sequential struct {
	// +kubebuilder:validation:Minimum=0.0001
	// +kubebuilder:validation:Maximum=0.2

	// AlphaRollback bounds the chance that a canary whose errors are no
	// worse than stable's is rolled back (default 0.005).
	AlphaRollback float64 `json:"alphaRollback,omitempty" range:"0.0001,0.2,unset"`

	// +kubebuilder:validation:Minimum=0.0001
	// +kubebuilder:validation:Maximum=0.2

	// AlphaLatency is the same bound for latency (default 0.005).
	AlphaLatency float64 `json:"alphaLatency,omitempty" range:"0.0001,0.2,unset"`

	// +kubebuilder:validation:Minimum=0.0001
	// +kubebuilder:validation:Maximum=0.5

	// AlphaPromotion bounds the chance that a canary worse than stable by
	// more than a margin is promoted early (default 0.05).
	AlphaPromotion float64 `json:"alphaPromotion,omitempty" range:"0.0001,0.5,unset"`

	// +kubebuilder:validation:Minimum=0.01
	// +kubebuilder:validation:Maximum=50

	// ErrorMargin is how many percentage points the canary's error rate may
	// exceed stable's and still be promoted early (default 0.5).
	ErrorMargin float64 `json:"errorMargin,omitempty" range:"0.01,50,unset"`

	// +kubebuilder:validation:Minimum=0.01
	// +kubebuilder:validation:Maximum=50

	// SlowMargin is the same margin for the share of requests slower than
	// stable's p99 (default 1).
	SlowMargin float64 `json:"slowMargin,omitempty" range:"0.01,50,unset"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10

	// Tolerance is the relative risk of an error or a slow request the
	// canary may have before it counts as a regression (default 1: none).
	Tolerance float64 `json:"tolerance,omitempty" range:"1,10,unset"`
	// Quantiles are the monitored latency quantiles, ascending (default
	// 0.5, 0.9, 0.99, 0.999): slow-request thresholds frozen from the
	// baseline, and quantile confidence sequences.
	Quantiles []float64 `json:"quantiles,omitempty"`
	// BaselineWindow is how much of the stable version's traffic before the
	// rollout the thresholds are frozen from (default 30m).
	BaselineWindow Duration `json:"baselineWindow,omitempty" range:"1m,24h,unset"`

	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=10000000

	// MinBaseline is the fewest baseline requests to freeze thresholds from;
	// with fewer they are frozen from the stable version's first requests
	// in the rollout (default 1000).
	MinBaseline int `json:"minBaseline,omitempty" range:"100,10000000,unset"`
	// MinExposure is how long the canary is watched before an early
	// promotion (default 1m).
	MinExposure Duration `json:"minExposure,omitempty" range:"1s,24h,unset"`
	// MaxDuration is how long the judge may go without a decision before
	// the rollout holds for a person (default 30m).
	MaxDuration Duration `json:"maxDuration,omitempty" range:"1m,168h,unset"`
	// Prometheus is where the judge reads its per-second inputs on a
	// cluster (required there; a service file uses the built-in
	// measurements and must not set it).
	Prometheus *SequentialPrometheus `json:"prometheus,omitempty"`
}

// SequentialPrometheus is the sequential judge's inputs as cumulative
// counters in Prometheus: each expression is a PromQL template ({{ service
// }}, {{ version }}, {{ stable }}) selecting one version's raw counters,
// without rate() or increase(); the judge differences them second by second
// (a decrease is a counter reset) and sums the series.
type SequentialPrometheus struct {
	// Address is the Prometheus server's base URL, e.g. "http://prometheus:9090".
	Address string `json:"address"`
	// Requests selects the version's request counters, e.g.
	// istio_requests_total{reporter="destination",destination_version="{{ version }}"}.
	Requests string `json:"requests"`
	// Errors selects the counters of the version's failed requests, e.g.
	// istio_requests_total{reporter="destination",destination_version="{{ version }}",response_code=~"5.."}.
	Errors string `json:"errors"`
	// DurationBuckets selects the version's request-duration histogram
	// buckets (the _bucket counters, with their le label), e.g.
	// istio_request_duration_milliseconds_bucket{reporter="destination",destination_version="{{ version }}"}.
	DurationBuckets string `json:"durationBuckets"`

	// +kubebuilder:validation:Enum=s;ms

	// DurationUnit is the unit of the buckets' le bounds: "s" (the default,
	// Prometheus's convention) or "ms" (Istio's, Envoy's).
	DurationUnit string `json:"durationUnit,omitempty"`
	// ScrapeInterval is how often Prometheus scrapes the counters; the
	// judge reads one point per interval (default 1s: every second).
	ScrapeInterval Duration `json:"scrapeInterval,omitempty" range:"1s,5m,unset"`
}

// Breaker is the hard-signal check of the built-in measurements, evaluated
// every second over a sliding window.
type Breaker struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100

	// MaxErrorRate is the percentage of failed requests (5xx, connection
	// errors) that rolls back at once.
	MaxErrorRate float64 `json:"maxErrorRate" range:"1,100"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000

	// MinRequests is the fewest requests in the window for the breaker to
	// trip.
	MinRequests int `json:"minRequests,omitempty" range:"1,1000000"`
	// Window is the sliding window the error rate is measured over.
	Window Duration `json:"window,omitempty" range:"1s,120s"`
}

// Metric is one check. Built-in names: request-success-rate (percent),
// request-duration (a latency quantile, milliseconds); any name with a
// prometheus block.
type Metric struct {
	// Name is "request-success-rate" (percent of requests without a 5xx or
	// connection error), "request-duration" (the latency at quantile, in
	// milliseconds), or any name for a prometheus query.
	Name string `json:"name"`
	// ThresholdRange is the range a passing value lies in; or use
	// successCondition/failureCondition.
	ThresholdRange ThresholdRange `json:"thresholdRange,omitempty"`

	// +kubebuilder:validation:Minimum=0.5
	// +kubebuilder:validation:Maximum=0.999

	// Quantile is the latency quantile request-duration measures (default 0.99).
	Quantile float64 `json:"quantile,omitempty" range:"0.5,0.999,unset"`

	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000

	// MinSamples is the fewest requests a built-in check needs for a verdict;
	// with fewer it is inconclusive. Default: for request-success-rate the
	// fewest requests in which one error still passes min (100 for min 99),
	// at least 10; 10 for request-duration.
	MinSamples int `json:"minSamples,omitempty" range:"1,1000000,unset"`
	// Prometheus, when set, measures the metric with a PromQL query.
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
	// SuccessCondition is an expression over result (the query's value)
	// that must hold for the check to pass, e.g. "result < 0.01".
	SuccessCondition string `json:"successCondition,omitempty"`
	// FailureCondition is an expression over result that fails the check
	// when it holds; checked before successCondition.
	FailureCondition string `json:"failureCondition,omitempty"`
	// Interval is the window the metric is computed over; unset means the
	// analysis interval.
	Interval Duration `json:"interval,omitempty" range:"100ms,24h"`

	// +kubebuilder:validation:Enum=builtin;prometheus

	// Provider names the metric source: "builtin" (the built-in proxy's
	// measurements of every request, the default; in nginx mode, nginx's
	// access log, spec.trafficRouter.nginx.accessLog) or "prometheus" (the
	// default with a prometheus block).
	Provider string `json:"provider,omitempty"`
}

// PrometheusMetric is a PromQL query whose single value is the metric.
type PrometheusMetric struct {
	// Address is the Prometheus server's base URL, e.g. "http://prometheus:9090".
	Address string `json:"address"`
	// Query is a PromQL template: {{ service }}, {{ version }} (the canary),
	// {{ stable }} and {{ interval }} (a PromQL duration such as "1m") are
	// replaced before it runs. It must return one number: a scalar, or a
	// vector of exactly one series.
	Query string `json:"query"`
}

// ThresholdRange bounds a metric value; a nil bound is open.
type ThresholdRange struct {
	// Min is the lowest passing value (request-success-rate: 0-100).
	Min *float64 `json:"min,omitempty"`
	// Max is the highest passing value; not below Min.
	Max *float64 `json:"max,omitempty"`
}

// ProxyOptions tunes the built-in proxy.
type ProxyOptions struct {
	// DrainTimeout bounds how long retired targets keep in-flight requests.
	DrainTimeout Duration `json:"drainTimeout,omitempty" range:"0s,1h"`
	// ReadHeaderTimeout bounds how long a client may take to send request
	// headers, from its first byte, against slow clients.
	ReadHeaderTimeout Duration `json:"readHeaderTimeout,omitempty" range:"100ms,10m"`
	// IdleTimeout is how long a keep-alive client connection may wait
	// between requests; it never applies while a response is in flight.
	IdleTimeout Duration `json:"idleTimeout,omitempty" range:"1s,24h"`
	// ReadTimeout bounds how long a client may take to send a whole request,
	// header and body. It ends when the request is read: it never cuts a
	// response, however long the response streams.
	ReadTimeout Duration `json:"readTimeout,omitempty" range:"1s,24h"`
	// UpstreamTimeout bounds a whole exchange with a target, streamed
	// response body included (0: none, so event streams, long downloads and
	// WebSockets last as long as both sides keep them open).
	UpstreamTimeout Duration `json:"upstreamTimeout,omitempty" range:"0s,24h"`
	// MaxHeaderBytes limits the size of request headers.
	MaxHeaderBytes int `json:"maxHeaderBytes,omitempty" range:"1024,1048576"`
	// MaxBodyBytes limits the size of a request body (0: unlimited).
	MaxBodyBytes int64 `json:"maxBodyBytes,omitempty" range:"0,1099511627776"`
	// VersionHeader, when set, names a response header carrying the version
	// that served the request (off by default).
	VersionHeader string `json:"versionHeader,omitempty"`
	// Retries is how many other targets of the same version an idempotent
	// request may be retried on after a connect failure.
	Retries *int `json:"retries,omitempty" range:"0,3"`
}

// +kubebuilder:validation:Type=string
// +kubebuilder:validation:Pattern=`^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)?$`

// Duration is a time.Duration written as "30s", "1m", "2h45m".
type Duration struct {
	// The json tag only keeps the schema generator from reading the
	// embedded field as a property: MarshalJSON writes the string.
	time.Duration `json:"-"`
}

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
	if v == 0 && strings.ContainsAny(s, "123456789") {
		// "0.0000000001ns" parses to 0, which would then read as unset and
		// silently take the default.
		return fmt.Errorf("duration %q is shorter than a nanosecond; use 0 to leave it unset, or a longer duration", s)
	}
	d.Duration = v
	return nil
}
