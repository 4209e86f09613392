package spec

import "testing"

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
