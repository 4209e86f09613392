// Package prometheus is the metric provider of checks with a prometheus
// block: it runs a PromQL instant query and returns its single number.
package prometheus

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/switchyard/switchyard/internal/metrics"
)

// Querier runs instant queries against Prometheus servers, one client per
// address, every call through the same HTTP client (egress policy,
// timeout).
type Querier struct {
	hc *http.Client

	mu      sync.Mutex
	clients map[string]v1.API
}

var _ metrics.Querier = (*Querier)(nil)

// New returns a Querier sending its requests with hc.
func New(hc *http.Client) *Querier {
	return &Querier{hc: hc, clients: map[string]v1.API{}}
}

func (q *Querier) api(address string) (v1.API, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c, ok := q.clients[address]; ok {
		return c, nil
	}
	c, err := api.NewClient(api.Config{Address: address, Client: q.hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: %w", address, err)
	}
	a := v1.NewAPI(c)
	q.clients[address] = a
	return a, nil
}

// Query implements metrics.Querier: the query must return a scalar or a
// vector of exactly one series.
func (q *Querier) Query(ctx context.Context, address, query string) (metrics.Value, error) {
	a, err := q.api(address)
	if err != nil {
		return metrics.Value{}, err
	}
	res, warnings, infos, err := a.Query(ctx, query, time.Now())
	out := metrics.Value{Warnings: append(append([]string(nil), warnings...), infos...)}
	if err != nil {
		return out, fmt.Errorf("prometheus %s: query %q: %w", address, query, err)
	}
	switch v := res.(type) {
	case *model.Scalar:
		out.Number = float64(v.Value)
	case model.Vector:
		switch len(v) {
		case 0:
			return out, fmt.Errorf("prometheus %s: query %q: %w", address, query, metrics.ErrNoData)
		case 1:
			out.Number = float64(v[0].Value)
		default:
			return out, fmt.Errorf("prometheus %s: query %q returned %d series, want one (aggregate it, e.g. sum(...)): %s",
				address, query, len(v), seriesLabels(v))
		}
	case model.Matrix:
		return out, fmt.Errorf("prometheus %s: query %q returned a range vector; make it an instant query (e.g. rate(x[1m]) rather than x[1m])", address, query)
	default:
		return out, fmt.Errorf("prometheus %s: query %q returned a %s, want a number", address, query, res.Type())
	}
	return out, nil
}

func seriesLabels(v model.Vector) string {
	var parts []string
	for i, s := range v {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(v)-5))
			break
		}
		parts = append(parts, s.Metric.String())
	}
	sort.Strings(parts[:min(len(parts), 5)])
	return strings.Join(parts, ", ")
}
