// Command testsummary reads `go test -json` output on stdin and prints what a
// person needs from a long test run: build errors, the output of failed
// tests, one line per package, the skipped tests with their reasons, and a
// closing "tests: N passed, N cached, N failed, N skipped" line. It exits 1
// when any test, package or build failed.
//
// scripts/test.sh uses it; the raw JSON is kept in a log file beside it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
	// FailedBuild names the package whose build failed, on a package's
	// fail event.
	FailedBuild string
}

// summary accumulates a run.
type summary struct {
	passed, cached, failed, skipped int
	pkgFailed                       int
	// pkgPassed counts each package's passed tests until the package
	// ends: a cached package's tests are replayed from the cache, and only
	// the package's last output line ("ok ... (cached)") says so.
	pkgPassed map[string]int
	// output buffers each running test's lines until it ends; keyed by
	// package and test name.
	output map[string][]string
	// skips holds "pkg Test: reason" for skipped tests.
	skips []string
}

func main() {
	s := &summary{output: map[string][]string{}}
	failed, err := s.read(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// read processes the JSON stream from r, writing the report to w, and
// reports whether anything failed.
func (s *summary) read(r io.Reader, w io.Writer) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not JSON: go vet or the go command talking; pass it on.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		s.handle(e, w)
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("read go test output: %w", err)
	}
	s.finish(w)
	return s.failed > 0 || s.pkgFailed > 0, nil
}

// handle processes one event.
func (s *summary) handle(e event, w io.Writer) {
	key := e.Package + " " + e.Test
	switch e.Action {
	case "build-output":
		fmt.Fprint(w, e.Output)
	case "build-fail":
		// The package's own fail event follows and is counted there.
	case "output":
		// Kept until the test (or package) ends: shown only if it fails.
		s.output[key] = append(s.output[key], e.Output)
	case "pass":
		if e.Test == "" {
			// A cached result is not a run: its elapsed time is the cache
			// lookup's, and its tests did not run now.
			if cachedResult(s.output[key]) {
				fmt.Fprintf(w, "ok      %s\t(cached)\n", e.Package)
				s.cached += s.pkgPassed[e.Package]
			} else {
				fmt.Fprintf(w, "ok      %s\t%s\n", e.Package, secs(e.Elapsed))
				s.passed += s.pkgPassed[e.Package]
			}
			delete(s.pkgPassed, e.Package)
			delete(s.output, key)
			return
		}
		if s.pkgPassed == nil {
			s.pkgPassed = map[string]int{}
		}
		s.pkgPassed[e.Package]++
		delete(s.output, key)
	case "skip":
		if e.Test == "" {
			fmt.Fprintf(w, "?       %s\t[no test files]\n", e.Package)
			delete(s.output, key)
			return
		}
		s.skipped++
		s.skips = append(s.skips, fmt.Sprintf("%s %s: %s", short(e.Package), e.Test, skipReason(s.output[key])))
		delete(s.output, key)
	case "fail":
		if e.Test == "" {
			s.pkgFailed++
			// A failed package is never cached: its passes ran now.
			s.passed += s.pkgPassed[e.Package]
			delete(s.pkgPassed, e.Package)
			for _, l := range s.output[key] {
				if !strings.HasPrefix(l, "FAIL\n") && !strings.HasPrefix(l, "FAIL\t") {
					fmt.Fprint(w, l)
				}
			}
			if e.FailedBuild != "" {
				fmt.Fprintf(w, "FAIL    %s [build failed: %s]\n", e.Package, short(e.FailedBuild))
			} else {
				fmt.Fprintf(w, "FAIL    %s\t%s\n", e.Package, secs(e.Elapsed))
			}
			delete(s.output, key)
			return
		}
		s.failed++
		for _, l := range s.output[key] {
			if strings.HasPrefix(l, "=== ") {
				continue
			}
			fmt.Fprint(w, l)
		}
		delete(s.output, key)
	}
}

// finish prints the skipped tests and the closing counts.
func (s *summary) finish(w io.Writer) {
	if len(s.skips) > 0 {
		sort.Strings(s.skips)
		fmt.Fprintf(w, "\nskipped tests (%d):\n", len(s.skips))
		for _, l := range s.skips {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if s.pkgFailed > 0 {
		fmt.Fprintf(w, "\n%d package(s) failed\n", s.pkgFailed)
	}
	// Passes of packages that never ended (a killed run) ran now.
	for _, n := range s.pkgPassed {
		s.passed += n
	}
	s.pkgPassed = nil
	fmt.Fprintf(w, "tests: %d passed, %d cached, %d failed, %d skipped\n", s.passed, s.cached, s.failed, s.skipped)
}

// cachedResult reports whether a package's output ends with go test's
// "ok <pkg> (cached)" line.
func cachedResult(lines []string) bool {
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return strings.HasPrefix(l, "ok") && strings.HasSuffix(l, "(cached)")
		}
	}
	return false
}

// skipReason picks the t.Skip message out of a skipped test's output.
func skipReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		// "file_test.go:12: reason"
		if i := strings.Index(l, ": "); i > 0 && strings.Contains(l[:i], ".go:") {
			return l[i+2:]
		}
		return l
	}
	return "(no reason given)"
}

// short drops the module prefix from a package path.
func short(pkg string) string {
	return strings.TrimPrefix(pkg, "github.com/switchyard/switchyard/")
}

// secs formats an elapsed time like go test does.
func secs(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}
