package v1alpha1

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// TestSchemaIsStructural: the API server accepts only structural schemas
// for a CRD; this is its check (the CEL rules and the install itself are
// tested against a real API server with the controller).
func TestSchemaIsStructural(t *testing.T) {
	v1 := loadSchema(t)
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(&v1, &internal, nil); err != nil {
		t.Fatal(err)
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		t.Fatal(err)
	}
	if errs := structuralschema.ValidateStructural(nil, s); len(errs) > 0 {
		t.Fatalf("the CRD's schema is not structural: %v", errs.ToAggregate())
	}
}

// schemaValidator validates objects against the CRD's OpenAPI schema as
// the API server does (types, ranges, enums, patterns, required fields;
// not the CEL rules).
func schemaValidator(t *testing.T) *validate.SchemaValidator {
	t.Helper()
	v1 := loadSchema(t)
	b, err := json.Marshal(v1)
	if err != nil {
		t.Fatal(err)
	}
	var s spec.Schema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return validate.NewSchemaValidator(&s, nil, "", strfmt.Default)
}

func untyped(t *testing.T, doc string) map[string]any {
	t.Helper()
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestSchemaValidatesRollouts: the guide's Rollouts pass the CRD's schema,
// and values out of their range tag's range, names outside the spec's
// sets and malformed durations are refused by it, before Switchyard sees
// them.
func TestSchemaValidatesRollouts(t *testing.T) {
	sv := schemaValidator(t)
	data, err := os.ReadFile("../../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1) {
		if !strings.Contains(b[1], "kind: Rollout") || strings.Contains(b[1], "setWeight: 120") {
			continue
		}
		if res := sv.Validate(untyped(t, b[1])); !res.IsValid() {
			t.Errorf("guide example %d: the schema refuses it: %v", i, res.Errors)
		}
	}
	if res := sv.Validate(untyped(t, canaryRollout)); !res.IsValid() {
		t.Fatalf("canaryRollout: %v", res.Errors)
	}
	tests := []struct{ name, old, new, want string }{
		{"threshold above range", "    threshold: 2\n", "    threshold: 5000\n", "threshold"},
		{"quantile below range", "      thresholdRange: {max: 0.01}\n", "      thresholdRange: {max: 0.01}\n      quantile: 0.1\n", "quantile"},
		{"replicas 0", "  replicas: 3\n", "  replicas: 0\n", "replicas"},
		{"unknown judge", "    threshold: 2\n", "    threshold: 2\n    judge: bayes\n", "judge"},
		{"unknown provider", "      thresholdRange: {max: 0.01}\n", "      thresholdRange: {max: 0.01}\n      provider: datadog\n", "provider"},
		{"rule to nowhere", "      to: canary\n", "      to: blue\n", "to"},
		{"duration without unit", "  progressDeadline: 15m\n", "  progressDeadline: \"15\"\n", "progressDeadline"},
		{"negative duration", "      - pause: {duration: 5m}\n", "      - pause: {duration: -5m}\n", "duration"},
		{"duration as a number", "    interval: 1m\n", "    interval: 60\n", "interval"},
		{"webhook type", "  progressDeadline: 15m\n", "  progressDeadline: 15m\n  webhooks: [{name: w, type: pre-deploy, url: \"http://x/\"}]\n", "type"},
		{"missing service name", "  service: {name: web, port: 80}\n", "  service: {port: 80}\n", "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(canaryRollout, tc.old) {
				t.Fatalf("canaryRollout has no %q", tc.old)
			}
			res := sv.Validate(untyped(t, strings.Replace(canaryRollout, tc.old, tc.new, 1)))
			if res.IsValid() {
				t.Fatalf("the schema accepts it")
			}
			found := false
			for _, e := range res.Errors {
				found = found || strings.Contains(e.Error(), tc.want)
			}
			if !found {
				t.Errorf("errors %v, want one naming %s", res.Errors, tc.want)
			}
		})
	}
}
