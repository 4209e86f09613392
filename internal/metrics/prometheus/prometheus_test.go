package prometheus

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/metrics"
)

// apiServer answers /api/v1/query with the JSON of Prometheus's HTTP API
// for each query the test names (the shapes a real server returns; the
// daemon's tests run the queries against a real Prometheus).
func apiServer(t *testing.T) *httptest.Server {
	answers := map[string]string{
		"scalar":  `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"0.25"]}}`,
		"one":     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"green"},"value":[1700000000,"0.02"]}]}}`,
		"none":    `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		"two":     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"1"]},{"metric":{"pod":"b"},"value":[1,"2"]}]}}`,
		"range":   `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}`,
		"warned":  `{"status":"success","warnings":["results truncated"],"data":{"resultType":"scalar","result":[1,"3"]}}`,
		"invalid": `{"status":"error","errorType":"bad_data","error":"parse error at char 3"}`,
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		body, ok := answers[r.Form.Get("query")]
		if !ok {
			http.Error(w, "unknown query", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(body, `"status":"error"`) {
			w.WriteHeader(http.StatusBadRequest)
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestQuery(t *testing.T) {
	s := apiServer(t)
	q := New(&http.Client{Timeout: 5 * time.Second})
	tests := []struct {
		query   string
		want    float64
		err     string
		noData  bool
		warning string
	}{
		{query: "scalar", want: 0.25},
		{query: "one", want: 0.02},
		{query: "none", noData: true, err: "no data"},
		{query: "two", err: `returned 2 series, want one (aggregate it, e.g. sum(...)): {pod="a"}, {pod="b"}`},
		{query: "range", err: "range vector"},
		{query: "warned", want: 3, warning: "results truncated"},
		{query: "invalid", err: "parse error at char 3"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			v, err := q.Query(context.Background(), s.URL, tc.query)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Query(%s) = %v, %v; want an error containing %q", tc.query, v, err, tc.err)
				}
				if tc.noData != errors.Is(err, metrics.ErrNoData) {
					t.Errorf("Query(%s): errors.Is(ErrNoData) = %v, want %v", tc.query, !tc.noData, tc.noData)
				}
				return
			}
			if err != nil || v.Number != tc.want {
				t.Fatalf("Query(%s) = %v, %v; want %v", tc.query, v.Number, err, tc.want)
			}
			if tc.warning != "" && (len(v.Warnings) != 1 || v.Warnings[0] != tc.warning) {
				t.Errorf("warnings %q, want %q", v.Warnings, tc.warning)
			}
		})
	}
}
