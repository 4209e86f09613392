// Package bench is the side-by-side benchmark of Switchyard's proxy against
// nginx and HAProxy: load-generator output parsing, medians and the markdown
// report, the proxies' configurations, process handling and RSS readings.
// The program that runs it is bench/cmd/compare (see bench/README.md).
package bench

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Result is one load-generator run.
type Result struct {
	// RPS is requests per second.
	RPS float64
	// P99 is the 99th percentile latency.
	P99 time.Duration
	// Requests is the number of completed requests.
	Requests int64
	// Errors counts socket errors, timeouts and non-2xx/3xx responses.
	Errors int64
}

// ErrNoResult is returned when load-generator output lacks the figures.
var ErrNoResult = errors.New("no requests/sec or 99% latency in the output")

// ParseWrk reads the output of `wrk --latency`.
func ParseWrk(out string) (Result, error) {
	var r Result
	var haveRPS, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk requests/sec %q: %w", f[1], err)
			}
			r.RPS, haveRPS = v, true
		case len(f) == 2 && f[0] == "99%" || len(f) == 2 && f[0] == "99.000%":
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk 99%% latency: %w", err)
			}
			r.P99, haveP99 = d, true
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			// "123456 requests in 10.00s, 12.34MB read"
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				r.Requests = n
			}
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk socket errors %q: %w", line, err)
				}
				r.Errors += n
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk non-2xx %q: %w", line, err)
			}
			r.Errors += n
		}
	}
	if !haveRPS || !haveP99 {
		return r, fmt.Errorf("wrk: %w", ErrNoResult)
	}
	return r, nil
}

// parseWrkDuration reads wrk's latency units: "812.00us", "1.23ms", "2.01s",
// "1.00m".
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("duration %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("duration %q has no known unit", s)
}

// ParseHey reads the default (summary) output of hey.
func ParseHey(out string) (Result, error) {
	var r Result
	var haveRPS, haveP99 bool
	inErrors := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("hey requests/sec %q: %w", f[1], err)
			}
			r.RPS, haveRPS = v, true
		case len(f) >= 4 && f[0] == "99%" && f[1] == "in" && f[3] == "secs":
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return r, fmt.Errorf("hey 99%% latency %q: %w", f[2], err)
			}
			r.P99, haveP99 = time.Duration(v*float64(time.Second)), true
		case strings.HasPrefix(line, "Error distribution:"):
			inErrors = true
		case inErrors && strings.HasPrefix(line, "["):
			// "[3]	Get ...: connection refused": a count, then the error.
			n, err := strconv.ParseInt(strings.Trim(f[0], "[]"), 10, 64)
			if err == nil {
				r.Errors += n
			}
		case strings.HasPrefix(line, "[") && len(f) >= 2:
			// "[200]	12345 responses"
			code, err1 := strconv.Atoi(strings.Trim(f[0], "[]"))
			n, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			r.Requests += n
			if code >= 400 {
				r.Errors += n
			}
		}
	}
	if !haveRPS || !haveP99 {
		return r, fmt.Errorf("hey: %w", ErrNoResult)
	}
	return r, nil
}
