package v1alpha1

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

func loadSchema(t *testing.T) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	data, err := os.ReadFile("../../deploy/crds/switchyard.dev_rollouts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatal(err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != Version {
		t.Fatalf("CRD versions = %+v, want %s only", crd.Spec.Versions, Version)
	}
	if crd.Spec.Group != Group || crd.Spec.Names.Kind != Kind || crd.Spec.Names.Plural != Resource || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Fatalf("CRD names = %s %+v %s", crd.Spec.Group, crd.Spec.Names, crd.Spec.Scope)
	}
	return *crd.Spec.Versions[0].Schema.OpenAPIV3Schema
}

var durationType = reflect.TypeFor[spec.Duration]()

// TestSchemaMatchesRanges walks the Go types of the Rollout's spec beside
// the generated CRD schema: every number with a range tag has the tag's
// minimum and maximum in the schema, every number without one has neither,
// and every duration is a string with the duration pattern (its range is
// checked by Rollout.Validate, through internal/spec, since OpenAPI has no
// bound for a duration string). So a range tag and its marker cannot drift.
func TestSchemaMatchesRanges(t *testing.T) {
	root := loadSchema(t)
	var ranged, durations int
	var walk func(path string, typ reflect.Type, s apiextensionsv1.JSONSchemaProps)
	walk = func(path string, typ reflect.Type, s apiextensionsv1.JSONSchemaProps) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch {
		case typ == durationType:
			durations++
			if s.Type != "string" || s.Pattern != durationPattern(t) {
				t.Errorf("%s: schema type %q pattern %q, want a string with Duration's pattern", path, s.Type, s.Pattern)
			}
			return
		case typ.Kind() == reflect.Slice:
			if s.Items == nil || s.Items.Schema == nil {
				t.Errorf("%s: schema has no items", path)
				return
			}
			walk(path+"[]", typ.Elem(), *s.Items.Schema)
			return
		case typ.Kind() == reflect.Map:
			if s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
				t.Errorf("%s: schema has no additionalProperties", path)
				return
			}
			walk(path+"{}", typ.Elem(), *s.AdditionalProperties.Schema)
			return
		case typ.Kind() != reflect.Struct:
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			fp := path + "." + name
			fs, ok := s.Properties[name]
			if !ok {
				t.Errorf("%s: not in the CRD schema", fp)
				continue
			}
			if f.Type == reflect.TypeFor[*corev1.PodTemplateSpec]() {
				continue // schemaless, see RolloutSpec.Template
			}
			r, hasRange := spec.FieldRange(f)
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			numeric := ft.Kind() >= reflect.Int && ft.Kind() <= reflect.Float64
			switch {
			case hasRange && r.Duration:
				// walked below, as a Duration
			case hasRange && numeric:
				ranged++
				if fs.Minimum == nil || fs.Maximum == nil || *fs.Minimum != r.Min || *fs.Maximum != r.Max {
					t.Errorf("%s: schema minimum %v maximum %v, want %v and %v from its range tag %q", fp, ptr(fs.Minimum), ptr(fs.Maximum), r.Min, r.Max, f.Tag.Get("range"))
				}
			case numeric && (fs.Minimum != nil || fs.Maximum != nil):
				t.Errorf("%s: schema has minimum %v maximum %v but the field has no range tag", fp, ptr(fs.Minimum), ptr(fs.Maximum))
			}
			walk(fp, f.Type, fs)
		}
	}
	walk("spec", reflect.TypeFor[RolloutSpec](), root.Properties["spec"])
	// The spec's blocks hold 16 ranged numbers and 20 durations today; a
	// walk that finds far fewer has lost its way.
	if ranged < 16 || durations < 20 {
		t.Errorf("walked %d ranged numbers and %d durations, want at least 16 and 20", ranged, durations)
	}
}

func ptr(f *float64) any {
	if f == nil {
		return "unset"
	}
	return *f
}

// durationPattern is the pattern on spec.Duration, read from the schema
// of a field known to be one.
func durationPattern(t *testing.T) string {
	t.Helper()
	return loadSchema(t).Properties["spec"].Properties["progressDeadline"].Pattern
}

// TestDurationPattern: the CRD's duration pattern accepts what
// time.ParseDuration accepts for durations that are not negative (every
// duration range starts at 0 or above) and refuses the rest, so the API
// server refuses what the service file's decoder would.
func TestDurationPattern(t *testing.T) {
	re := regexp.MustCompile(durationPattern(t))
	for _, s := range []string{"", "0", "0s", "30s", "1m", "2h45m", "1.5h", "500ms", "10us", "10µs", "10μs", "1ns", "1m0s", ".5s", "5.s", "1h2m3s4ms"} {
		if !re.MatchString(s) {
			t.Errorf("pattern refuses %q", s)
		}
		if s != "" {
			if _, err := time.ParseDuration(s); err != nil {
				t.Errorf("test case %q does not parse: %v", s, err)
			}
		}
	}
	for _, s := range []string{"30", "-1s", "+1s", "1d", "1 m", "m", "s", "1.2.3s", "01:00", "1h-2m", "1e3s"} {
		if re.MatchString(s) {
			t.Errorf("pattern accepts %q", s)
		}
	}
}

// TestSchemaEnums: the fixed sets of names in the schema are the spec's
// and the engine's.
func TestSchemaEnums(t *testing.T) {
	root := loadSchema(t)
	tests := []struct {
		path []string // property names; "[]" steps into items
		want []string
	}{
		{[]string{"spec", "analysis", "judge"}, []string{spec.JudgeThresholds, spec.JudgeSequential}},
		{[]string{"spec", "analysis", "metrics", "[]", "provider"}, []string{spec.ProviderBuiltin, spec.ProviderPrometheus}},
		{[]string{"spec", "routing", "rules", "[]", "to"}, []string{spec.RoleCanary, spec.RoleStable}},
		{[]string{"spec", "webhooks", "[]", "type"}, spec.WebhookTypes},
		{[]string{"spec", "notifications", "[]", "type"}, []string{spec.NotifySlack, spec.NotifyWebhook}},
		{[]string{"spec", "notifications", "[]", "events", "[]"}, spec.NotificationEvents},
		{[]string{"spec", "workloadRef", "scaleDown"}, []string{ScaleDownNever, ScaleDownOnSuccess}},
		{[]string{"status", "phase"}, []string{string(rollout.PhaseStable), string(rollout.PhaseProgressing), string(rollout.PhasePaused), string(rollout.PhaseRollingBack), string(rollout.PhaseDegraded)}},
		{[]string{"status", "currentStep", "kind"}, []string{string(rollout.StepHealthGate), string(rollout.StepSetWeight), string(rollout.StepPause), string(rollout.StepGate), string(rollout.StepHook), string(rollout.StepSwitch), string(rollout.StepBake)}},
		{[]string{"status", "verdicts", "[]", "result"}, []string{string(rollout.VerdictPassed), string(rollout.VerdictFailed), string(rollout.VerdictInconclusive), string(rollout.VerdictError)}},
	}
	for _, tc := range tests {
		s := root
		for _, p := range tc.path {
			if p == "[]" {
				s = *s.Items.Schema
				continue
			}
			s = s.Properties[p]
		}
		var got []string
		for _, e := range s.Enum {
			var v string
			if err := yaml.Unmarshal(e.Raw, &v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tc.want))) {
			t.Errorf("%s: enum %v, want %v", strings.Join(tc.path, "."), got, tc.want)
		}
	}
}
