package main

import (
	"strings"
	"testing"
)

// canned is a shortened `go test -json` run with a pass, a fail, a skip,
// a package without tests and a build failure.
const canned = `{"Action":"start","Package":"example/a"}
{"Action":"run","Package":"example/a","Test":"TestOK"}
{"Action":"output","Package":"example/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"output","Package":"example/a","Test":"TestOK","Output":"--- PASS: TestOK (0.00s)\n"}
{"Action":"pass","Package":"example/a","Test":"TestOK","Elapsed":0}
{"Action":"run","Package":"example/a","Test":"TestBad"}
{"Action":"output","Package":"example/a","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"example/a","Test":"TestBad","Output":"    a_test.go:9: got 1, want 2\n"}
{"Action":"output","Package":"example/a","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"example/a","Test":"TestBad","Elapsed":0}
{"Action":"run","Package":"example/a","Test":"TestNginx"}
{"Action":"output","Package":"example/a","Test":"TestNginx","Output":"=== RUN   TestNginx\n"}
{"Action":"output","Package":"example/a","Test":"TestNginx","Output":"    testenv.go:80: nginx not found\n"}
{"Action":"output","Package":"example/a","Test":"TestNginx","Output":"--- SKIP: TestNginx (0.00s)\n"}
{"Action":"skip","Package":"example/a","Test":"TestNginx","Elapsed":0}
{"Action":"output","Package":"example/a","Output":"FAIL\n"}
{"Action":"fail","Package":"example/a","Elapsed":0.5}
{"Action":"skip","Package":"example/b","Elapsed":0}
{"ImportPath":"example/c","Action":"build-output","Output":"c.go:3:1: syntax error\n"}
{"ImportPath":"example/c","Action":"build-fail"}
{"Action":"fail","Package":"example/c","Elapsed":0,"FailedBuild":"example/c"}
go: some plain line
`

func TestSummary(t *testing.T) {
	var out strings.Builder
	s := &summary{output: map[string][]string{}}
	failed, err := s.read(strings.NewReader(canned), &out)
	if err != nil {
		t.Fatalf("read() error = %v", err)
	}
	if !failed {
		t.Errorf("read() failed = false, want true")
	}
	got := out.String()
	for _, want := range []string{
		"a_test.go:9: got 1, want 2",
		"--- FAIL: TestBad",
		"FAIL    example/a\t500ms",
		"?       example/b\t[no test files]",
		"c.go:3:1: syntax error",
		"FAIL    example/c [build failed: example/c]",
		"go: some plain line",
		"example/a TestNginx: nginx not found",
		"2 package(s) failed",
		"tests: 1 passed, 0 cached, 1 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN") || strings.Contains(got, "--- PASS") {
		t.Errorf("summary shows passing test chatter:\n%s", got)
	}
}

func TestSummaryAllPass(t *testing.T) {
	in := `{"Action":"pass","Package":"example/a","Test":"TestOK"}
{"Action":"pass","Package":"example/a","Elapsed":1.25}
`
	var out strings.Builder
	s := &summary{output: map[string][]string{}}
	failed, err := s.read(strings.NewReader(in), &out)
	if err != nil || failed {
		t.Fatalf("read() = %v, %v; want false, nil", failed, err)
	}
	if want := "ok      example/a\t1.25s\ntests: 1 passed, 0 cached, 0 failed, 0 skipped\n"; out.String() != want {
		t.Fatalf("read() wrote %q, want %q", out.String(), want)
	}
}

func TestSummaryCached(t *testing.T) {
	in := `{"Action":"pass","Package":"example/a","Test":"TestOK","Elapsed":0.01}
{"Action":"output","Package":"example/a","Output":"ok  \texample/a\t(cached)\n"}
{"Action":"pass","Package":"example/a","Elapsed":0.003}
{"Action":"pass","Package":"example/b","Test":"TestRan","Elapsed":0.01}
{"Action":"output","Package":"example/b","Output":"ok  \texample/b\t0.250s\n"}
{"Action":"pass","Package":"example/b","Elapsed":0.25}
`
	var out strings.Builder
	s := &summary{output: map[string][]string{}}
	failed, err := s.read(strings.NewReader(in), &out)
	if err != nil || failed {
		t.Fatalf("read() = %v, %v; want false, nil", failed, err)
	}
	want := "ok      example/a\t(cached)\nok      example/b\t250ms\ntests: 1 passed, 1 cached, 0 failed, 0 skipped\n"
	if out.String() != want {
		t.Fatalf("read() wrote %q, want %q", out.String(), want)
	}
}
