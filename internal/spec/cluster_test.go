package spec

import (
	"strings"
	"testing"
	"time"
)

// TestClusterService: a service built from a Kubernetes Rollout (Cluster)
// is not told to set what the cluster provides (listen, trafficRouter,
// versions, stable, targets), and is checked as usual everywhere else; a
// decoded service file can never be a Cluster service.
func TestClusterService(t *testing.T) {
	s := &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"}, Cluster: true,
		Spec: ServiceSpec{Versions: []Version{{Name: "6d4f9c7b8"}}, Stable: "6d4f9c7b8"}}
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate = %v, want nil", err)
	}
	if s.Spec.TrafficRouter != (TrafficRouter{}) {
		t.Errorf("Default gave a Cluster service the router %+v; a Rollout's traffic is moved by its own", s.Spec.TrafficRouter)
	}
	s.Spec.Analysis = &Analysis{Interval: D(1)}
	s.Default()
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "spec.analysis.interval is 1ns") {
		t.Errorf("Validate = %v, want the bad interval reported", err)
	}
	s.Cluster = false
	s.Default()
	for _, want := range []string{"spec.listen", "spec.versions[0].targets"} {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("outside a cluster: Validate = %v, want %s reported", err, want)
		}
	}
	svcs, err := Decode("web.yaml", []byte("apiVersion: switchyard.dev/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  cluster: true\n"))
	if err == nil || !strings.Contains(err.Error(), "spec.cluster: unknown field") {
		t.Errorf("Decode = %v, want cluster refused as an unknown field", err)
	}
	for _, s := range svcs {
		if s.Cluster {
			t.Error("a decoded service is a Cluster service")
		}
	}
}

// TestSequentialPrometheus: on a cluster the sequential judge must say
// where its counters are (no built-in proxy measures there); a service
// file must not, and each field is checked with its value and the fix.
func TestSequentialPrometheus(t *testing.T) {
	good := func() *SequentialPrometheus {
		return &SequentialPrometheus{
			Address:         "http://prometheus:9090",
			Requests:        `istio_requests_total{destination_version="{{ version }}"}`,
			Errors:          `istio_requests_total{destination_version="{{ version }}",response_code=~"5.."}`,
			DurationBuckets: `istio_request_duration_milliseconds_bucket{destination_version="{{ version }}"}`,
			DurationUnit:    DurationMilliseconds,
		}
	}
	tests := []struct {
		name    string
		cluster bool
		seq     *Sequential
		edit    func(*SequentialPrometheus)
		want    []string
	}{
		{name: "cluster, complete", cluster: true, seq: &Sequential{Prometheus: good()}},
		{name: "cluster, no sequential block", cluster: true,
			want: []string{"spec.analysis.sequential.prometheus: is required on a cluster"}},
		{name: "cluster, no prometheus block", cluster: true, seq: &Sequential{},
			want: []string{"spec.analysis.sequential.prometheus: is required on a cluster"}},
		{name: "service file, none", seq: &Sequential{}},
		{name: "service file, set", seq: &Sequential{Prometheus: good()},
			want: []string{"spec.analysis.sequential.prometheus: is only used on a Kubernetes cluster"}},
		{name: "every field wrong", cluster: true, seq: &Sequential{Prometheus: good()},
			edit: func(p *SequentialPrometheus) {
				p.Address = "prometheus:9090"
				p.Requests = ""
				p.Errors = `sum(rate(istio_requests_total{destination_version="{{ version }}"}[1m]))`
				p.DurationBuckets = `istio_request_duration_milliseconds_bucket`
				p.DurationUnit = "us"
				p.ScrapeInterval = D(10 * time.Minute)
			},
			want: []string{
				`spec.analysis.sequential.prometheus.address is "prometheus:9090"; must be an http:// or https:// URL`,
				"spec.analysis.sequential.prometheus.requests: is required: a PromQL selector",
				`spec.analysis.sequential.prometheus.errors is "sum(rate(`, "without rate(), irate() or increase()",
				"spec.analysis.sequential.prometheus.durationBuckets is \"istio_request_duration_milliseconds_bucket\"; must select one version's series with {{ version }}: a PromQL selector",
				`spec.analysis.sequential.prometheus.durationUnit is "us"; must be "s"`,
				"spec.analysis.sequential.prometheus.scrapeInterval is 10m",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"}, Cluster: tc.cluster,
				Spec: ServiceSpec{Versions: []Version{{Name: "blue", Targets: []string{"127.0.0.1:8081"}}}, Stable: "blue", Listen: "127.0.0.1:8080",
					Analysis: &Analysis{Judge: JudgeSequential, Sequential: tc.seq}}}
			if tc.edit != nil {
				tc.edit(s.Spec.Analysis.Sequential.Prometheus)
			}
			s.Default()
			err := s.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}
