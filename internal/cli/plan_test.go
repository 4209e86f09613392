package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updatePlan = flag.Bool("update", false, "rewrite the golden outputs in testdata/plan")

const planHead = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: 127.0.0.1:8080
  versions:
    - {name: v1, targets: ["127.0.0.1:9001"]}
    - {name: v2, targets: ["127.0.0.1:9002"]}
  stable: v1
`

// planFiles are the service files of the plan tests, by name.
var planFiles = map[string]string{
	"sequential": planHead + `  strategy:
    canary:
      steps: [{setWeight: 5}, {pause: {duration: 30s}}, {setWeight: 10}, {pause: {duration: 30s}}, {setWeight: 20}, {pause: {duration: 30s}}, {setWeight: 50}, {pause: {duration: 30s}}]
  analysis: {judge: sequential}
`,
	"thresholds": planHead + `  strategy:
    canary: {stepWeight: 10, maxWeight: 50, interval: 1m}
  analysis:
    interval: 1m
    threshold: 5
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}}
      - {name: request-duration, thresholdRange: {max: 500}}
`,
	"blue-green": planHead + `  strategy:
    blueGreen: {previewDuration: 2m, autoPromote: false, bakeDuration: 10m}
  hooks:
    validateService: {command: ["sh", "-c", "exit 0"], timeout: 1m}
  analysis:
    judge: sequential
    sequential: {maxDuration: 20m}
`,
	"manual-pause": planHead + `  strategy:
    canary:
      steps: [{setWeight: 10}, {pause: {}}, {setWeight: 50}, {pause: {duration: 1m}}]
`,
	"prometheus": planHead + `  strategy:
    canary:
      steps: [{setWeight: 10}, {pause: {duration: 1m}}]
  analysis:
    metrics:
      - name: error-budget
        thresholdRange: {max: 1}
        prometheus: {address: "http://127.0.0.1:9090", query: "sum(rate(errors[1m]))"}
`,
}

func writePlanFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(p, []byte(planFiles[name]), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlanGolden: plan's text output for each kind of analysis, compared
// with testdata/plan (rewrite with go test ./internal/cli -run TestPlan -update).
func TestPlanGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"sequential", []string{"--runs", "20"}},
		{"thresholds", []string{"--runs", "20", "--rate", "20"}},
		{"blue-green", []string{"--runs", "20", "--rate", "50", "--error-rate", "0.2"}},
		{"manual-pause", nil},
		{"prometheus", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := writePlanFile(t, c.name)
			code, out, errOut := run(t, append([]string{"plan", "-f", file, "--version", "v2"}, c.args...)...)
			if code != ExitOK {
				t.Fatalf("plan exit %d:\n%s%s", code, out, errOut)
			}
			golden := filepath.Join("testdata", "plan", c.name+".txt")
			if *updatePlan {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v; generate it with go test ./internal/cli -run TestPlan -update", err)
			}
			if out != string(want) {
				t.Errorf("plan output differs from %s (go test ./internal/cli -run TestPlan -update):\n%s", golden, out)
			}
		})
	}
}

// TestPlanJSON: -o json holds the timeline and every case's numbers.
func TestPlanJSON(t *testing.T) {
	code, out, errOut := run(t, "plan", "-f", writePlanFile(t, "sequential"), "--version", "v2", "--runs", "10", "-o", "json")
	if code != ExitOK {
		t.Fatalf("plan exit %d: %s", code, errOut)
	}
	var p planOutput
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	if !p.Simulated || len(p.Cases) != 4 || len(p.Timeline) != 6 || p.Runs != 10 {
		t.Fatalf("plan -o json: simulated %v, %d cases, %d steps, %d runs; want true, 4, 6, 10", p.Simulated, len(p.Cases), len(p.Timeline), p.Runs)
	}
	bad := p.Cases[0].Summary
	if bad.Rollbacks != bad.Runs || bad.Time.Median <= 0 || bad.Time.Median > 60 {
		t.Errorf("bad case: %+v; want every run rolled back within a minute", bad)
	}
}

// TestPlanRefuses: bad input is refused with exit 2 and a message that
// names the problem; an invalid file gives validate's errors.
func TestPlanRefuses(t *testing.T) {
	good := writePlanFile(t, "sequential")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(planFiles["sequential"], "setWeight: 5}", "setWeight: 500}", 1)), 0o600)
	_, _, validateErr := run(t, "validate", "-f", bad)
	two := filepath.Join(t.TempDir(), "two.yaml")
	os.WriteFile(two, []byte(planFiles["sequential"]+"---\n"+strings.NewReplacer("{name: web}", "{name: api}", "127.0.0.1:8080", "127.0.0.1:8081").Replace(planFiles["thresholds"])), 0o600)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid file", []string{"-f", bad, "--version", "v2"}, validateErr},
		{"no file", []string{"--version", "v2"}, "no service file"},
		{"no version", []string{"-f", good}, "--version is required"},
		{"stable version", []string{"-f", good, "--version", "v1"}, "is the stable version"},
		{"rate", []string{"-f", good, "--version", "v2", "--rate", "0"}, "--rate 0 is out of range"},
		{"strategy", []string{"-f", good, "--version", "v2", "--strategy", "linear"}, `--strategy "linear" is not a strategy`},
		{"two services", []string{"-f", two, "--version", "v2"}, "pick one with --service"},
		{"unknown service", []string{"-f", two, "--version", "v2", "--service", "db"}, `--service "db" is not in the files`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, append([]string{"plan"}, c.args...)...)
			if code != ExitUsage || !strings.Contains(errOut, c.want) || c.want == "" {
				t.Errorf("plan %v: exit %d, stderr %q, stdout %q; want exit %d and %q", c.args, code, errOut, out, ExitUsage, c.want)
			}
		})
	}
}

// TestPlanPicksService: --service picks one of several services.
func TestPlanPicksService(t *testing.T) {
	two := filepath.Join(t.TempDir(), "two.yaml")
	os.WriteFile(two, []byte(planFiles["sequential"]+"---\n"+strings.NewReplacer("{name: web}", "{name: api}", "127.0.0.1:8080", "127.0.0.1:8081").Replace(planFiles["thresholds"])), 0o600)
	code, out, errOut := run(t, "plan", "-f", two, "--version", "v2", "--service", "api", "--runs", "5")
	if code != ExitOK || !strings.HasPrefix(out, "api: canary rollout of v2 (from v1)\nanalysis: threshold checks") {
		t.Errorf("plan --service api: exit %d\n%s%s", code, out, errOut)
	}
}
