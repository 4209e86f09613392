package spec

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// stepsString renders steps compactly: "10 p5m0s 20 p0s".
func stepsString(steps []Step) string {
	var parts []string
	for _, s := range steps {
		switch {
		case s.SetWeight != nil && s.Pause == nil:
			parts = append(parts, fmt.Sprint(*s.SetWeight))
		case s.Pause != nil && s.SetWeight == nil:
			parts = append(parts, "p"+s.Pause.Duration.String())
		default:
			parts = append(parts, "?")
		}
	}
	return strings.Join(parts, " ")
}

func intp(v int) *int { return &v }

func TestExpandSteps(t *testing.T) {
	tests := []struct {
		name    string
		canary  *Canary
		want    string
		wantErr string
	}{
		{name: "explicit steps", canary: &Canary{Steps: []Step{
			{SetWeight: intp(5)}, {Pause: &Pause{D(30 * time.Second)}}, {SetWeight: intp(25)}, {Pause: &Pause{}},
		}}, want: "5 p30s 25 p0s"},
		{name: "preset Canary10Percent5Minutes", canary: &Canary{Preset: "Canary10Percent5Minutes"}, want: "10 p5m0s"},
		{name: "preset Canary10Percent30Minutes", canary: &Canary{Preset: "Canary10Percent30Minutes"}, want: "10 p30m0s"},
		{name: "preset Linear10PercentEvery1Minute", canary: &Canary{Preset: "Linear10PercentEvery1Minute"},
			want: "10 p1m0s 20 p1m0s 30 p1m0s 40 p1m0s 50 p1m0s 60 p1m0s 70 p1m0s 80 p1m0s 90 p1m0s"},
		{name: "preset AllAtOnce", canary: &Canary{Preset: "AllAtOnce"}, want: ""},
		{name: "custom canary", canary: &Canary{Preset: "canary 20%/30s"}, want: "20 p30s"},
		{name: "custom linear uneven", canary: &Canary{Preset: "linear 30%/2m"}, want: "30 p2m0s 60 p2m0s 90 p2m0s"},
		{name: "custom linear 50 stops below 100", canary: &Canary{Preset: "linear 50%/10s"}, want: "50 p10s"},
		{name: "custom linear 99", canary: &Canary{Preset: "linear 99%/1s"}, want: "99 p1s"},
		{name: "bad preset", canary: &Canary{Preset: "Canary10Percent"}, wantErr: "unknown preset"},
		{name: "flagger defaults", canary: &Canary{StepWeight: 10},
			want: "10 p1m0s 20 p1m0s 30 p1m0s 40 p1m0s 50 p1m0s"},
		{name: "flagger clamps to maxWeight", canary: &Canary{StepWeight: 20, MaxWeight: 50, Interval: D(30 * time.Second)},
			want: "20 p30s 40 p30s 50 p30s"},
		{name: "flagger maxWeight 100", canary: &Canary{StepWeight: 40, MaxWeight: 100, Interval: D(time.Second)},
			want: "40 p1s 80 p1s 100 p1s"},
		{name: "flagger stepWeight equals maxWeight", canary: &Canary{StepWeight: 30, MaxWeight: 30}, want: "30 p1m0s"},
		{name: "flagger stepWeights", canary: &Canary{StepWeights: []int{1, 5, 25}, Interval: D(10 * time.Second)},
			want: "1 p10s 5 p10s 25 p10s"},
		{name: "flagger stepWeight out of range", canary: &Canary{StepWeight: 120}, wantErr: "stepWeight 120"},
		{name: "flagger maxWeight below stepWeight", canary: &Canary{StepWeight: 30, MaxWeight: 20}, wantErr: "maxWeight 20"},
		{name: "no form", canary: &Canary{}, wantErr: ErrNoCanarySteps.Error()},
		{name: "nil canary", canary: nil, wantErr: ErrNoCanarySteps.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := tt.canary.ExpandSteps()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ExpandSteps() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ExpandSteps() error = %v", err)
			}
			if got := stepsString(steps); got != tt.want {
				t.Errorf("ExpandSteps() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandStepsCopiesSteps(t *testing.T) {
	c := &Canary{Steps: []Step{{SetWeight: intp(5)}}}
	steps, err := c.ExpandSteps()
	if err != nil {
		t.Fatal(err)
	}
	*steps[0].SetWeight = 99
	if *c.Steps[0].SetWeight != 5 {
		t.Errorf("changing the expanded steps changed the spec: setWeight = %d, want 5", *c.Steps[0].SetWeight)
	}
}

func TestParsePreset(t *testing.T) {
	tests := []struct {
		in      string
		want    Preset
		wantErr bool
	}{
		{in: "Canary10Percent5Minutes", want: Preset{PresetCanary, 10, 5 * time.Minute}},
		{in: "Linear10PercentEvery1Minute", want: Preset{PresetLinear, 10, time.Minute}},
		{in: "AllAtOnce", want: Preset{Kind: PresetAllAtOnce}},
		{in: "canary 10%/5m", want: Preset{PresetCanary, 10, 5 * time.Minute}},
		{in: "linear 20%/30s", want: Preset{PresetLinear, 20, 30 * time.Second}},
		{in: "linear 1%/1h30m", want: Preset{PresetLinear, 1, 90 * time.Minute}},
		{in: "canary 0%/5m", wantErr: true},
		{in: "canary 100%/5m", wantErr: true},
		{in: "canary 10%/0s", wantErr: true},
		{in: "canary 10%/5", wantErr: true},
		{in: "canary 10/5m", wantErr: true},
		{in: "canary  10%/5m", wantErr: true},
		{in: "Canary 10%/5m", wantErr: true},
		{in: "canary 10% / 5m", wantErr: true},
		{in: "canary -10%/5m", wantErr: true},
		{in: "canary 10%/-5m", wantErr: true},
		{in: "allatonce", wantErr: true},
		{in: "", wantErr: true},
		// CodeDeploy's names as seeds write them.
		{in: "CodeDeployDefault.Canary10Percent5Minutes", want: Preset{PresetCanary, 10, 5 * time.Minute}},
		{in: "CodeDeployDefault.Linear10PercentEvery10Minutes", want: Preset{PresetLinear, 10, 10 * time.Minute}},
		{in: "CodeDeployDefault.AllAtOnce", want: Preset{Kind: PresetAllAtOnce}},
		{in: "Canary20Percent10Minutes", want: Preset{PresetCanary, 20, 10 * time.Minute}},
		{in: "Custom.Canary20Percent10Minutes", want: Preset{PresetCanary, 20, 10 * time.Minute}},
		{in: "Linear15PercentEvery3Minutes", want: Preset{PresetLinear, 15, 3 * time.Minute}},
		{in: "Custom.Linear15PercentEvery3Minutes", want: Preset{PresetLinear, 15, 3 * time.Minute}},
		{in: "Canary5Percent1Minute", want: Preset{PresetCanary, 5, time.Minute}},
		{in: "CodeDeployDefault.Canary20Percent10Minutes", wantErr: true}, // not a predefined one
		{in: "Canary0Percent5Minutes", wantErr: true},
		{in: "Canary10Percent0Minutes", wantErr: true},
		{in: "Canary10PercentEvery5Minutes", wantErr: true},
		{in: "Linear10Percent5Minutes", wantErr: true},
		{in: "Linear10PercentEvery1Minutes", wantErr: true},
		{in: "Canary10Percent5Minute", wantErr: true},
		{in: "Custom.AllAtOnce2", wantErr: true},
		{in: "custom.Canary20Percent10Minutes", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePreset(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePreset(%q) = %+v, want an error", tt.in, got)
				}
				// Every error that is not about a number lists what is accepted.
				if msg := err.Error(); !strings.Contains(msg, "must be") && !strings.Contains(msg, "not a duration") && !strings.Contains(msg, "Canary10Percent5Minutes") {
					t.Errorf("ParsePreset(%q) error %q does not list the accepted forms", tt.in, msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePreset(%q) error = %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParsePreset(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPresetNamesParse(t *testing.T) {
	for _, name := range PresetNames() {
		if _, err := ParsePreset(name); err != nil {
			t.Errorf("ParsePreset(%q) error = %v", name, err)
		}
		if !strings.Contains(PresetWant, name) {
			t.Errorf("PresetWant does not mention %q", name)
		}
	}
}
