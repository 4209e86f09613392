package v1alpha1

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// canaryRollout is a valid Rollout that the bad cases change one line of.
const canaryRollout = `apiVersion: switchyard.dev/v1alpha1
kind: Rollout
metadata:
  name: web
  namespace: shop
spec:
  replicas: 3
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example/web:1.4.0
  service: {name: web, port: 80}
  trafficRouter:
    istio:
      virtualService: {name: web, routes: [primary]}
      destinationRule: {name: web}
  routing:
    rules:
    - header: {name: x-canary, value: "true"}
      to: canary
  strategy:
    canary:
      steps:
      - setWeight: 10
      - pause: {duration: 5m}
      - setWeight: 50
      - pause: {}
  analysis:
    interval: 1m
    threshold: 2
    metrics:
    - name: error-rate
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum(rate(http_requests_total{code=~"5..",version="{{ version }}"}[{{ interval }}]))
      thresholdRange: {max: 0.01}
  progressDeadline: 15m
`

func decodeValid(t *testing.T, doc string) *Rollout {
	t.Helper()
	r, err := Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("Validate = %v, want nil", err)
	}
	return r
}

// TestServiceFromRollout: the spec.Service the engine compiles has the
// Rollout's name and blocks, the controller's revisions, the spec's
// defaults, and leaves the Rollout as it was.
func TestServiceFromRollout(t *testing.T) {
	r := decodeValid(t, canaryRollout)
	before := r.DeepCopy()
	revs := Revisions{Stable: "6d4f9c7b8", Versions: []spec.Version{
		{Name: "6d4f9c7b8", Targets: []string{"10.0.0.5:8080", "10.0.0.6:8080"}},
		{Name: "7b5c8d9f1"}, // no ready pod yet
	}}
	svc, err := r.Service(revs)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Metadata.Name != "web" || svc.Spec.Stable != "6d4f9c7b8" || len(svc.Spec.Versions) != 2 || !svc.Cluster {
		t.Errorf("service = %+v", svc)
	}
	if got := svc.Spec.ProgressDeadline.Duration; got != 15*time.Minute {
		t.Errorf("progressDeadline = %v, want 15m", got)
	}
	if a := svc.Spec.Analysis; a.ConsecutiveErrorLimit != spec.DefaultConsecutiveErrorLimit || a.Judge != spec.JudgeThresholds || a.Metrics[0].Provider != spec.ProviderPrometheus {
		t.Errorf("analysis not defaulted by spec.Default: %+v", a)
	}
	if steps, err := svc.Spec.Strategy.Canary.ExpandSteps(); err != nil || len(steps) != 4 {
		t.Errorf("ExpandSteps = %v, %v", steps, err)
	}
	// The engine compiles it: the canary's steps, as a service file's.
	m, err := rollout.New(svc)
	if err != nil {
		t.Fatalf("rollout.New = %v", err)
	}
	steps, err := m.Steps(rollout.StrategyCanary)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for _, st := range steps {
		plan = append(plan, rollout.StepDescription(st))
	}
	if got, want := strings.Join(plan, ", "), "health gate, setWeight 10, pause 5m0s, setWeight 50, pause (wait for promote), switch"; got != want {
		t.Errorf("compiled plan = %s, want %s", got, want)
	}
	if r.Spec.Analysis.ConsecutiveErrorLimit != 0 || !equalRollouts(r, before) {
		t.Error("Service changed the Rollout")
	}
	// No strategy: blue-green with autoPromote, as in a service file.
	bg := decodeValid(t, strings.Replace(blueGreenRollout, "  strategy:\n    blueGreen:\n      autoPromote: false\n", "", 1))
	svc, err = bg.Service(Revisions{})
	if err != nil {
		t.Fatal(err)
	}
	if b := svc.Spec.Strategy.BlueGreen; b == nil || !*b.AutoPromote || b.ScaleDownDelay.Duration != spec.DefaultScaleDownDelay {
		t.Errorf("default strategy = %+v", svc.Spec.Strategy)
	}
}

func equalRollouts(a, b *Rollout) bool {
	ja, _ := jsonOf(a)
	jb, _ := jsonOf(b)
	return ja == jb
}

const blueGreenRollout = `apiVersion: switchyard.dev/v1alpha1
kind: Rollout
metadata: {name: api}
spec:
  workloadRef: {name: api}
  service: {name: api}
  trafficRouter:
    service: {previewService: api-preview}
  strategy:
    blueGreen:
      autoPromote: false
`

// TestRolloutErrors: a Rollout with bad input gets the service file's
// errors (field, value, fix) at the Rollout's field paths, every problem
// at once; the Rollout's own fields are checked the same way.
func TestRolloutErrors(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string // a line of canaryRollout and what replaces it
		doc       string // or a whole document
		want      []string
		decodeErr bool
	}{
		{name: "analysis interval below range", old: "    interval: 1m\n", new: "    interval: 1ns\n",
			want: []string{`rollout "shop/web": spec.analysis.interval is 1ns; must be 100ms to 24h`}},
		{name: "threshold out of range", old: "    threshold: 2\n", new: "    threshold: 5000\n",
			want: []string{"spec.analysis.threshold is 5000; must be 1-1000"}},
		{name: "setWeight 120", old: "      - setWeight: 50\n", new: "      - setWeight: 120\n",
			want: []string{"spec.strategy.canary.steps[2].setWeight is 120; must be 0-100"}},
		{name: "pause of a year", old: "      - pause: {duration: 5m}\n", new: "      - pause: {duration: 8760h}\n",
			want: []string{"spec.strategy.canary.steps[1].pause.duration is 8760h0m0s; must be 0s to 720h"}},
		{name: "progress deadline", old: "  progressDeadline: 15m\n", new: "  progressDeadline: 1000h\n",
			want: []string{"spec.progressDeadline is 1000h0m0s; must be 1s to 720h"}},
		{name: "unknown judge", old: "    threshold: 2\n", new: "    threshold: 2\n    judge: bayes\n",
			want: []string{`spec.analysis.judge is "bayes"; must be "thresholds"`}},
		{name: "sequential judge without its counters", old: "    threshold: 2\n", new: "    threshold: 2\n    judge: sequential\n",
			want: []string{"spec.analysis.sequential.prometheus: is required on a cluster"}},
		{name: "sequential judge, counters half said", old: "    threshold: 2\n",
			new:  "    threshold: 2\n    judge: sequential\n    sequential:\n      prometheus:\n        address: http://prometheus:9090\n        requests: istio_requests_total{destination_version=\"{{ version }}\"}\n",
			want: []string{"spec.analysis.sequential.prometheus.errors: is required", "spec.analysis.sequential.prometheus.durationBuckets: is required"}},
		{name: "rule to nowhere", old: "      to: canary\n", new: "      to: blue\n",
			want: []string{`spec.routing.rules[0].to is "blue"; must be "canary" or "stable"`}},
		{name: "bad query placeholder", old: `[{{ interval }}]`, new: `[{{ window }}]`,
			want: []string{"spec.analysis.metrics[0].prometheus.query", "unknown placeholder {{ window }}"}},
		{name: "two strategies", old: "  strategy:\n", new: "  strategy:\n    blueGreen: {}\n",
			want: []string{"spec.strategy: must set only one of canary or blueGreen"}},
		{name: "every problem at once", old: "    threshold: 2\n", new: "    threshold: 0\n    consecutiveErrorLimit: 2000\n    judge: bayes\n",
			want: []string{"spec.analysis.consecutiveErrorLimit is 2000", `spec.analysis.judge is "bayes"`}},
		{name: "no workload", old: "  replicas: 3\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.4.0\n", new: "",
			want: []string{"spec: needs exactly one of template (a pod template) or workloadRef (an existing Deployment)"}},
		{name: "template and workloadRef", old: "  service: {name: web, port: 80}\n", new: "  workloadRef: {name: web}\n  service: {name: web, port: 80}\n",
			want: []string{"spec.workloadRef: must not be set together with template"}},
		{name: "workloadRef scaleDown", old: "  replicas: 3\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.example/web:1.4.0\n",
			new:  "  workloadRef: {name: web, scaleDown: progressively}\n",
			want: []string{`spec.workloadRef.scaleDown is "progressively"; must be "never" (the default`}},
		{name: "replicas out of range", old: "  replicas: 3\n", new: "  replicas: 0\n",
			want: []string{"spec.replicas is 0; must be 1-10000"}},
		{name: "service name", old: "  service: {name: web, port: 80}\n", new: "  service: {name: Web_1, port: 80}\n",
			want: []string{`spec.service.name is "Web_1"; must be a DNS-1123 label`}},
		{name: "service port", old: "  service: {name: web, port: 80}\n", new: "  service: {name: web, port: 70000}\n",
			want: []string{"spec.service.port is 70000; must be 1-65535"}},
		{name: "two routers", old: "  trafficRouter:\n", new: "  trafficRouter:\n    gatewayAPI: {httpRoute: web}\n",
			want: []string{"spec.trafficRouter: must set only one router; found gatewayAPI and istio"}},
		{name: "no router", old: "    istio:\n      virtualService: {name: web, routes: [primary]}\n      destinationRule: {name: web}\n", new: "    {}\n",
			want: []string{"spec.trafficRouter: must set one router"}},
		{name: "canary by selector", old: "    istio:\n      virtualService: {name: web, routes: [primary]}\n      destinationRule: {name: web}\n", new: "    service: {}\n",
			want: []string{"spec.strategy.canary: needs weights", "spec.routing.rules[0]: needs trafficRouter gatewayAPI or istio"}},
		{name: "cookie rule with an HTTPRoute", old: "    istio:\n      virtualService: {name: web, routes: [primary]}\n      destinationRule: {name: web}\n", new: "    gatewayAPI: {httpRoute: web}\n",
			doc: "", want: []string{"spec.routing.rules[0].cookie: cannot be matched by an HTTPRoute"}},
		{name: "duplicate route", old: "routes: [primary]", new: "routes: [primary, primary]",
			want: []string{`spec.trafficRouter.istio.virtualService.routes[1] is "primary"; must be unique`}},
		{name: "sticky sessions", old: "  routing:\n", new: "  routing:\n    stickySessions: {cookie: v}\n",
			want: []string{"spec.routing.stickySessions: is kept by the built-in proxy only"}},
		{name: "rollout name", old: "  name: web\n", new: "  name: web.v1\n",
			want: []string{`metadata.name is "web.v1"; must be a DNS-1123 label`}},
		{name: "unknown field", old: "    threshold: 2\n", new: "    treshold: 2\n", decodeErr: true,
			want: []string{`unknown field "spec.analysis.treshold"`}},
		{name: "unknown field in the pod template", old: "        image: registry.example/web:1.4.0\n", new: "        image: registry.example/web:1.4.0\n        imagePolicy: Always\n", decodeErr: true,
			want: []string{`unknown field "spec.template.spec.containers[0].imagePolicy"`}},
		{name: "miscased field", old: "      - setWeight: 10\n", new: "      - SetWeight: 10\n", decodeErr: true,
			want: []string{`unknown field "spec.strategy.canary.steps[0].SetWeight"`}},
		{name: "duplicate field", old: "    threshold: 2\n", new: "    threshold: 2\n    threshold: 3\n", decodeErr: true,
			want: []string{`"threshold" already set`}},
		{name: "duration without unit", old: "    interval: 1m\n", new: "    interval: 60\n", decodeErr: true,
			want: []string{`duration must be a string like "30s"`}},
		{name: "another kind", old: "kind: Rollout\n", new: "kind: Service\n", decodeErr: true,
			want: []string{"not a switchyard.dev/v1alpha1 Rollout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := canaryRollout
			if tc.name == "cookie rule with an HTTPRoute" {
				doc = strings.Replace(doc, "    - header: {name: x-canary, value: \"true\"}\n", "    - cookie: {name: canary, value: always}\n", 1)
			}
			if !strings.Contains(doc, tc.old) {
				t.Fatalf("canaryRollout has no %q", tc.old)
			}
			doc = strings.Replace(doc, tc.old, tc.new, 1)
			r, err := Decode([]byte(doc))
			if tc.decodeErr {
				for _, w := range tc.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("Decode = %v, want an error containing %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = r.Validate()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v\nwant an error containing %q", err, w)
				}
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || len(spec.FieldErrors(err)) == 0 {
				t.Errorf("Validate = %T, want an *InvalidError of *spec.FieldErrors", err)
			}
			for _, fe := range spec.FieldErrors(err) {
				if fe.Path == "" || fe.Want == "" || fe.Service != "" || fe.File != "" {
					t.Errorf("field error %+v: want a path and a fix, and no service or file", *fe)
				}
			}
		})
	}
}

// TestClusterFieldsNotReported: what the cluster provides (versions,
// stable, listen, the service file's trafficRouter) is not the Rollout
// author's to get wrong, so Validate of a Rollout without revisions passes.
func TestClusterFieldsNotReported(t *testing.T) {
	r := decodeValid(t, canaryRollout)
	if _, err := r.Service(Revisions{}); err != nil {
		t.Fatalf("Service without revisions = %v", err)
	}
	svc, err := r.Service(Revisions{Stable: "a1", Versions: []spec.Version{{Name: "a1"}}})
	if err != nil {
		t.Fatal(err)
	}
	svc.Cluster = false
	if err := svc.Validate(); err == nil || !strings.Contains(err.Error(), "spec.trafficRouter") {
		t.Errorf("the same service outside a cluster: Validate = %v, want spec.trafficRouter reported", err)
	}
}

// TestDocExamples: every Rollout in docs/kubernetes.md decodes and
// validates, and every error shown there is what Validate says.
func TestDocExamples(t *testing.T) {
	data, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|text)\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	var rollouts int
	for i, b := range blocks {
		if b[1] != "yaml" || !strings.Contains(b[2], "kind: Rollout") {
			continue
		}
		rollouts++
		r, err := Decode([]byte(b[2]))
		if err != nil {
			t.Errorf("example %d: %v", rollouts, err)
			continue
		}
		err = r.Validate()
		// An example followed by a text block is a mistake and its errors.
		if i+1 < len(blocks) && blocks[i+1][1] == "text" {
			if got, want := errString(err), strings.TrimSpace(blocks[i+1][2]); got != want {
				t.Errorf("example %d (%s): Validate says\n%s\nthe guide says\n%s", rollouts, r.Name, got, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("example %d (%s): %v", rollouts, r.Name, err)
		}
	}
	if rollouts < 4 {
		t.Errorf("found %d Rollout examples in docs/kubernetes.md, want at least 4", rollouts)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestBlocksAtServiceFilePaths: every block the Rollout shares with the
// service file has the same Go type and the same JSON name in both, so
// spec's field paths (spec.analysis.interval) are the Rollout's too and
// a range tag on it is the same one.
func TestBlocksAtServiceFilePaths(t *testing.T) {
	sf := map[string]reflect.StructField{}
	st := reflect.TypeFor[spec.ServiceSpec]()
	for i := range st.NumField() {
		sf[st.Field(i).Name] = st.Field(i)
	}
	shared := 0
	rt := reflect.TypeFor[RolloutSpec]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		s, ok := sf[f.Name]
		if !ok || f.Name == "TrafficRouter" { // the Rollout's routers are Kubernetes objects
			continue
		}
		shared++
		if f.Type != s.Type || f.Tag.Get("json") != s.Tag.Get("json") || f.Tag.Get("range") != s.Tag.Get("range") {
			t.Errorf("RolloutSpec.%s is %v `%s`; the service file's is %v `%s`", f.Name, f.Type, f.Tag, s.Type, s.Tag)
		}
	}
	if shared != 7 {
		t.Errorf("RolloutSpec shares %d fields with spec.ServiceSpec, want 7 (strategy, analysis, hooks, webhooks, routing, notifications, progressDeadline)", shared)
	}
}

func jsonOf(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
