package spec

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDecodeIsBounded: input built to exhaust the parser is refused before
// parsing, with a clear error and little memory (100 KB of nested brackets
// took 15 s and 3.8 GB).
func TestDecodeIsBounded(t *testing.T) {
	head := "apiVersion: switchyard.dev/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec:\n  stable: "
	tests := []struct {
		name string
		data string
		want string
	}{
		{"nested brackets", head + strings.Repeat("[", 50000) + strings.Repeat("]", 50000), "may nest at most 32 deep"},
		{"nested braces", head + strings.Repeat("{a: ", 40) + "1" + strings.Repeat("}", 40), "may nest at most 32 deep"},
		{"too large", head + "blue\n" + strings.Repeat("# padding\n", MaxDocumentBytes/10+1), "must be at most 1048576 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Decode("big.yaml", []byte(tc.data))
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "big.yaml") {
				t.Fatalf("Decode = %v, want an error naming the file and %q", err, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("Decode allocated %d MiB refusing it, want a few", alloc>>20)
			}
		})
	}
	// Brackets inside quotes and comments are text, not nesting.
	ok := head + "blue\n  listen: \"" + strings.Repeat("[", 100) + "\"\n# " + strings.Repeat("{", 100) + "\n"
	if _, err := Decode("ok.yaml", []byte(ok)); err != nil && strings.Contains(err.Error(), "nest") {
		t.Fatalf("quoted and commented brackets counted as nesting: %v", err)
	}
}

// TestNumericRanges: every number and duration has a range; values the
// issue found accepted (and silently changed) are refused naming the field,
// the value and the range.
func TestNumericRanges(t *testing.T) {
	base := func(extra string) string {
		return `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: 127.0.0.1:8080
  versions: [{name: blue, targets: ["127.0.0.1:9001"]}]
  stable: blue
` + extra
	}
	tests := []struct {
		name, extra, path, want string
	}{
		{"maxHeaderBytes max int64", "  proxy: {maxHeaderBytes: 9223372036854775807}\n", "spec.proxy.maxHeaderBytes", "is 9223372036854775807; must be 1024-1048576"},
		{"maxHeaderBytes 2 GB", "  proxy: {maxHeaderBytes: 2147483647}\n", "spec.proxy.maxHeaderBytes", "must be 1024-1048576"},
		{"retries a million", "  proxy: {retries: 1000000}\n", "spec.proxy.retries", "must be 0-3"},
		{"threshold 1e18", "  analysis: {threshold: 1000000000000000000, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}\n", "spec.analysis.threshold", "must be 1-1000"},
		{"interval below a nanosecond", "  analysis: {interval: 0.0000000001ns, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}\n", "spec.analysis.interval", "shorter than a nanosecond"},
		{"interval of 292 years", "  analysis: {interval: 2562047h, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}\n", "spec.analysis.interval", "must be 100ms to 24h"},
		{"health interval 1ns", "  healthCheck: {interval: 1ns, timeout: 1ns}\n", "spec.healthCheck.interval", "must be 10ms to 1h"},
		{"negative drain", "  proxy: {drainTimeout: -1s}\n", "spec.proxy.drainTimeout", "must be 0s to 1h"},
		{"pause of a year", "  strategy: {canary: {steps: [{setWeight: 10}, {pause: {duration: 8760h}}]}}\n", "spec.strategy.canary.steps[1].pause.duration", "must be 0s to 720h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("web.yaml", []byte(base(tc.extra)))
			if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error naming %s: %q", err, tc.path, tc.want)
			}
		})
	}
	if _, err := Parse("web.yaml", []byte(base("  proxy: {maxHeaderBytes: 8192, retries: 3, upstreamTimeout: 0s}\n"))); err != nil {
		t.Fatalf("values within range refused: %v", err)
	}
}

// FuzzDecode feeds the strict decoder, Default and Validate arbitrary
// files: they may refuse anything but never panic, and a file they accept
// validates again after a second Default (Default is idempotent).
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"testdata", "testdata/broken"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("spec: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		svcs, err := Decode("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, s := range svcs {
			s.Default()
			if s.Validate() == nil {
				s.Default()
				if err := s.Validate(); err != nil {
					t.Fatalf("valid after one Default, invalid after two: %v", err)
				}
			}
		}
		_ = ValidateAll(svcs)
	})
}

// TestLoadValidation: the load generator's fields are checked like any
// other, with the field, the value and the fix.
func TestLoadValidation(t *testing.T) {
	doc := `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: 127.0.0.1:8080
  versions: [{name: blue, targets: ["127.0.0.1:9001"]}]
  stable: blue
  analysis:
    metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]
    load: {rate: 0, path: "health", method: "GE T", headers: {"Bad Name": "x"}}
`
	_, err := Parse("web.yaml", []byte(doc))
	for _, want := range []string{"spec.analysis.load.rate is 0; must be 1-10000", "spec.analysis.load.path", "spec.analysis.load.method", `spec.analysis.load.headers["Bad Name"]`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse = %v, want an error containing %q", err, want)
		}
	}
	ok := strings.Replace(doc, `{rate: 0, path: "health", method: "GE T", headers: {"Bad Name": "x"}}`, `{rate: 50}`, 1)
	svcs, err := Parse("web.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if l := svcs[0].Spec.Analysis.Load; l.Concurrency != DefaultLoadConcurrency || l.Path != "/" || l.Method != "GET" {
		t.Errorf("load defaults = %+v", *l)
	}
}
