package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard/switchyard/internal/rollout"
)

func TestNeedsRollout(t *testing.T) {
	tests := []struct {
		name string
		st   rollout.State
		rev  string
		want bool
	}{
		{"stable", rollout.State{Stable: "r1"}, "r1", false},
		{"new revision", rollout.State{Stable: "r1"}, "r2", true},
		{"being rolled out", rollout.State{Stable: "r1", Rollout: &rollout.Run{Version: "r2"}}, "r2", false},
		{"superseding a rollout", rollout.State{Stable: "r1", Rollout: &rollout.Run{Version: "r2"}}, "r3", true},
		{"rolled back", rollout.State{Stable: "r1", Last: &rollout.Run{Version: "r2", Result: rollout.ResultRolledBack}}, "r2", false},
		{"back to a promoted one", rollout.State{Stable: "r2", Last: &rollout.Run{Version: "r1", Result: rollout.ResultPromoted}}, "r1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := needsRollout(tt.st, tt.rev); got != tt.want {
				t.Fatalf("needsRollout(%s) = %v, want %v", tt.rev, got, tt.want)
			}
		})
	}
}

func TestReason(t *testing.T) {
	for in, want := range map[string]string{"rolled-back": "RolledBack", "promoted": "Promoted", "Progressing": "Progressing", "": "Unknown"} {
		if got := reason(in); got != want {
			t.Errorf("reason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRevision(t *testing.T) {
	a := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
	b := a.DeepCopy()
	b.Spec.Containers[0].Image = "web:2"
	ra, _ := Revision(a)
	ra2, _ := Revision(a.DeepCopy())
	rb, _ := Revision(b)
	if ra != ra2 || ra == rb || len(ra) != 10 {
		t.Fatalf("Revision = %q, %q (same template), %q (other); want equal, different, 10 hex digits", ra, ra2, rb)
	}
}
