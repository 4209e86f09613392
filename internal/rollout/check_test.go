package rollout

import (
	"strings"
	"testing"
)

func TestValidateState(t *testing.T) {
	good := func() State {
		return State{
			Service: "web", Phase: PhaseProgressing, Stable: "blue",
			Weights:  Weights{"blue": 90, "green": 10},
			Versions: map[string][]string{"blue": {"a:1"}, "green": {"b:1"}},
			Rollout: &Run{ID: 1, Version: "green", From: "blue", Weight: 10, StepIndex: 1,
				Steps: []Step{{Kind: StepHealthGate}, {Kind: StepSetWeight, Weight: 10}, {Kind: StepSwitch}}},
		}
	}
	tests := []struct {
		name   string
		damage func(*State)
		want   string // "" for valid
	}{
		{"good", func(*State) {}, ""},
		{"zero", func(s *State) { *s = State{} }, ""},
		{"unknown phase", func(s *State) { s.Phase = "Exploding" }, `phase is "Exploding"`},
		{"weights sum 198", func(s *State) { s.Weights = Weights{"blue": 99, "green": 99} }, "add up to 198"},
		{"negative weight", func(s *State) { s.Weights = Weights{"blue": 110, "green": -10} }, "must be 0-100"},
		{"unknown version in weights", func(s *State) { s.Weights = Weights{"blue": 90, "purple": 10} }, `version "purple"`},
		{"unknown step kind", func(s *State) { s.Rollout.Steps[2].Kind = "Teleport" }, `kind "Teleport", unknown`},
		{"step index past plan", func(s *State) { s.Rollout.StepIndex = 7 }, "at step 7 of a plan of 3"},
		{"unknown step kind in last", func(s *State) { s.Last = &Run{ID: 0, Steps: []Step{{Kind: "X"}}} }, "last rollout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.damage(&s)
			err := s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
