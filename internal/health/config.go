package health

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// Config is one service's health settings, as NewConfig checked them.
// Probes read a service's current Config every round, so Configure can
// change it without restarting them.
type Config struct {
	path              string
	interval, timeout time.Duration
	healthyAfter      int32
	unhealthyAfter    int32
	expect            []int
	passiveFailures   int32
	backoff           time.Duration
}

// NewConfig compiles a service's spec.HealthCheck as spec.Default left it.
// It applies no defaults of its own (spec.Default is the one place they
// live) and refuses the values the checker cannot run with: a path that
// does not start with "/", a non-positive interval (a busy loop) or timeout
// (every probe fails), thresholds or consecutiveFailures below 1, and a
// negative backoff. Two zeros are meaningful: an empty expectedStatus
// accepts 200-399, and a zero backoff never ejects a target (an ejection
// that lasts no time), which spec.Validate also allows.
func NewConfig(hc spec.HealthCheck) (*Config, error) {
	const p = "healthCheck"
	var errs []error
	bad := func(field, value, want string) {
		errs = append(errs, fmt.Errorf("%s.%s is %s; %s (spec.Default sets it)", p, field, value, want))
	}
	if !strings.HasPrefix(hc.Path, "/") {
		bad("path", fmt.Sprintf("%q", hc.Path), `must start with "/"`)
	}
	if hc.Interval.Duration <= 0 {
		bad("interval", hc.Interval.Duration.String(), "must be positive")
	}
	if hc.Timeout.Duration <= 0 {
		bad("timeout", hc.Timeout.Duration.String(), "must be positive")
	}
	if hc.HealthyThreshold < 1 {
		bad("healthyThreshold", fmt.Sprint(hc.HealthyThreshold), "must be at least 1")
	}
	if hc.UnhealthyThreshold < 1 {
		bad("unhealthyThreshold", fmt.Sprint(hc.UnhealthyThreshold), "must be at least 1")
	}
	if hc.Passive.ConsecutiveFailures < 1 {
		bad("passive.consecutiveFailures", fmt.Sprint(hc.Passive.ConsecutiveFailures), "must be at least 1")
	}
	if hc.Passive.Backoff.Duration < 0 {
		bad("passive.backoff", hc.Passive.Backoff.Duration.String(), "must not be negative")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Config{
		path:            hc.Path,
		interval:        hc.Interval.Duration,
		timeout:         hc.Timeout.Duration,
		healthyAfter:    int32(hc.HealthyThreshold),
		unhealthyAfter:  int32(hc.UnhealthyThreshold),
		expect:          slices.Clone(hc.ExpectedStatus),
		passiveFailures: int32(hc.Passive.ConsecutiveFailures),
		backoff:         hc.Passive.Backoff.Duration,
	}, nil
}

func (c *Config) expected(code int) bool {
	if len(c.expect) == 0 {
		return code >= 200 && code < 400
	}
	return slices.Contains(c.expect, code)
}

// Address is how a target is reached: what probes and proxies dial. It is
// the spec's target type, parsed by the spec's one parser of them.
type Address = spec.Target

// ParseAddress parses a target with spec.ParseTarget.
func ParseAddress(s string) (Address, error) { return spec.ParseTarget(s) }

// ParseAddresses parses a version's target list with ParseAddress (the
// spec's one target parser), refusing duplicates; the proxy uses it too.
func ParseAddresses(targets []string) ([]Address, error) {
	out := make([]Address, len(targets))
	seen := make(map[string]bool, len(targets))
	var errs []error
	for i, s := range targets {
		a, err := ParseAddress(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[s] {
			errs = append(errs, fmt.Errorf("target %q is listed twice", s))
		}
		seen[s] = true
		out[i] = a
	}
	return out, errors.Join(errs...)
}
