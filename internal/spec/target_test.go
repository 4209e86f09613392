package spec

import (
	"errors"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain host:port", "127.0.0.1:9001", true},
		{"http scheme", "http://127.0.0.1:9001", true},
		{"https scheme", "https://app.internal:8443", true},
		{"h2c scheme for gRPC", "h2c://127.0.0.1:50051", true},
		{"unknown scheme", "grpc://127.0.0.1:50051", false},
		{"scheme without port", "h2c://127.0.0.1", false},
		{"path is not a target", "http://127.0.0.1:80/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkTarget(tt.in) == ""; got != tt.ok {
				t.Errorf("checkTarget(%q) ok = %v, want %v (%s)", tt.in, got, tt.ok, checkTarget(tt.in))
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
	}{
		{"127.0.0.1:9001", Target{Host: "127.0.0.1:9001", Scheme: "http"}},
		{"http://app.internal:8080", Target{Host: "app.internal:8080", Scheme: "http"}},
		{"https://app.internal:8443", Target{Host: "app.internal:8443", Scheme: "https"}},
		{"h2c://[::1]:50051", Target{Host: "[::1]:50051", Scheme: "http", H2C: true}},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"grpc://127.0.0.1:1", "h2c://127.0.0.1", "http://127.0.0.1:80/", "x:0", "x:abc", ":80"} {
		_, err := ParseTarget(in)
		var te *TargetError
		if !errors.As(err, &te) || te.Target != in || te.Want == "" {
			t.Errorf("ParseTarget(%q) error = %v, want a *TargetError naming it", in, err)
		}
	}
}
