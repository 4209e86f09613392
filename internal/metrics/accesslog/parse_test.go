package accesslog

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// render writes a parsed line compactly, as testdata/shapes.log expects it.
func render(l *line) string {
	var b strings.Builder
	fmt.Fprintf(&b, "msec=%d up=%s status=%d rt=%.3f", l.msec, l.upstream, l.status, l.reqTime)
	for _, a := range l.attempts {
		st, tm := "-", "-"
		if a.status != 0 {
			st = fmt.Sprint(a.status)
		}
		if a.time != 0 || st != "-" {
			tm = fmt.Sprintf("%.3f", a.time)
		}
		fmt.Fprintf(&b, " [%s %s %s]", a.addr, st, tm)
	}
	return b.String()
}

// TestParseShapes parses every line shape of testdata/shapes.log: each line
// follows "# NAME" and "# want: RESULT" comments.
func TestParseShapes(t *testing.T) {
	fh, err := os.Open("testdata/shapes.log")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	var name, want string
	var l line
	n := 0
	for sc.Scan() {
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "# want: "):
			want = strings.TrimPrefix(text, "# want: ")
			continue
		case strings.HasPrefix(text, "# "):
			name = strings.TrimPrefix(text, "# ")
			continue
		}
		n++
		got := ""
		if err := parseLine([]byte(text), &l); err != nil {
			got = "error: " + err.Error()
		} else {
			got = render(&l)
		}
		if got != want {
			t.Errorf("%s: parseLine(%q) = %s, want %s", name, text, got, want)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("read %d cases from testdata/shapes.log, want at least 20", n)
	}
}

func TestParseBounds(t *testing.T) {
	var l line
	addrs := strings.Repeat("10.0.0.1:80, ", maxAttempts) + "10.0.0.2:80"
	sts := strings.Repeat("502, ", maxAttempts) + "200"
	times := strings.Repeat("0.001, ", maxAttempts) + "0.001"
	if err := parseLine([]byte("1764690000.123\tweb\t200\t0.1\t"+addrs+"\t"+sts+"\t"+times), &l); err != errLists {
		t.Errorf("parseLine(%d attempts) = %v, want %v", maxAttempts+1, err, errLists)
	}
	if _, ok := decimal([]byte(strings.Repeat("9", 40))); ok {
		t.Errorf("decimal(40 digits) ok, want refused")
	}
}

func TestDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true}, {"0.004", 0.004, true}, {"12.5", 12.5, true}, {"1764690000.123", 1764690000.123, true},
		{"", 0, false}, {".5", 0, false}, {"5.", 0, false}, {"-1", 0, false}, {"1e3", 0, false},
		{"1.2.3", 0, false}, {"Inf", 0, false}, {" 1", 0, false},
	}
	for _, tt := range tests {
		got, ok := decimal([]byte(tt.in))
		if ok != tt.ok || (ok && (got-tt.want > 1e-6 || tt.want-got > 1e-6)) {
			t.Errorf("decimal(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("1764690000.500\tweb\t200\t1.010\t10.0.0.1:80, 10.0.0.2:80\t502, 200\t0.001, 1.009"))
	f.Add([]byte("1764690001.000\tweb\t200\t0.300\t10.0.0.1:80 : 10.0.0.3:80\t504 : 200\t0.100 : 0.100"))
	f.Add([]byte("1764690002.000\tweb\t404\t0.000\t-\t-\t-"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var l line
		if err := parseLine(b, &l); err != nil {
			return
		}
		if l.msec <= 0 || len(l.upstream) == 0 || l.status < 0 || l.status > 999 || len(l.attempts) > maxAttempts {
			t.Fatalf("parseLine(%q) accepted %+v", b, l)
		}
	})
}

// TestDocShowsLogFormat: the package documentation shows the directive
// users copy, which must be LogFormat exactly (TestNginx runs it).
func TestDocShowsLogFormat(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "//\t"+LogFormat+"\n") {
		t.Errorf("doc.go does not show LogFormat as it is:\n%s", LogFormat)
	}
}
