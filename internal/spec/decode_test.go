package spec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExampleValidates(t *testing.T) {
	svcs, err := LoadFiles("testdata/web.yaml")
	if err != nil {
		t.Fatalf("LoadFiles(testdata/web.yaml) error:\n%v", err)
	}
	if len(svcs) != 1 {
		t.Fatalf("LoadFiles returned %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if s.Metadata.Name != "web" || s.File != "testdata/web.yaml" || s.Line != 1 {
		t.Errorf("service name/file/line = %q/%q/%d, want web/testdata/web.yaml/1", s.Metadata.Name, s.File, s.Line)
	}
	steps := s.Spec.Strategy.Canary.Steps
	if len(steps) != 6 {
		t.Fatalf("got %d steps, want 6", len(steps))
	}
	if steps[3].Pause == nil {
		t.Fatal("steps[3] `pause: {}` decoded to a nil Pause, want a zero-duration pause")
	}
	if steps[3].Pause.Duration.Duration != 0 || steps[3].SetWeight != nil {
		t.Errorf("steps[3] = %+v, want a pause of 0", steps[3])
	}
	if got := stepsString(steps); got != "5 p30s 25 p0s 50 p30s" {
		t.Errorf("steps = %q, want %q", got, "5 p30s 25 p0s 50 p30s")
	}
	if s.Spec.Strategy.BlueGreen != nil {
		t.Error("a canary service got a blueGreen strategy by default")
	}
	if got := *s.Spec.Analysis.Metrics[0].ThresholdRange.Min; got != 99 {
		t.Errorf("metrics[0].thresholdRange.min = %v, want 99", got)
	}
	if s.Spec.Routing.Rules[0].Header.Value != "true" {
		t.Errorf("rule header value = %q, want \"true\"", s.Spec.Routing.Rules[0].Header.Value)
	}
	if got := s.Spec.Routing.StickySessions.TTL.Duration; got != DefaultStickyTTL {
		t.Errorf("stickySessions.ttl = %v, want default %v", got, DefaultStickyTTL)
	}
}

func TestDefault(t *testing.T) {
	s := &Service{Spec: ServiceSpec{
		Strategy: Strategy{Canary: &Canary{StepWeight: 10}},
		Analysis: &Analysis{},
		Routing:  Routing{StickySessions: &StickySessions{Cookie: "v"}},
	}}
	s.Default()
	sp := s.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"healthCheck.path", sp.HealthCheck.Path, DefaultHealthPath},
		{"healthCheck.interval", sp.HealthCheck.Interval.Duration, 2 * time.Second},
		{"healthCheck.timeout", sp.HealthCheck.Timeout.Duration, time.Second},
		{"healthCheck.healthyThreshold", sp.HealthCheck.HealthyThreshold, 2},
		{"healthCheck.unhealthyThreshold", sp.HealthCheck.UnhealthyThreshold, 2},
		{"passive.consecutiveFailures", sp.HealthCheck.Passive.ConsecutiveFailures, 5},
		{"passive.backoff", sp.HealthCheck.Passive.Backoff.Duration, 30 * time.Second},
		{"progressDeadline", sp.ProgressDeadline.Duration, 10 * time.Minute},
		{"analysis.interval", sp.Analysis.Interval.Duration, time.Minute},
		{"analysis.threshold", sp.Analysis.Threshold, 5},
		{"canary.maxWeight", sp.Strategy.Canary.MaxWeight, 50},
		{"canary.interval", sp.Strategy.Canary.Interval.Duration, time.Minute},
		{"blueGreen", sp.Strategy.BlueGreen, (*BlueGreen)(nil)},
		{"stickySessions.ttl", sp.Routing.StickySessions.TTL.Duration, 24 * time.Hour},
		{"proxy.drainTimeout", sp.Proxy.DrainTimeout.Duration, 30 * time.Second},
		{"proxy.readHeaderTimeout", sp.Proxy.ReadHeaderTimeout.Duration, 10 * time.Second},
		{"proxy.idleTimeout", sp.Proxy.IdleTimeout.Duration, 90 * time.Second},
		{"proxy.readTimeout", sp.Proxy.ReadTimeout.Duration, 60 * time.Second},
		{"proxy.upstreamTimeout", sp.Proxy.UpstreamTimeout.Duration, time.Duration(0)},
		{"proxy.maxHeaderBytes", sp.Proxy.MaxHeaderBytes, 65536},
		{"proxy.maxBodyBytes", sp.Proxy.MaxBodyBytes, int64(0)},
		{"proxy.retries", *sp.Proxy.Retries, 2},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("default %s = %v, want %v", c.name, c.got, c.want)
		}
	}

	t.Run("no strategy means blue-green with autoPromote", func(t *testing.T) {
		s := &Service{}
		s.Default()
		bg := s.Spec.Strategy.BlueGreen
		if bg == nil || bg.AutoPromote == nil || !*bg.AutoPromote || bg.ScaleDownDelay.Duration != 10*time.Minute {
			t.Fatalf("default strategy = %+v, want blueGreen autoPromote true scaleDownDelay 10m", bg)
		}
	})
	t.Run("set values are kept", func(t *testing.T) {
		no, zero := false, 0
		s := &Service{Spec: ServiceSpec{
			HealthCheck: HealthCheck{Path: "/h", Interval: D(5 * time.Second)},
			Strategy:    Strategy{BlueGreen: &BlueGreen{AutoPromote: &no}},
			Proxy:       ProxyOptions{Retries: &zero},
		}}
		s.Default()
		if s.Spec.HealthCheck.Path != "/h" || s.Spec.HealthCheck.Interval.Duration != 5*time.Second ||
			*s.Spec.Strategy.BlueGreen.AutoPromote || *s.Spec.Proxy.Retries != 0 {
			t.Fatalf("Default overrode set values: %+v", s.Spec)
		}
	})
	t.Run("idempotent", func(t *testing.T) {
		a := &Service{}
		a.Default()
		b := &Service{}
		b.Default()
		b.Default()
		if !reflect.DeepEqual(a, b) {
			t.Fatal("Default twice differs from Default once")
		}
	})
}

func TestRoundTripJSON(t *testing.T) {
	for _, file := range []string{"testdata/web.yaml", "testdata/full.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			svcs, err := LoadFiles(file)
			if err != nil {
				t.Fatal(err)
			}
			orig := svcs[0]
			b, err := json.Marshal(orig)
			if err != nil {
				t.Fatal(err)
			}
			var back Service
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			// File, Line and positions are not part of the schema.
			want := *orig
			want.File, want.Line, want.positions = "", 0, nil
			if !reflect.DeepEqual(&back, &want) {
				t.Errorf("JSON round trip differs:\n got %+v\nwant %+v\njson %s", back.Spec, want.Spec, b)
			}
			// And the JSON decodes through the strict YAML decoder too
			// (JSON is YAML), as the admin API does.
			again, err := Parse("api", b)
			if err != nil {
				t.Fatalf("Parse(JSON) error: %v", err)
			}
			again[0].File, again[0].Line, again[0].positions = "", 0, nil
			if !reflect.DeepEqual(again[0], &want) {
				t.Errorf("Parse(JSON) differs:\n got %+v\nwant %+v", again[0].Spec, want.Spec)
			}
		})
	}
}

func TestDecodeMultiDocument(t *testing.T) {
	data, err := os.ReadFile("testdata/multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Parse("multi.yaml", data)
	if err != nil {
		t.Fatalf("Parse(multi.yaml) error:\n%v", err)
	}
	var got []string
	for _, s := range svcs {
		got = append(got, s.Metadata.Name+"@"+strconv.Itoa(s.Line))
	}
	if want := "api@3 web@20"; strings.Join(got, " ") != want {
		t.Errorf("services = %q, want %q", strings.Join(got, " "), want)
	}
}

// TestDecodeKeepsDocumentsAfterEmptyOne guards the workaround for
// goccy/go-yaml#765/#870: an empty or comment-only document used to make the
// parser drop every document after it, silently.
func TestDecodeKeepsDocumentsAfterEmptyOne(t *testing.T) {
	doc := func(name string) string {
		return "apiVersion: switchyard.dev/v1alpha1\nkind: Service\nmetadata:\n  name: " + name + "\nspec: {}\n"
	}
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty document", doc("a") + "---\n---\n" + doc("b"), "a b"},
		{"comment-only document", doc("a") + "---\n# nothing\n---\n" + doc("b") + "---\n" + doc("c"), "a b c"},
		{"leading and trailing markers", "---\n" + doc("a") + "---\n", "a"},
		{"marker with comment", doc("a") + "--- # second\n" + doc("b"), "a b"},
		{"document end marker", doc("a") + "...\n---\n" + doc("b"), "a b"},
		{"CRLF", strings.ReplaceAll(doc("a")+"---\r\n---\r\n"+doc("b"), "\n", "\r\n"), "a b"},
		{"dashes inside a block scalar are not a marker", "apiVersion: x\nkind: Service\nmetadata:\n  name: a\n  labels:\n    note: |\n      ---\n      text\nspec: {}\n", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svcs, err := Decode("f.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Decode error: %v", err)
			}
			var names []string
			for _, s := range svcs {
				names = append(names, s.Metadata.Name)
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Errorf("Decode found services %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeNonMappingDocument(t *testing.T) {
	_, err := Decode("x.yaml", []byte("- a\n- b\n"))
	fes := FieldErrors(err)
	if len(fes) != 1 || fes[0].Line != 1 || fes[0].Path != "(document)" {
		t.Fatalf("Decode(list) error = %v, want one (document) error on line 1", err)
	}
}

func TestSameSpec(t *testing.T) {
	a, err := LoadFiles("testdata/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile("testdata/web.yaml")
	b, err := Parse("other.yaml", append([]byte("# moved down a line\n"), data...))
	if err != nil {
		t.Fatal(err)
	}
	if !a[0].SameSpec(b[0]) {
		t.Error("SameSpec = false for the same spec read from a shifted file, want true")
	}
	b[0].Spec.Stable = "green"
	if a[0].SameSpec(b[0]) {
		t.Error("SameSpec = true after changing stable, want false")
	}
}
