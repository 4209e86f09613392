package v1alpha1

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"

	"github.com/switchyard/switchyard/internal/rollout"
)

func canaryState() rollout.State {
	t0 := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	return rollout.State{
		Service: "web", Phase: rollout.PhaseProgressing, Stable: "6d4f9c7b8",
		Weights:     rollout.Weights{"6d4f9c7b8": 75, "7b5c8d9f1": 25},
		Applied:     rollout.Weights{"6d4f9c7b8": 90, "7b5c8d9f1": 10},
		Versions:    map[string][]string{"6d4f9c7b8": {"10.0.0.5:8080"}, "7b5c8d9f1": {"10.0.0.7:8080"}},
		NextRollout: 8,
		Rollout: &rollout.Run{
			ID: 7, Version: "7b5c8d9f1", From: "6d4f9c7b8", Strategy: rollout.StrategyCanary,
			Steps: []rollout.Step{{Kind: rollout.StepHealthGate}, {Kind: rollout.StepSetWeight, Weight: 10},
				{Kind: rollout.StepPause, Duration: 5 * time.Minute}, {Kind: rollout.StepSwitch}},
			StepIndex: 2, StartedAt: t0, StepStartedAt: t0.Add(time.Minute), Weight: 10,
			Threshold: 2, Analysis: true, Metrics: []string{"error-rate"},
			Verdicts: map[string]rollout.VerdictRecord{"error-rate": {Metric: "error-rate", Result: rollout.VerdictPassed,
				Value: 0.0042, Samples: 1234, At: t0.Add(2 * time.Minute)}},
			JudgeCheckpoint: json.RawMessage(`{"seconds":120,"e":[1.5,0.25]}`),
		},
	}
}

// TestEngineStateRoundTrip: the engine's state saved in the status comes
// back equal after the trip a controller's Save and Load make (JSON to the
// API server, stored as untyped JSON, read back), and the fields people
// read agree with it.
func TestEngineStateRoundTrip(t *testing.T) {
	st := canaryState()
	var r Rollout
	if err := r.Status.SetEngineState(st); err != nil {
		t.Fatal(err)
	}
	s := r.Status
	if s.Phase != "Progressing" || s.StableRevision != "6d4f9c7b8" || s.CanaryRevision != "7b5c8d9f1" || s.CanaryWeight != 10 || s.Weights["6d4f9c7b8"] != 75 || s.AppliedWeights["6d4f9c7b8"] != 90 {
		t.Errorf("status = %+v", s)
	}
	if c := s.CurrentStep; c == nil || c.Index != 2 || c.Count != 4 || c.Kind != "Pause" || c.StartedAt == nil {
		t.Errorf("currentStep = %+v", c)
	}
	if len(s.Verdicts) != 1 || s.Verdicts[0].Metric != "error-rate" || s.Verdicts[0].Result != "passed" || s.Verdicts[0].Value != "0.0042" || s.Verdicts[0].Samples != 1234 {
		t.Errorf("verdicts = %+v", s.Verdicts)
	}
	// The API server stores the object as untyped JSON (integers kept as
	// integers) and serves it back.
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	var untyped map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(b, &untyped); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(untyped); err != nil {
		t.Fatal(err)
	}
	var back Rollout
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, ok, err := back.Status.LoadEngineState()
	if err != nil || !ok {
		t.Fatalf("LoadEngineState = %v, %v", ok, err)
	}
	// The checkpoint is the judge's own JSON: the API server keeps its
	// values, not its bytes (keys come back sorted).
	var a, b2 any
	if json.Unmarshal(got.Rollout.JudgeCheckpoint, &a) != nil || json.Unmarshal(st.Rollout.JudgeCheckpoint, &b2) != nil || !reflect.DeepEqual(a, b2) {
		t.Errorf("judge checkpoint = %s, want %s", got.Rollout.JudgeCheckpoint, st.Rollout.JudgeCheckpoint)
	}
	got.Rollout.JudgeCheckpoint, st.Rollout.JudgeCheckpoint = nil, nil
	if !reflect.DeepEqual(got, st) {
		t.Errorf("state after the round trip:\n%+v\nwant\n%+v", got, st)
	}
}

// TestLoadEngineState: no state yet is not an error; a damaged one is,
// naming what is wrong (the controller must not resume from it).
func TestLoadEngineState(t *testing.T) {
	var s RolloutStatus
	if _, ok, err := s.LoadEngineState(); ok || err != nil {
		t.Errorf("empty status: LoadEngineState = %v, %v; want false, nil", ok, err)
	}
	tests := []struct{ name, raw, want string }{
		{"not JSON", `{"phase":`, "decode status.engineState"},
		{"weights off", `{"service":"web","phase":"Stable","stable":"a","weights":{"a":90},"versions":{"a":[]},"nextRollout":1}`, "add up to 90"},
		{"unknown step kind", `{"service":"web","phase":"Progressing","stable":"a","rollout":{"id":1,"version":"b","from":"a","strategy":"canary","steps":[{"kind":"Teleport"}],"stepIndex":0,"startedAt":"2026-12-02T15:00:00Z","stepStartedAt":"2026-12-02T15:00:00Z","failedChecks":0,"threshold":1,"weight":0},"nextRollout":2}`, `kind "Teleport"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := RolloutStatus{EngineState: &runtime.RawExtension{Raw: []byte(tc.raw)}}
			if _, _, err := s.LoadEngineState(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadEngineState = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestScheme: AddToScheme registers Rollout and RolloutList under
// switchyard.dev/v1alpha1, and their DeepCopyObject copies deeply.
func TestScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{Kind, "RolloutList"} {
		obj, err := s.New(SchemeGroupVersion.WithKind(kind))
		if err != nil {
			t.Fatalf("scheme.New(%s) = %v", kind, err)
		}
		if _, ok := obj.(runtime.Object); !ok {
			t.Fatalf("%s is not a runtime.Object", kind)
		}
	}
	r := decodeValid(t, canaryRollout)
	c := r.DeepCopyObject().(*Rollout)
	c.Spec.Analysis.Metrics[0].Name = "changed"
	*c.Spec.Strategy.Canary.Steps[0].SetWeight = 99
	if r.Spec.Analysis.Metrics[0].Name != "error-rate" || *r.Spec.Strategy.Canary.Steps[0].SetWeight != 10 {
		t.Error("DeepCopyObject shares the spec's blocks with the original")
	}
}
