package spec

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the Go types")

const referencePath = "../../docs/configuration.md"

// TestConfigurationReference fails when docs/configuration.md is not what
// the Go types, their doc comments and Default produce. Regenerate with
//
//	go test ./internal/spec -run TestConfigurationReference -update
func TestConfigurationReference(t *testing.T) {
	got, err := generateReference()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(referencePath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./internal/spec -run TestConfigurationReference -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("docs/configuration.md is out of date with internal/spec; regenerate it with:\n" +
			"  go test ./internal/spec -run TestConfigurationReference -update")
	}
}

// TestEveryFieldDocumented makes the doc comments the reference is built
// from mandatory.
func TestEveryFieldDocumented(t *testing.T) {
	docs, err := readDocs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range schemaSections() {
		if docs.types[sec.typ.Name()] == "" {
			t.Errorf("type %s has no doc comment", sec.typ.Name())
		}
		for _, f := range schemaFields(sec.typ) {
			if docs.fields[sec.typ.Name()+"."+f.Name] == "" {
				t.Errorf("field %s.%s has no doc comment", sec.typ.Name(), f.Name)
			}
		}
	}
}

type goDocs struct {
	types  map[string]string // type name -> doc
	fields map[string]string // "Type.Field" -> doc
}

// readDocs reads the doc comments of the package's types and fields.
func readDocs(dir string) (goDocs, error) {
	d := goDocs{types: map[string]string{}, fields: map[string]string{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return d, err
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return d, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				d.types[ts.Name.Name] = doc.Text()
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fld := range st.Fields.List {
					text := fld.Doc.Text()
					if text == "" {
						text = fld.Comment.Text()
					}
					for _, n := range fld.Names {
						d.fields[ts.Name.Name+"."+n.Name] = text
					}
				}
			}
		}
	}
	return d, nil
}

type section struct {
	path string // "spec.healthCheck", "spec.versions[]"
	typ  reflect.Type
}

// schemaSections lists the schema's struct types in the order they first
// appear under Service, each at its field path.
func schemaSections() []section {
	var out []section
	seen := map[reflect.Type]bool{}
	var visit func(path string, t reflect.Type)
	visit = func(path string, t reflect.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		out = append(out, section{path, t})
		for _, f := range schemaFields(t) {
			ft, suffix := f.Type, ""
			for {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				} else if ft.Kind() == reflect.Slice {
					ft, suffix = ft.Elem(), suffix+"[]"
				} else {
					break
				}
			}
			if ft.Kind() == reflect.Struct && ft != durationType {
				visit(join(path, jsonName(f))+suffix, ft)
			}
		}
	}
	visit("", reflect.TypeFor[Service]())
	return out
}

func schemaFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && jsonName(f) != "-" {
			out = append(out, f)
		}
	}
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

func typeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "integer"
	case t.Kind() == reflect.Float64:
		return "number"
	case t.Kind() == reflect.Bool:
		return "boolean"
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Elem()) + "s"
	case t.Kind() == reflect.Slice:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		if e.Kind() == reflect.Struct && e != durationType {
			return "list of " + e.Name()
		}
		return "list of " + typeName(e) + "s"
	case t.Kind() == reflect.Struct:
		return t.Name()
	default:
		return t.String()
	}
}

// defaultValues returns the value Default gives each field path, found by
// defaulting probe services and keeping what changed: the documented
// defaults are the applied ones by construction.
func defaultValues() map[string]string {
	out := map[string]string{}
	probes := []func() *Service{
		func() *Service {
			return &Service{Spec: ServiceSpec{
				Strategy: Strategy{Canary: &Canary{StepWeight: 1}},
				Analysis: &Analysis{Breaker: &Breaker{}, Metrics: []Metric{{Name: MetricRequestDuration}}},
				Routing:  Routing{StickySessions: &StickySessions{}},
				Hooks:    &Hooks{BeforeInstall: &Hook{}},
			}}
		},
		func() *Service { return &Service{} }, // no strategy: blue-green
		func() *Service {
			return &Service{Spec: ServiceSpec{TrafficRouter: TrafficRouter{Nginx: &NginxRouter{}}}}
		},
	}
	for _, probe := range probes {
		before, after := probe(), probe()
		after.Default()
		collectDefaults("", reflect.ValueOf(before).Elem(), reflect.ValueOf(after).Elem(), out)
	}
	return out
}

func collectDefaults(path string, before, after reflect.Value, out map[string]string) {
	if after.Kind() == reflect.Pointer {
		if after.IsNil() {
			return
		}
		if before.IsNil() {
			before = reflect.New(after.Type().Elem())
		}
		before, after = before.Elem(), after.Elem()
	}
	if after.Type() == durationType {
		if !reflect.DeepEqual(before.Interface(), after.Interface()) {
			out[path] = fmtDuration(after.Interface().(Duration).Duration)
		}
		return
	}
	if after.Kind() == reflect.Struct {
		for _, f := range schemaFields(after.Type()) {
			collectDefaults(join(path, jsonName(f)), before.FieldByIndex(f.Index), after.FieldByIndex(f.Index), out)
		}
		return
	}
	if !reflect.DeepEqual(before.Interface(), after.Interface()) {
		out[path] = fmt.Sprint(after.Interface())
	}
}

// fmtDuration writes 10m instead of 10m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func anchor(s section) string {
	if s.path == "" {
		return "service"
	}
	r := strings.NewReplacer(".", "", "[", "", "]", "")
	return strings.ToLower(r.Replace(s.path))
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

func stepsDoc(steps []Step) string {
	var parts []string
	for _, s := range steps {
		switch {
		case s.SetWeight != nil:
			parts = append(parts, fmt.Sprintf("%d%%", *s.SetWeight))
		case s.Pause != nil && s.Pause.Duration.Duration == 0:
			parts = append(parts, "pause until promoted")
		case s.Pause != nil:
			parts = append(parts, "pause "+fmtDuration(s.Pause.Duration.Duration))
		}
	}
	return strings.Join(append(parts, "100%"), " → ")
}

// generateReference renders docs/configuration.md.
func generateReference() ([]byte, error) {
	docs, err := readDocs(".")
	if err != nil {
		return nil, err
	}
	defaults := defaultValues()
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("<!-- Code generated by `go test ./internal/spec -run TestConfigurationReference -update`. DO NOT EDIT. -->\n\n")
	p("# Configuration reference\n\n")
	p("A Switchyard service file is YAML in the Kubernetes style: one or more documents\n")
	p("(separated by `---`), each with `apiVersion: %s`, `kind: %s`, `metadata` and\n", APIVersion, KindService)
	p("`spec`. The same schema is accepted as JSON by the admin API and, later, as the\n")
	p("Kubernetes `Rollout` resource.\n\n")
	p("`switchyard validate -f FILE` checks a file without running anything. Decoding is\n")
	p("strict: unknown, misspelled, wrongly-cased and duplicate keys are errors, and so are\n")
	p("durations without a unit. Every problem in every file is reported at once, each with\n")
	p("its file, line, field path, the value found and what would be valid:\n\n")
	p("```\nweb.yaml:16:11: service \"web\": spec.strategy.canary.steps[0].SetWeight: unknown field; did you mean \"setWeight\"? (keys are case-sensitive)\n")
	p("web.yaml:18: service \"web\": spec.strategy.canary.steps[2].setWeight is 120; must be 0-100\n```\n\n")
	p("Durations are strings with a unit: `500ms`, `30s`, `1m`, `2h45m`. A field left out\n")
	p("(or set to its zero value) takes the default shown below. Every number and duration\n")
	p("has the range shown; a value outside it is an error, never clamped or replaced.\n")
	p("A file (or an admin API body) is at most %d bytes, and flow collections (`[ ]`, `{ }`)\n", MaxDocumentBytes)
	p("nest at most %d deep.\n\n", MaxNesting)

	p("## Example\n\n")
	for _, ex := range []struct{ file, intro string }{
		{"testdata/web.yaml", "A canary with explicit steps, a header rule, sticky sessions and analysis:"},
		{"testdata/full.yaml", "Every field set (a Flagger-style canary):"},
	} {
		data, err := os.ReadFile(ex.file)
		if err != nil {
			return nil, err
		}
		p("%s\n\n```yaml\n%s```\n\n", ex.intro, data)
	}

	p("## Fields\n\n")
	for _, sec := range schemaSections() {
		title := sec.path
		if title == "" {
			title = "Service (a document)"
		}
		p("### <a id=\"%s\"></a>`%s`\n\n", anchor(sec), title)
		p("%s\n\n", oneLine(docs.types[sec.typ.Name()]))
		p("| Field | Type | Default | Range | Description |\n|---|---|---|---|---|\n")
		for _, f := range schemaFields(sec.typ) {
			fp := join(sec.path, jsonName(f))
			typ := typeName(f.Type)
			for _, s := range schemaSections() {
				if s.typ.Name() == strings.TrimPrefix(typ, "list of ") && s.typ.Kind() == reflect.Struct {
					typ = fmt.Sprintf("[%s](#%s)", typ, anchor(s))
				}
			}
			def := ""
			if v, ok := defaults[fp]; ok {
				def = "`" + v + "`"
			}
			rng := ""
			if r, ok := fieldRange(f); ok {
				rng = r.String()
			}
			p("| `%s` | %s | %s | %s | %s |\n", fp, typ, def, rng, oneLine(docs.fields[sec.typ.Name()+"."+f.Name]))
		}
		p("\n")
	}

	p("## Canary forms\n\n")
	p("`spec.strategy.canary` uses exactly one of three forms; each becomes a list of\n")
	p("`setWeight`/`pause` steps, followed by promotion to 100%%.\n\n")
	p("- **Steps**: `steps` as written. `pause: {}` waits for `switchyard promote`.\n")
	p("- **Preset**: `preset`, one of the names below or a custom `canary N%%/DURATION`\n")
	p("  (N%% for DURATION, then all) or `linear N%%/DURATION` (N%% more every DURATION\n")
	p("  while below 100%%), with N 1-99 and DURATION above 0, written exactly so.\n")
	p("- **Flagger style**: `stepWeight` S with `maxWeight` M (default %d) and `interval` I\n", DefaultMaxWeight)
	p("  (default %s) gives S, 2S, ... up to M (the last step clamped to M), pausing I\n", fmtDuration(DefaultCanaryInterval))
	p("  after each; or `stepWeights` [a, b, c] (strictly increasing, 1-99), pausing I after each.\n\n")
	p("| Canary | Steps |\n|---|---|\n")
	for _, name := range PresetNames() {
		pr, _ := ParsePreset(name)
		p("| `preset: %s` | %s |\n", name, stepsDoc(pr.Steps()))
	}
	for _, c := range []struct {
		yaml string
		c    Canary
	}{
		{"preset: canary 20%/30s", Canary{Preset: "canary 20%/30s"}},
		{"preset: linear 30%/2m", Canary{Preset: "linear 30%/2m"}},
		{"stepWeight: 20", Canary{StepWeight: 20}},
		{"stepWeight: 20, maxWeight: 70, interval: 30s", Canary{StepWeight: 20, MaxWeight: 70, Interval: D(30 * time.Second)}},
		{"stepWeights: [1, 10, 50], interval: 2m", Canary{StepWeights: []int{1, 10, 50}, Interval: D(2 * time.Minute)}},
	} {
		steps, err := c.c.ExpandSteps()
		if err != nil {
			return nil, err
		}
		p("| `%s` | %s |\n", c.yaml, stepsDoc(steps))
	}
	p("\n")

	p("## Analysis metrics\n\n")
	p("| Name | Value | Bounds |\n|---|---|---|\n")
	p("| `%s` | percentage of requests answered without a 5xx status or a connection error | `min`/`max` within 0-100 |\n", MetricRequestSuccessRate)
	p("| `%s` | the request duration at `quantile` (default %g), in milliseconds | `min`/`max` 0 or more |\n", MetricRequestDuration, DefaultQuantile)
	p("| any name, with `prometheus: {address, query}` | the single number the PromQL query returns | `thresholdRange`, or `successCondition` / `failureCondition` over `result` |\n\n")
	p("A built-in check over fewer than `minSamples` requests is inconclusive. A Prometheus\n")
	p("query's `{{ service }}`, `{{ version }}` (the canary), `{{ stable }}` and `{{ interval }}`\n")
	p("(the check's interval as a PromQL duration) are replaced before it runs; it must return\n")
	p("a scalar or exactly one series (several series are an error naming their labels; no\n")
	p("series, NaN or ±Inf make the check inconclusive). Conditions are\n")
	p("[expr](https://expr-lang.org) expressions, compiled by `validate`.\n\n")
	p("Each check that falls outside its `thresholdRange` counts as a failure; `threshold`\n")
	p("failures roll the rollout back. A metrics source that cannot answer makes the check\n")
	p("inconclusive (or an error): the rollout waits, it never promotes on missing data, and\n")
	p("after `consecutiveErrorLimit` such checks in a row it pauses and says why.\n\n")

	p("## Rules across services\n\n")
	p("Service names (`metadata.name`) are unique across all files, and no two services\n")
	p("listen on the same address (a wildcard host such as `:8080` or `0.0.0.0:8080`\n")
	p("conflicts with every host on that port). Port 0 picks a free port.\n")
	return b.Bytes(), nil
}
