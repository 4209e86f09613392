package spec

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Known metric names for Metric.Name.
const (
	// MetricRequestSuccessRate is the percentage (0-100) of requests that
	// did not fail with a 5xx status or a connection error.
	MetricRequestSuccessRate = "request-success-rate"
	// MetricRequestDuration is the 99th percentile request duration in milliseconds.
	MetricRequestDuration = "request-duration"
)

// Rule destinations for Rule.To.
const (
	RoleCanary = "canary"
	RoleStable = "stable"
)

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	versionName  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	hostName     = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$`)
	metricName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// Validate checks a defaulted service and returns every problem at once,
// joined with errors.Join; each is a *FieldError naming the field path, the
// bad value, what would be valid and, for a decoded service, its line.
// Run Default first: Validate treats unset defaults (zero thresholds, zero
// intervals) as errors.
func (s *Service) Validate() error {
	v := &validator{s: s}
	v.service()
	return errors.Join(v.errs...)
}

// ValidateAll validates every service and the rules that span services:
// names are unique and no two services listen on the same address.
func ValidateAll(svcs []*Service) error {
	var errs []error
	names := map[string]*Service{}
	type listener struct {
		svc  *Service
		host string
	}
	ports := map[string][]listener{}
	for _, s := range svcs {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
		}
		if n := s.Metadata.Name; n != "" {
			if prev, ok := names[n]; ok {
				errs = append(errs, s.fieldError("metadata.name", quote(n),
					"must be unique; a service of that name is already defined at "+prev.where()))
			} else {
				names[n] = s
			}
		}
		host, port, err := net.SplitHostPort(s.Spec.Listen)
		if err != nil || port == "0" || port == "" {
			continue
		}
		for _, l := range ports[port] {
			if host == l.host || isWildcard(host) || isWildcard(l.host) {
				errs = append(errs, s.fieldError("spec.listen", quote(s.Spec.Listen),
					fmt.Sprintf("must differ from the listen address %q of service %q (%s)",
						l.svc.Spec.Listen, l.svc.Metadata.Name, l.svc.where())))
				break
			}
		}
		ports[port] = append(ports[port], listener{s, host})
	}
	errs = append(errs, validateNginxAcross(svcs)...)
	return errors.Join(errs...)
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::" || host == "[::]"
}

// where names a service's place for messages: "web.yaml:3" or its name.
func (s *Service) where() string {
	switch {
	case s.File != "" && s.Line > 0:
		return s.File + ":" + strconv.Itoa(s.Line)
	case s.File != "":
		return s.File
	default:
		return fmt.Sprintf("service %q", s.Metadata.Name)
	}
}

// fieldError builds a FieldError for a path, placed at the line where the
// path (or its nearest written parent) appears in the file.
func (s *Service) fieldError(path, value, want string) *FieldError {
	pos := s.positionOf(path)
	return &FieldError{File: s.File, Line: pos.Line, Service: s.Metadata.Name,
		Path: path, Value: value, Want: want}
}

// positionOf finds where a field path was written, falling back to its
// parents and then to the document's first line.
func (s *Service) positionOf(path string) position {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := s.positions[p]; ok {
			return pos
		}
	}
	return position{Line: s.Line}
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

type validator struct {
	s    *Service
	errs []error
}

func (v *validator) add(path, value, want string) {
	if v.s.dropped[path] {
		return // Decode already reported why it is missing
	}
	if v.s.Cluster && clusterProvided(path) {
		return
	}
	v.errs = append(v.errs, v.s.fieldError(path, value, want))
}

func durStr(d Duration) string { return d.Duration.String() }

// nonNegative reports a negative duration.
func (v *validator) nonNegative(path string, d Duration) {
	if d.Duration < 0 {
		v.add(path, durStr(d), "must not be negative")
	}
}

// positive reports a duration that is not above zero.
func (v *validator) positive(path string, d Duration) {
	if d.Duration <= 0 {
		v.add(path, durStr(d), "must be greater than 0, like \"30s\"")
	}
}

func (v *validator) service() {
	s := v.s
	if s.APIVersion != APIVersion {
		v.add("apiVersion", quote(s.APIVersion), fmt.Sprintf("must be %q", APIVersion))
	}
	if s.Kind != KindService {
		v.add("kind", quote(s.Kind), fmt.Sprintf("must be %q", KindService))
	}
	switch n := s.Metadata.Name; {
	case n == "":
		v.add("metadata.name", "", "is required; a DNS-1123 label like \"web\"")
	case len(n) > 63 || !dns1123Label.MatchString(n):
		v.add("metadata.name", quote(n), "must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit")
	}
	sp := &s.Spec
	if sp.Listen != "" {
		if want := checkHostPort(sp.Listen, true); want != "" {
			v.add("spec.listen", quote(sp.Listen), want)
		}
	}
	switch tr := sp.TrafficRouter; {
	case tr.Proxy != nil && tr.Nginx != nil:
		v.add("spec.trafficRouter", "", "must set only one router: proxy (the built-in proxy) or nginx")
	case tr.Nginx != nil:
		v.nginx(tr.Nginx)
	case tr.Proxy == nil:
		v.add("spec.trafficRouter", "{}", "must set one router: proxy: {} (the built-in proxy) or nginx: {includeFile: ...}")
	case sp.Listen == "":
		v.add("spec.listen", "", "is required with the built-in proxy (spec.trafficRouter.proxy); a host:port such as \"127.0.0.1:8080\" or \":8080\"")
	}
	if sp.TLS != nil && sp.TrafficRouter.Proxy != nil {
		if sp.TLS.CertFile == "" {
			v.add("spec.tls.certFile", "", "is required when tls is set")
		}
		if sp.TLS.KeyFile == "" {
			v.add("spec.tls.keyFile", "", "is required when tls is set")
		}
	}
	v.versions()
	v.healthCheck()
	v.routing()
	v.strategy()
	v.analysis()
	v.hooks()
	v.webhooks()
	v.ranges()
	v.notifications()
	v.load()
	v.proxy()
}

func (v *validator) versions() {
	sp := &v.s.Spec
	if len(sp.Versions) == 0 {
		v.add("spec.versions", "", "needs at least one version with a name and targets")
	}
	names := map[string]int{}
	// targets maps each address to where it was first listed.
	type listed struct{ version, path string }
	targets := map[string]listed{}
	for i, ver := range sp.Versions {
		p := fmt.Sprintf("spec.versions[%d]", i)
		switch {
		case ver.Name == "":
			v.add(p+".name", "", "is required, like \"blue\" or \"v1-2\"")
		case len(ver.Name) > 63 || !versionName.MatchString(ver.Name):
			v.add(p+".name", quote(ver.Name), "must be at most 63 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
		default:
			if j, dup := names[ver.Name]; dup {
				v.add(p+".name", quote(ver.Name), fmt.Sprintf("must be unique; spec.versions[%d] has the same name", j))
			} else {
				names[ver.Name] = i
			}
		}
		if len(ver.Targets) == 0 {
			v.add(p+".targets", "", "needs at least one target host:port")
		}
		for j, t := range ver.Targets {
			tp := fmt.Sprintf("%s.targets[%d]", p, j)
			if want := checkTarget(t); want != "" {
				v.add(tp, quote(t), want)
				continue
			}
			if first, dup := targets[t]; dup {
				at := first.path
				if line := v.s.positionOf(first.path).Line; line > 0 {
					at += ", line " + strconv.Itoa(line)
				}
				if first.version == ver.Name {
					v.add(tp, quote(t), fmt.Sprintf("is listed twice in version %q (first as %s); remove one", ver.Name, at))
				} else {
					v.add(tp, quote(t), fmt.Sprintf("must appear in only one version; it is already a target of version %q (%s)", first.version, at))
				}
				continue
			}
			targets[t] = listed{ver.Name, tp}
		}
	}
	switch {
	case sp.Stable == "":
		v.add("spec.stable", "", "is required; must name one of spec.versions"+knownNames(sp.Versions))
	case len(sp.Versions) > 0:
		if _, ok := names[sp.Stable]; !ok {
			v.add("spec.stable", quote(sp.Stable), "must name one of spec.versions"+knownNames(sp.Versions))
		}
	}
}

func knownNames(vs []Version) string {
	var names []string
	for _, v := range vs {
		if v.Name != "" {
			names = append(names, strconv.Quote(v.Name))
		}
	}
	if len(names) == 0 {
		return ""
	}
	return ": " + strings.Join(names, ", ")
}

// checkHostPort returns what is wrong with a host:port, or "".
// A listen address may leave the host empty (all interfaces) and use port 0
// (any free port); a target may not.
func checkHostPort(s string, listen bool) string {
	want := "must be host:port, like \"127.0.0.1:9001\" or \"app.internal:8080\""
	if listen {
		want = "must be host:port or :port, like \"127.0.0.1:8080\" or \":8080\""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return want
	}
	n, err := strconv.Atoi(port)
	minPort := 1
	if listen {
		minPort = 0
	}
	if err != nil || n < minPort || n > 65535 {
		return fmt.Sprintf("%s; port must be %d-65535", want, minPort)
	}
	if host == "" {
		if listen {
			return ""
		}
		return want
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if len(host) > 253 || !hostName.MatchString(host) {
		return want + "; the host is neither an IP address nor a host name"
	}
	return ""
}

func (v *validator) healthCheck() {
	hc := &v.s.Spec.HealthCheck
	const p = "spec.healthCheck"
	if !strings.HasPrefix(hc.Path, "/") {
		v.add(p+".path", quote(hc.Path), "must start with \"/\", like \"/health\"")
	}
	if hc.Timeout.Duration > 0 && hc.Interval.Duration > 0 && hc.Timeout.Duration >= hc.Interval.Duration {
		v.add(p+".timeout", durStr(hc.Timeout), "must be less than interval ("+durStr(hc.Interval)+")")
	}
	for i, c := range hc.ExpectedStatus {
		if c < 100 || c > 599 {
			v.add(fmt.Sprintf("%s.expectedStatus[%d]", p, i), strconv.Itoa(c), "must be an HTTP status code 100-599")
		}
	}
}

// isToken reports whether s is an RFC 9110 token: a valid header or cookie name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

const tokenWant = "must be a non-empty token: letters, digits and !#$%&'*+-.^_`|~"

func (v *validator) routing() {
	r := &v.s.Spec.Routing
	for i, rule := range r.Rules {
		p := fmt.Sprintf("spec.routing.rules[%d]", i)
		switch {
		case rule.Header == nil && rule.Cookie == nil:
			v.add(p, "", "needs exactly one of header or cookie")
		case rule.Header != nil && rule.Cookie != nil:
			v.add(p+".cookie", "", "must not be set together with header; use one rule for each")
		case rule.Header != nil:
			if !isToken(rule.Header.Name) {
				v.add(p+".header.name", quote(rule.Header.Name), tokenWant)
			}
		case rule.Cookie != nil:
			if !isToken(rule.Cookie.Name) {
				v.add(p+".cookie.name", quote(rule.Cookie.Name), tokenWant)
			}
		}
		if rule.To != RoleCanary && rule.To != RoleStable {
			v.add(p+".to", quote(rule.To), `must be "canary" or "stable"`)
		}
	}
	if st := r.StickySessions; st != nil {
		if !isToken(st.Cookie) {
			v.add("spec.routing.stickySessions.cookie", quote(st.Cookie), tokenWant)
		}
	}
	for i, src := range r.TrustedSources {
		if _, err := netip.ParsePrefix(src); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(src); err == nil {
			continue
		}
		v.add(fmt.Sprintf("spec.routing.trustedSources[%d]", i), quote(src),
			`must be a CIDR like "10.0.0.0/8" or "2001:db8::/32", or an IP address`)
	}
}

func (v *validator) strategy() {
	st := &v.s.Spec.Strategy
	if st.Canary != nil && st.BlueGreen != nil {
		v.add("spec.strategy", "", "must set only one of canary or blueGreen")
	}
	if bg := st.BlueGreen; bg != nil {
		const p = "spec.strategy.blueGreen"
	}
	if c := st.Canary; c != nil {
		v.canary(c)
	}
}

func (v *validator) canary(c *Canary) {
	const p = "spec.strategy.canary"
	flagger := c.StepWeight != 0 || len(c.StepWeights) > 0
	var forms []string
	if len(c.Steps) > 0 {
		forms = append(forms, "steps")
	}
	if c.Preset != "" {
		forms = append(forms, "preset")
	}
	if flagger {
		forms = append(forms, "stepWeight/stepWeights")
	}
	switch len(forms) {
	case 0:
		v.add(p, "", "needs one of steps, preset, or stepWeight/stepWeights (with maxWeight and interval)")
	case 1:
	default:
		v.add(p, "", "must use only one of steps, preset or stepWeight/stepWeights; found "+strings.Join(forms, " and "))
	}
	for i, s := range c.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", p, i)
		switch {
		case s.SetWeight == nil && s.Pause == nil:
			v.add(sp, "", "needs exactly one of setWeight or pause")
		case s.SetWeight != nil && s.Pause != nil:
			v.add(sp, "", "must set only one of setWeight or pause; use two steps")
		case s.SetWeight != nil:
			if w := *s.SetWeight; w < 0 || w > 100 {
				v.add(sp+".setWeight", strconv.Itoa(w), "must be 0-100")
			}
		}
	}
	if c.Preset != "" {
		if _, err := ParsePreset(c.Preset); err != nil {
			v.add(p+".preset", quote(c.Preset), "must be "+PresetWant)
		}
	}
	if c.StepWeight != 0 && len(c.StepWeights) > 0 {
		v.add(p+".stepWeights", "", "must not be set together with stepWeight")
	}
	if c.StepWeight != 0 && (c.StepWeight < 1 || c.StepWeight > 99) {
		v.add(p+".stepWeight", strconv.Itoa(c.StepWeight), "must be 1-99")
	}
	if c.MaxWeight != 0 {
		switch {
		case c.StepWeight == 0:
			v.add(p+".maxWeight", strconv.Itoa(c.MaxWeight), "is only used with stepWeight")
		case c.MaxWeight < 1 || c.MaxWeight > 100:
			v.add(p+".maxWeight", strconv.Itoa(c.MaxWeight), "must be 1-100")
		case c.MaxWeight < c.StepWeight && c.StepWeight <= 99: // a bad stepWeight is reported already
			v.add(p+".maxWeight", strconv.Itoa(c.MaxWeight), fmt.Sprintf("must be at least stepWeight (%d)", c.StepWeight))
		}
	}
	for i, w := range c.StepWeights {
		wp := fmt.Sprintf("%s.stepWeights[%d]", p, i)
		switch {
		case w < 1 || w > 99:
			v.add(wp, strconv.Itoa(w), "must be 1-99")
		case i > 0 && w <= c.StepWeights[i-1]:
			v.add(wp, strconv.Itoa(w), fmt.Sprintf("must be greater than the weight before it (%d); stepWeights increase strictly", c.StepWeights[i-1]))
		}
	}
	if c.Interval.Duration != 0 && !flagger {
		v.add(p+".interval", durStr(c.Interval), "is only used with stepWeight or stepWeights")
	} else if flagger {
		v.positive(p+".interval", c.Interval)
	}
}

func (v *validator) analysis() {
	a := v.s.Spec.Analysis
	if a == nil {
		return
	}
	const p = "spec.analysis"
	switch a.Judge {
	case JudgeThresholds, "":
		if len(a.Metrics) == 0 {
			v.add(p+".metrics", "", fmt.Sprintf("needs at least one metric (%s, %s, or one with a prometheus query), or set judge: %s",
				MetricRequestSuccessRate, MetricRequestDuration, JudgeSequential))
		}
		if a.Sequential != nil {
			v.add(p+".sequential", "", fmt.Sprintf("is set, but judge is %q; set judge: %s, or remove the block", a.Judge, JudgeSequential))
		}
	case JudgeSequential:
		v.sequential(p+".sequential", a.Sequential)
	default:
		v.add(p+".judge", quote(a.Judge), fmt.Sprintf("must be %q (the default: each metric against its thresholds) or %q (anytime-valid tests against the stable version)", JudgeThresholds, JudgeSequential))
	}
	seen := map[string]int{}
	for i, m := range a.Metrics {
		mp := fmt.Sprintf("%s.metrics[%d]", p, i)
		if j, dup := seen[m.Name]; dup {
			v.add(mp+".name", quote(m.Name), fmt.Sprintf("must be unique; metrics[%d] has the same name", j))
		}
		seen[m.Name] = i
		switch m.Provider {
		case ProviderBuiltin:
			v.builtinMetric(mp, m)
		case ProviderPrometheus:
			v.prometheusMetric(mp, m)
		default:
			v.add(mp+".provider", quote(m.Provider), fmt.Sprintf("must be %q (the built-in proxy's measurements) or %q (with a prometheus block)", ProviderBuiltin, ProviderPrometheus))
		}
		v.conditions(mp, m)
	}
}

func (v *validator) builtinMetric(mp string, m Metric) {
	switch m.Name {
	case MetricRequestSuccessRate, MetricRequestDuration:
	default:
		// Go on: the rest of the check may be wrong too, and one run
		// should say so.
		v.add(mp+".name", quote(m.Name), fmt.Sprintf("must be %q or %q, or the metric needs a prometheus query", MetricRequestSuccessRate, MetricRequestDuration))
	}
	if m.Prometheus != nil {
		v.add(mp+".prometheus", "", fmt.Sprintf("is set, but provider is %q; leave provider out", ProviderBuiltin))
	}
	if m.Quantile != 0 && m.Name != MetricRequestDuration {
		v.add(mp+".quantile", fmtFloat(m.Quantile), "is only used with "+MetricRequestDuration)
	}
	tr := m.ThresholdRange
	rp := mp + ".thresholdRange"
	if tr.Min == nil && tr.Max == nil && m.SuccessCondition == "" && m.FailureCondition == "" {
		v.add(rp, "", "needs min or max (or both), or a successCondition/failureCondition")
		return
	}
	if tr.Min != nil && tr.Max != nil && *tr.Min > *tr.Max {
		v.add(rp+".min", fmtFloat(*tr.Min), fmt.Sprintf("must not be greater than max (%s)", fmtFloat(*tr.Max)))
	}
	lo, hi, unit := 0.0, -1.0, "milliseconds"
	if m.Name == MetricRequestSuccessRate {
		hi, unit = 100, "a percentage"
	}
	for _, b := range []struct {
		name string
		v    *float64
	}{{"min", tr.Min}, {"max", tr.Max}} {
		if b.v == nil {
			continue
		}
		if *b.v < lo || (hi >= lo && *b.v > hi) {
			want := "must be 0 or more (" + unit + ")"
			if hi >= lo {
				want = "must be 0-100 (" + unit + ")"
			}
			v.add(rp+"."+b.name, fmtFloat(*b.v), want)
		}
	}
}

func (v *validator) prometheusMetric(mp string, m Metric) {
	pm := m.Prometheus
	if pm == nil {
		v.add(mp+".prometheus", "", fmt.Sprintf("is required with provider %q: {address, query}", ProviderPrometheus))
		return
	}
	if !metricName.MatchString(m.Name) {
		v.add(mp+".name", quote(m.Name), "must be letters, digits, '-', '_' or '.', like \"error-rate\"")
	}
	if m.Quantile != 0 {
		v.add(mp+".quantile", fmtFloat(m.Quantile), "is only used with "+MetricRequestDuration+"; put the quantile in the query")
	}
	if m.MinSamples != 0 {
		v.add(mp+".minSamples", strconv.Itoa(m.MinSamples), "is only used with the built-in metrics")
	}
	if u, err := url.Parse(pm.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		v.add(mp+".prometheus.address", quote(pm.Address), "must be an http:// or https:// URL of a Prometheus server, like \"http://prometheus:9090\", without credentials")
	}
	if strings.TrimSpace(pm.Query) == "" {
		v.add(mp+".prometheus.query", "", "is required: a PromQL query returning one number")
	} else if _, err := ExpandQuery(pm.Query, QueryVars{Service: "s", Version: "v", Stable: "s", Interval: "1m"}); err != nil {
		v.add(mp+".prometheus.query", quote(pm.Query), err.Error())
	}
	tr := m.ThresholdRange
	if tr.Min == nil && tr.Max == nil && m.SuccessCondition == "" && m.FailureCondition == "" {
		v.add(mp+".thresholdRange", "", "needs min or max (or both), or a successCondition/failureCondition")
	}
	if tr.Min != nil && tr.Max != nil && *tr.Min > *tr.Max {
		v.add(mp+".thresholdRange.min", fmtFloat(*tr.Min), fmt.Sprintf("must not be greater than max (%s)", fmtFloat(*tr.Max)))
	}
}

// conditions compiles a metric's expressions, so a typo is a config error
// with its position, found by validate rather than at the first check.
func (v *validator) conditions(mp string, m Metric) {
	for _, c := range []struct{ field, src string }{{"successCondition", m.SuccessCondition}, {"failureCondition", m.FailureCondition}} {
		if c.src == "" {
			continue
		}
		if _, err := CompileCondition(c.src); err != nil {
			v.add(mp+"."+c.field, quote(c.src), err.Error())
		}
	}
	if (m.SuccessCondition != "" || m.FailureCondition != "") && (m.ThresholdRange.Min != nil || m.ThresholdRange.Max != nil) {
		v.add(mp+".thresholdRange", "", "must not be set together with successCondition/failureCondition; use one way to judge")
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func (v *validator) proxy() {
	px := &v.s.Spec.Proxy
	const p = "spec.proxy"
	if px.VersionHeader != "" && !isToken(px.VersionHeader) {
		v.add(p+".versionHeader", quote(px.VersionHeader), tokenWant)
	}
}

// MaxQuantiles is the most latency quantiles the judge monitors.
const MaxQuantiles = 8

func (v *validator) sequential(p string, q *Sequential) {
	if q == nil {
		if v.s.Cluster {
			v.add(p+".prometheus", "", sequentialPrometheusWant)
		}
		return
	}
	v.sequentialPrometheus(p+".prometheus", q.Prometheus)
	if len(q.Quantiles) > MaxQuantiles {
		v.add(p+".quantiles", fmt.Sprintf("%d quantiles", len(q.Quantiles)), fmt.Sprintf("may list at most %d", MaxQuantiles))
	}
	for i, x := range q.Quantiles {
		qp := fmt.Sprintf("%s.quantiles[%d]", p, i)
		switch {
		case !(x >= 0.5 && x <= 0.9999):
			v.add(qp, fmtFloat(x), "must be from 0.5 to 0.9999 (the judge watches the upper half of the latency distribution)")
		case i > 0 && x <= q.Quantiles[i-1]:
			v.add(qp, fmtFloat(x), fmt.Sprintf("must be greater than quantiles[%d] (%s): list them ascending, each once", i-1, fmtFloat(q.Quantiles[i-1])))
		}
	}
	if q.MinExposure.Duration > 0 && q.MaxDuration.Duration > 0 && q.MinExposure.Duration > q.MaxDuration.Duration {
		v.add(p+".minExposure", durStr(q.MinExposure), fmt.Sprintf("must not be longer than maxDuration (%s)", durStr(q.MaxDuration)))
	}
}

const sequentialPrometheusWant = "is required on a cluster: where the judge reads each version's counters, " +
	"{address, requests, errors, durationBuckets} (see docs/kubernetes.md, \"The sequential judge\")"

// sequentialPrometheus checks the judge's Prometheus inputs: required on a
// cluster (no built-in proxy measures there), not used by a service file.
func (v *validator) sequentialPrometheus(p string, pm *SequentialPrometheus) {
	switch {
	case pm == nil && v.s.Cluster:
		v.add(p, "", sequentialPrometheusWant)
		return
	case pm == nil:
		return
	case !v.s.Cluster:
		v.add(p, "", "is only used on a Kubernetes cluster; a service file's judge reads the built-in proxy's (or nginx access log's) measurements: remove the block")
		return
	}
	if u, err := url.Parse(pm.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		v.add(p+".address", quote(pm.Address), "must be an http:// or https:// URL of a Prometheus server, like \"http://prometheus:9090\", without credentials")
	}
	for _, f := range []struct{ name, tmpl, want string }{
		{"requests", pm.Requests, `a PromQL selector of the version's request counters, like istio_requests_total{destination_version="{{ version }}"}`},
		{"errors", pm.Errors, `a PromQL selector of the version's failed-request counters, like istio_requests_total{destination_version="{{ version }}",response_code=~"5.."}`},
		{"durationBuckets", pm.DurationBuckets, `a PromQL selector of the version's duration histogram buckets, like istio_request_duration_milliseconds_bucket{destination_version="{{ version }}"}`},
	} {
		fp := p + "." + f.name
		if strings.TrimSpace(f.tmpl) == "" {
			v.add(fp, "", "is required: "+f.want)
			continue
		}
		const mark = "version-mark"
		q, err := ExpandQuery(f.tmpl, QueryVars{Service: "s", Version: mark, Stable: "s", Interval: "1m"})
		switch {
		case err != nil:
			v.add(fp, quote(f.tmpl), err.Error())
		case !strings.Contains(q, mark):
			v.add(fp, quote(f.tmpl), "must select one version's series with {{ version }}: "+f.want)
		case counterFunc.MatchString(f.tmpl):
			v.add(fp, quote(f.tmpl), "must select the raw cumulative counters, without rate(), irate() or increase(): the judge differences them itself, second by second")
		}
	}
	switch pm.DurationUnit {
	case DurationSeconds, DurationMilliseconds:
	default:
		v.add(p+".durationUnit", quote(pm.DurationUnit), fmt.Sprintf("must be %q (le bounds in seconds) or %q (milliseconds, as Istio's and Envoy's)", DurationSeconds, DurationMilliseconds))
	}
}

// counterFunc matches the PromQL functions that turn a counter into a rate.
var counterFunc = regexp.MustCompile(`\b(rate|irate|increase)\s*\(`)
