package proxy

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestResendRules checks replayable and retryable over both front ends'
// request types: the same request gets the same answer from each.
func TestResendRules(t *testing.T) {
	refused := errors.New("connect: connection refused")
	tests := []struct {
		name          string
		method, body  string
		header        map[string]string
		err           error
		replay, retry bool
	}{
		{"GET", "GET", "", nil, refused, true, true},
		{"HEAD", "HEAD", "", nil, refused, true, true},
		{"OPTIONS", "OPTIONS", "", nil, refused, true, true},
		{"POST", "POST", "", nil, refused, false, false},
		{"POST with a body", "POST", "x", nil, refused, false, false},
		{"GET with a body", "GET", "x", nil, refused, false, false},
		{"POST with Idempotency-Key", "POST", "", map[string]string{"Idempotency-Key": "k"}, refused, true, true},
		{"POST with X-Idempotency-Key", "POST", "", map[string]string{"X-Idempotency-Key": "k"}, refused, true, false},
		{"POST with an empty Idempotency-Key", "POST", "", map[string]string{"Idempotency-Key": ""}, refused, false, false},
		{"POST with a body and a key", "POST", "x", map[string]string{"Idempotency-Key": "k"}, refused, false, false},
		{"GET timed out", "GET", "", nil, os.ErrDeadlineExceeded, true, false},
		{"GET past its deadline", "GET", "", nil, context.DeadlineExceeded, true, false},
		{"GET cancelled", "GET", "", nil, context.Canceled, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr, err := http.NewRequest(tt.method, "http://x/", nil)
			if err != nil {
				t.Fatal(err)
			}
			var fr fasthttp.Request
			fr.Header.SetMethod(tt.method)
			if tt.body != "" {
				hr.Body = readCloser{strings.NewReader(tt.body)}
				fr.SetBodyString(tt.body)
			}
			for k, v := range tt.header {
				hr.Header.Set(k, v)
				fr.Header.Set(k, v)
			}
			views := []struct {
				name string
				v    resendView
			}{{"net/http", (*httpResend)(hr)}, {"fasthttp", (*fastResend)(&fr)}}
			for _, v := range views {
				if got := replayable(v.v); got != tt.replay {
					t.Errorf("%s: replayable = %v, want %v", v.name, got, tt.replay)
				}
				if got := retryable(v.v, tt.err); got != tt.retry {
					t.Errorf("%s: retryable(%v) = %v, want %v", v.name, tt.err, got, tt.retry)
				}
			}
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
