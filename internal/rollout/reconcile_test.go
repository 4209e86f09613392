package rollout

import (
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

// TestReconcileDropsUnusedVersions: a version added by deploy --targets
// that the spec does not list is dropped by the next Reconcile (apply,
// SIGHUP, restart) once nothing uses it, and kept while it is the canary
// or the stable version.
func TestReconcileDropsUnusedVersions(t *testing.T) {
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{"b:1"}}},
		Strategy: spec.Strategy{BlueGreen: &spec.BlueGreen{}},
	}}
	svc.Default()
	m, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	step := func(s State, e Event) State {
		t.Helper()
		next, _, err := m.Step(s, e, now)
		if err != nil {
			t.Fatalf("Step(%s): %v", EventName(e), err)
		}
		return next
	}
	retired := func(acts []Action) []string {
		var out []string
		for _, a := range only[RetireVersion](acts) {
			out = append(out, a.Version)
		}
		return out
	}
	s, _ := m.Reconcile(State{}, now)
	s = step(s, HealthChanged{Version: "blue", Healthy: 1, Total: 1})
	s = step(s, Deploy{Version: "yellow", Targets: []string{"y:1"}, By: "test"})

	// In a running rollout: kept.
	s, acts := m.Reconcile(s, now)
	if _, ok := s.Versions["yellow"]; !ok || len(retired(acts)) != 0 {
		t.Fatalf("Reconcile during yellow's rollout dropped it: versions %v, retired %v", s.Versions, retired(acts))
	}

	// Aborted: nothing uses it any more.
	s = step(s, Abort{By: "test"})
	s, acts = m.Reconcile(s, now)
	if _, ok := s.Versions["yellow"]; ok {
		t.Errorf("Reconcile kept yellow, which neither the spec lists nor anything uses: %v", s.Versions)
	}
	if got := retired(acts); !slices.Equal(got, []string{"yellow"}) {
		t.Errorf("Reconcile retired %v, want [yellow]", got)
	}
	if _, ok := s.Versions["blue"]; !ok {
		t.Errorf("Reconcile dropped blue, the stable version: %v", s.Versions)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("state after Reconcile: %v", err)
	}

	// Promoted: yellow is stable and stays; blue stays because the spec lists it.
	s = step(s, Deploy{Version: "yellow", Targets: []string{"y:1"}, By: "test"})
	s = step(s, HealthChanged{Version: "yellow", Healthy: 1, Total: 1})
	if s.Rollout != nil {
		s = step(s, Promote{Full: true, By: "test"})
	}
	if s.Stable != "yellow" {
		t.Fatalf("stable = %s after promote --full, want yellow", s.Stable)
	}
	s, acts = m.Reconcile(s, now)
	if _, ok := s.Versions["yellow"]; !ok || len(retired(acts)) != 0 {
		t.Errorf("Reconcile dropped the stable version yellow: versions %v, retired %v", s.Versions, retired(acts))
	}
}
