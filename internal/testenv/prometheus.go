package testenv

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server started by StartPrometheus.
type Prometheus struct {
	*Process
}

// URL is the server's base URL (http://127.0.0.1:PORT), for its HTTP API.
func (p *Prometheus) URL() string { return "http://" + p.Addr }

// StartPrometheus runs a real Prometheus that scrapes targets (host:port,
// path /metrics) every scrapeInterval, with its data in a private
// directory, and returns once it is ready (/-/ready answers 200); it is
// stopped on t.Cleanup. The test is skipped (or fails under CI) when
// prometheus is missing.
func StartPrometheus(t testing.TB, scrapeInterval time.Duration, targets ...string) *Prometheus {
	t.Helper()
	bin := RequireBinary(t, "prometheus")
	p := newProcess(t, "prometheus.yml")
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
  - job_name: test
    static_configs:
      - targets: [%[2]s]
`, scrapeInterval, strings.Join(quoted, ", "))
	args := []string{
		"--config.file=" + p.Config,
		"--storage.tsdb.path=" + filepath.Join(p.Dir, "data"),
		"--web.listen-address=" + p.Addr,
		"--log.level=warn",
	}
	startProcess(t, "prometheus", bin, args, p, conf, syscall.SIGTERM)
	client := &http.Client{Timeout: time.Second}
	WaitFor(t, startTimeout, func() bool {
		resp, err := client.Get("http://" + p.Addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "prometheus to be ready")
	return &Prometheus{Process: p}
}
