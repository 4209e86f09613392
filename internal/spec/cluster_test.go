package spec

import (
	"strings"
	"testing"
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
