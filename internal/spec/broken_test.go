package spec

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// TestBrokenConfigs loads each file in testdata/broken and checks that the
// error names the right line, field path and value (and, for decode
// errors, the column).
func TestBrokenConfigs(t *testing.T) {
	tests := []struct {
		file  string
		line  int
		path  string
		value string // substring of FieldError.Value; "" to skip
		want  string // substring of the whole message
	}{
		{"unknown-key.yaml", 13, "spec.bogus", "", "unknown field"},
		{"misspelled-key.yaml", 12, "spec.stabel", "", `did you mean "stable"`},
		{"wrong-case.yaml", 16, "spec.strategy.canary.steps[0].SetWeight", "", `did you mean "setWeight"? (keys are case-sensitive)`},
		{"duplicate-key.yaml", 13, "", "", `mapping key "stable" already defined at [12:3]`},
		{"bad-duration.yaml", 13, "spec.progressDeadline", `"30 seconds"`, "must be a duration"},
		{"setweight-120.yaml", 18, "spec.strategy.canary.steps[2].setWeight", "120", "must be 0-100"},
		{"setweight-not-a-number.yaml", 16, "spec.strategy.canary.steps[0].setWeight", `"abc"`, "must be a whole number"},
		{"stable-not-a-version.yaml", 12, "spec.stable", `"purple"`, `must name one of spec.versions: "blue", "green"`},
		{"duplicate-version.yaml", 9, "spec.versions[1].name", `"blue"`, "must be unique"},
		{"bad-target.yaml", 10, "spec.versions[0].targets[1]", `"localhost"`, "must be host:port"},
		{"target-in-two-versions.yaml", 11, "spec.versions[1].targets[0]", `"127.0.0.1:9001"`, `already a target of version "blue" (spec.versions[0].targets[0], line 9)`},
		{"target-twice-in-version.yaml", 12, "spec.versions[0].targets[2]", `"127.0.0.1:9001"`, `is listed twice in version "blue" (first as spec.versions[0].targets[0], line 10); remove one`},
		{"bad-rule-to.yaml", 16, "spec.routing.rules[0].to", `"beta"`, `must be "canary" or "stable"`},
		{"both-strategies.yaml", 13, "spec.strategy", "", "only one of canary or blueGreen"},
		{"bad-preset.yaml", 15, "spec.strategy.canary.preset", `"canary 10 percent/5m"`, "Canary10Percent5Minutes"},
		{"bad-cidr.yaml", 16, "spec.routing.trustedSources[1]", `"10.0.0.0/33"`, "must be a CIDR"},
		{"min-over-max.yaml", 16, "spec.analysis.metrics[0].thresholdRange.min", "500", "must not be greater than max (100)"},
		{"unknown-metric.yaml", 15, "spec.analysis.metrics[0].name", `"error-rate"`, `must be "request-success-rate" or "request-duration"`},
		{"timeout-over-interval.yaml", 15, "spec.healthCheck.timeout", "2s", "must be less than interval (1s)"},
		{"maxweight-below-stepweight.yaml", 16, "spec.strategy.canary.maxWeight", "20", "must be at least stepWeight (30)"},
		{"same-listen.yaml", 17, "spec.listen", `"127.0.0.1:8080"`, `service "web"`},
		{"duplicate-service.yaml", 15, "metadata.name", `"web"`, "already defined at testdata/broken/duplicate-service.yaml:1"},
		{"no-listen.yaml", 5, "spec.listen", "", "is required with the built-in proxy"},
		{"second-document.yaml", 26, "spec.healthCheck.path", `"health"`, `service "api"`},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			file := filepath.Join("testdata", "broken", tt.file)
			svcs, err := LoadFiles(file)
			if err == nil {
				t.Fatalf("LoadFiles(%s) = %d services, want an error", tt.file, len(svcs))
			}
			if svcs != nil {
				t.Errorf("LoadFiles(%s) returned services along with an error", tt.file)
			}
			fes := FieldErrors(err)
			if len(fes) != 1 {
				t.Fatalf("LoadFiles(%s) returned %d field errors, want 1:\n%v", tt.file, len(fes), err)
			}
			fe := fes[0]
			msg := fe.Error()
			if fe.File != file || fe.Line != tt.line || fe.Path != tt.path {
				t.Errorf("error at %s:%d path %q, want %s:%d path %q\n%s", fe.File, fe.Line, fe.Path, file, tt.line, tt.path, msg)
			}
			if tt.value != "" && !strings.Contains(fe.Value, tt.value) {
				t.Errorf("error value %q, want it to contain %q\n%s", fe.Value, tt.value, msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want it to contain %q", msg, tt.want)
			}
			if wantPrefix := file + ":" + itoa(tt.line) + ":"; !strings.HasPrefix(msg, wantPrefix) {
				t.Errorf("error %q, want it to start with %q", msg, wantPrefix)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestLibraryStrictness checks that go-yaml itself, with the options Decode
// uses, rejects each kind of bad key, so the library is a second line of
// defence behind Decode's own walk (which reports them all at once, with
// suggestions).
func TestLibraryStrictness(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown key", "spec:\n  bogus: 1\n", `[2:3] unknown field "bogus"`},
		{"misspelled key", "spec:\n  stabel: a\n", `[2:3] unknown field "stabel"`},
		{"wrong case", "spec:\n  strategy:\n    canary:\n      steps:\n        - SetWeight: 5\n", `[5:11] unknown field "SetWeight"`},
		{"duplicate key", "spec:\n  stable: a\n  stable: b\n", `[3:3] mapping key "stable" already defined at [2:3]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Service
			err := yaml.UnmarshalWithOptions([]byte(tt.in), &s, yaml.Strict(), yaml.UseJSONUnmarshaler())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("yaml.Unmarshal error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	in := `apiVersion: v1
kind: Deployment
metadata:
  name: Web_1
spec:
  listen: nowhere
  versions:
    - name: blue
      targets: []
  stable: green
  healthCheck: {path: x, healthyThreshold: -1, expectedStatus: [700]}
  routing:
    rules:
      - to: everyone
    stickySessions: {cookie: "bad cookie"}
  strategy:
    canary:
      steps:
        - {}
        - {setWeight: 10, pause: {}}
      stepWeight: 120
  analysis:
    threshold: -1
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 101}
      - name: request-success-rate
        thresholdRange: {}
  proxy: {maxBodyBytes: -1, retries: -1}
  tls: {certFile: a.pem}
`
	_, err := Parse("all.yaml", []byte(in))
	wantPaths := []string{
		"apiVersion", "kind", "metadata.name", "spec.listen", "spec.tls.keyFile",
		"spec.versions[0].targets", "spec.stable", "spec.healthCheck.path",
		"spec.healthCheck.healthyThreshold", "spec.healthCheck.expectedStatus[0]",
		"spec.routing.rules[0]", "spec.routing.rules[0].to", "spec.routing.stickySessions.cookie",
		"spec.strategy.canary", "spec.strategy.canary.steps[0]", "spec.strategy.canary.steps[1]",
		"spec.strategy.canary.stepWeight", "spec.analysis.threshold",
		"spec.analysis.metrics[0].thresholdRange.min", "spec.analysis.metrics[1].name",
		"spec.analysis.metrics[1].thresholdRange", "spec.proxy.maxBodyBytes", "spec.proxy.retries",
	}
	got := map[string]*FieldError{}
	for _, fe := range FieldErrors(err) {
		got[fe.Path] = fe
		if fe.Line == 0 || fe.File != "all.yaml" || fe.Service != "Web_1" {
			t.Errorf("error without file, line or service: %v", fe)
		}
	}
	for _, p := range wantPaths {
		if got[p] == nil {
			t.Errorf("no error for %s", p)
		}
	}
	if len(got) != len(wantPaths) {
		t.Errorf("got %d errors, want %d:\n%v", len(got), len(wantPaths), err)
	}
	if fe := got["spec.strategy.canary.stepWeight"]; fe != nil && fe.Line != 21 {
		t.Errorf("stepWeight error on line %d, want 21", fe.Line)
	}
}

// TestDecodeAndValidateAtOnce has problems of both kinds: keys and values
// the decoder refuses, and values Validate refuses. One run reports all.
func TestDecodeAndValidateAtOnce(t *testing.T) {
	in := `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: 127.0.0.1:8080
  colour: blue
  versions:
    - name: blue
      targets: ["127.0.0.1:9001", "127.0.0.1:9001"]
    - name: Green
      targets: ["localhost"]
  stable: purple
  progressDeadline: 30 seconds
  healthCheck: {path: health, interval: 1s, timeout: 2s, healthyThreshold: many}
  strategy:
    canary:
      steps:
        - SetWeight: 10
        - setWeight: 120
        - pause: {duration: soon}
      preset: Canary10Percent
  analysis:
    threshold: -1
    metrics:
      - name: error-rate
`
	wantPaths := map[string]int{
		// the decoder's
		"spec.colour": 7, "spec.progressDeadline": 14, "spec.healthCheck.healthyThreshold": 15,
		"spec.strategy.canary.steps[0].SetWeight": 19, "spec.strategy.canary.steps[2].pause.duration": 21,
		// Validate's
		"spec.versions[0].targets[1]": 10, "spec.versions[1].name": 11, "spec.versions[1].targets[0]": 12,
		"spec.stable": 13, "spec.healthCheck.path": 15, "spec.healthCheck.timeout": 15,
		"spec.strategy.canary.steps[1].setWeight": 20, "spec.strategy.canary": 17,
		"spec.strategy.canary.preset": 22, "spec.analysis.threshold": 24,
		"spec.analysis.metrics[0].name": 26, "spec.analysis.metrics[0].thresholdRange": 26,
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "mixed.yaml")
	if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() ([]*Service, error){
		"Parse":     func() ([]*Service, error) { return Parse(file, []byte(in)) },
		"LoadFiles": func() ([]*Service, error) { return LoadFiles(file) },
	} {
		t.Run(name, func(t *testing.T) {
			svcs, err := load()
			if svcs != nil {
				t.Errorf("%s returned services along with an error", name)
			}
			got := map[string]*FieldError{}
			for _, fe := range FieldErrors(err) {
				if got[fe.Path] != nil {
					t.Errorf("%s reported %s twice:\n%v\n%v", name, fe.Path, got[fe.Path], fe)
				}
				got[fe.Path] = fe
			}
			for p, line := range wantPaths {
				switch fe := got[p]; {
				case fe == nil:
					t.Errorf("%s: no error for %s", name, p)
				case fe.Line != line:
					t.Errorf("%s: error for %s on line %d, want %d: %v", name, p, fe.Line, line, fe)
				}
			}
			if len(got) != len(wantPaths) {
				t.Errorf("%s: got %d errors, want %d:\n%v", name, len(got), len(wantPaths), err)
			}
		})
	}
}

func TestValidateWithoutFile(t *testing.T) {
	s := &Service{APIVersion: APIVersion, Kind: KindService, Metadata: Metadata{Name: "web"},
		Spec: ServiceSpec{Listen: "127.0.0.1:8080", Versions: []Version{{Name: "a", Targets: []string{"127.0.0.1:1"}}}, Stable: "b"}}
	s.Default()
	err := s.Validate()
	want := `service "web": spec.stable is "b"; must name one of spec.versions: "a"`
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want %q", err, want)
	}
}

func TestHostPort(t *testing.T) {
	tests := []struct {
		in     string
		listen bool
		ok     bool
	}{
		{"127.0.0.1:9001", false, true},
		{"[::1]:9001", false, true},
		{"app.internal:8080", false, true},
		{"localhost", false, false},
		{"localhost:0", false, false},
		{"localhost:65536", false, false},
		{":8080", false, false},
		{":8080", true, true},
		{"127.0.0.1:0", true, true},
		{"bad host:80", false, false},
		{"http://x:80", false, false},
	}
	for _, tt := range tests {
		if got := checkHostPort(tt.in, tt.listen) == ""; got != tt.ok {
			t.Errorf("checkHostPort(%q, listen=%v) ok = %v, want %v", tt.in, tt.listen, got, tt.ok)
		}
	}
}
