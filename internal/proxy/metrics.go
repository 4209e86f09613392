package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus collectors (names fixed by PRODUCT.md);
// switchyard_target_up is the health checker's.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	weight   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_requests_total",
			Help: "Requests proxied, by service, version and status code (499: client closed the request).",
		}, []string{"service", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_request_duration_seconds",
			Help:    "Time from receiving a request to finishing its response, by service and version.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "version"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_traffic_weight",
			Help: "Percent of a service's traffic routed to a version.",
		}, []string{"service", "version"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.weight} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register proxy metrics: %w (one Proxy per registry)", err)
			}
			return nil, fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) forgetVersion(service, version string) {
	l := prometheus.Labels{"service": service, "version": version}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.weight.DeletePartialMatch(l)
}
