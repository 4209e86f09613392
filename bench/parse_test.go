package bench

import (
	"errors"
	"testing"
	"time"
)

// wrkOutput is real `wrk -t2 -c50 -d3s --latency` output (wrk 4.1.0).
const wrkOutput = `Running 3s test @ http://127.0.0.1:40123/
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.43us  501.22us  12.08ms   89.10%
    Req/Sec    31.02k     2.11k   35.40k    71.67%
  Latency Distribution
     50%  701.00us
     75%    0.98ms
     90%    1.31ms
     99%    2.64ms
  185234 requests in 3.00s, 22.79MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  61742.38
Transfer/sec:      7.60MB
`

// heyOutput is hey's summary output, shortened.
const heyOutput = `
Summary:
  Total:	3.0021 secs
  Slowest:	0.0310 secs
  Fastest:	0.0001 secs
  Average:	0.0021 secs
  Requests/sec:	23810.4512

Latency distribution:
  10% in 0.0005 secs
  50% in 0.0017 secs
  90% in 0.0040 secs
  99% in 0.0093 secs

Status code distribution:
  [200]	71400 responses
  [502]	80 responses

Error distribution:
  [3]	Get "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect: connection refused
`

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		parse func(string) (Result, error)
		in    string
		want  Result
	}{
		{"wrk", ParseWrk, wrkOutput, Result{RPS: 61742.38, P99: 2640 * time.Microsecond, Requests: 185234, Errors: 12}},
		{"wrk seconds latency", ParseWrk, "  Latency Distribution\n     99%    1.50s\nRequests/sec:  10.00\n", Result{RPS: 10, P99: 1500 * time.Millisecond}},
		{"hey", ParseHey, heyOutput, Result{RPS: 23810.4512, P99: 9300 * time.Microsecond, Requests: 71480, Errors: 83}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.in)
			if err != nil {
				t.Fatalf("parse error = %v", err)
			}
			// Float seconds from hey round; compare latency to the microsecond.
			got.P99 = got.P99.Round(time.Microsecond)
			if got != tt.want {
				t.Fatalf("parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMissingFigures(t *testing.T) {
	tests := []struct {
		name  string
		parse func(string) (Result, error)
		in    string
	}{
		{"wrk empty", ParseWrk, ""},
		{"wrk connection refused", ParseWrk, "unable to connect to 127.0.0.1:1 Connection refused\n"},
		{"wrk without --latency", ParseWrk, "Requests/sec:  100.00\n"},
		{"hey empty", ParseHey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.parse(tt.in); !errors.Is(err, ErrNoResult) {
				t.Fatalf("parse(%q) error = %v, want ErrNoResult", tt.in, err)
			}
		})
	}
}
