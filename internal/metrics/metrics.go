// Package metrics is where analysis gets its numbers: a Source measures one
// version's traffic over a window. The built-in proxy's one-second windows
// are one source (adapted with WindowFunc); Prometheus and nginx's access
// log will be others. Which source a check reads is the check's provider
// (spec.Metric.Provider); the names and defaults live in internal/spec.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// Sample is one version's traffic over a window: exact request and error
// counts and a mergeable latency sketch (seconds). Latency may be nil when
// Requests is zero.
type Sample struct {
	Requests int64
	Errors   int64
	// Generated is how many of Requests the load generator sent.
	Generated int64
	Latency   *ddsketch.DDSketch
	// Since is when the measured window began, when the source knows (it
	// may begin before "now minus d": windows are whole seconds).
	Since time.Time
}

// Quantile returns the latency at quantile q (0..1), or 0 for an empty sample.
func (s Sample) Quantile(q float64) time.Duration {
	if s.Latency == nil || s.Latency.IsEmpty() {
		return 0
	}
	v, err := s.Latency.GetValueAtQuantile(q)
	if err != nil {
		return 0
	}
	return time.Duration(v * float64(time.Second))
}

// ErrorRate returns Errors/Requests, or 0 without requests.
func (s Sample) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// LoadHeader carries the load generator's token (spec.analysis.load): the
// built-in proxy routes a request with the service's current token to the
// canary and counts it in Sample.Generated; it never reaches a target.
const LoadHeader = "X-Switchyard-Load"

// Source measures a version's traffic over the window of length d ending now.
type Source interface {
	Window(ctx context.Context, service, version string, d time.Duration) (Sample, error)
}

// WindowFunc adapts an in-process window reader (the built-in proxy's) to
// Source; it cannot fail.
type WindowFunc func(service, version string, d time.Duration) Sample

// Window implements Source.
func (f WindowFunc) Window(_ context.Context, service, version string, d time.Duration) (Sample, error) {
	return f(service, version, d), nil
}

// ErrNoData is returned (wrapped) by a Querier whose query returned no
// series: no evidence either way, so the check is inconclusive.
var ErrNoData = errors.New("the query returned no data")

// Value is the number a query returned, with the warnings the server sent
// along (kept in the history).
type Value struct {
	Number   float64
	Warnings []string
}

// Querier answers a query with one number (Prometheus).
type Querier interface {
	Query(ctx context.Context, address, query string) (Value, error)
}

// Sources maps a provider name (spec.ProviderBuiltin, ...) to its source.
type Sources map[string]Source

// For returns the source of a provider, or an error naming the known ones.
func (s Sources) For(provider string) (Source, error) {
	if src, ok := s[provider]; ok {
		return src, nil
	}
	known := make([]string, 0, len(s))
	for k := range s {
		known = append(known, k)
	}
	return nil, fmt.Errorf("no metric source for provider %q (known: %v)", provider, known)
}

// Second is one completed second of one version's traffic.
type Second struct {
	// Unix is the second (Unix time) the window covers.
	Unix int64
	Sample
}

// Seconds is what a SecondSource returned: every version's completed
// seconds in (after, Through], oldest first. A second without traffic may
// be left out; a second after Through is not complete yet.
type Seconds struct {
	Through int64
	By      map[string][]Second
}

// SecondSource gives versions' completed one-second windows one by one,
// with one cut across the versions, for the sequential judge, which must
// count every second once and compare versions over the same seconds.
// Latency sketches of every second use the same mapping (they merge).
type SecondSource interface {
	// Seconds returns the completed seconds after the Unix second after (as
	// far back as the source keeps; 0 means as far back as it can).
	Seconds(ctx context.Context, service string, versions []string, after int64) (Seconds, error)
}
