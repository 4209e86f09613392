package metrics

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

func TestWindowFuncAndSources(t *testing.T) {
	sk, err := ddsketch.NewDefaultDDSketch(0.01)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		_ = sk.Add(float64(i) / 1000) // 1ms..100ms
	}
	src := WindowFunc(func(service, version string, d time.Duration) Sample {
		if service != "web" || version != "green" || d != time.Minute {
			t.Errorf("Window(%q, %q, %v), want web, green, 1m", service, version, d)
		}
		return Sample{Requests: 100, Errors: 2, Latency: sk}
	})
	got, err := Sources{"builtin": src}.For("builtin")
	if err != nil {
		t.Fatal(err)
	}
	s, err := got.Window(context.Background(), "web", "green", time.Minute)
	if err != nil || s.Requests != 100 || s.Errors != 2 {
		t.Fatalf("Window = %+v, %v; want 100 requests, 2 errors", s, err)
	}
	if q := s.Quantile(0.99); q < 97*time.Millisecond || q > 101*time.Millisecond {
		t.Errorf("Quantile(0.99) = %v, want about 99ms", q)
	}
	if q := (Sample{}).Quantile(0.99); q != 0 {
		t.Errorf("empty Quantile = %v, want 0", q)
	}
	if _, err := (Sources{"builtin": src}).For("prometheus"); err == nil || !strings.Contains(err.Error(), `"prometheus"`) {
		t.Errorf("For(prometheus) = %v, want an error naming it", err)
	}
}
