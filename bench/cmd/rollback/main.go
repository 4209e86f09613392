// Command rollback measures what a bad version costs users before
// Switchyard rolls it back: it serves a stable version and a canary that
// fails a share of its requests, puts a steady load through `switchyard
// serve`, deploys the canary with `deploy --wait`, and reports the failed
// requests users saw and the time to the rollback, for each analysis
// configuration (the seed's Flagger settings and the shortest ones we
// recommend).
//
//	go run ./bench/cmd/rollback [-rate 100] [-fail 0.05] [-only recommended]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type scenario struct {
	name, strategy, analysis string
}

var scenarios = []scenario{
	{"flagger seed (stepWeight 10, maxWeight 50, interval 1m, threshold 5)",
		"canary: {stepWeight: 10, maxWeight: 50, interval: 1m}",
		"{interval: 1m, threshold: 5, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}"},
	// At 5% of 100 req/s the canary gets 5 req/s: a 30 s check sees 150
	// requests, over the 100 that minSamples asks for a 99% check.
	{"recommended (5% first, checks every 30s, threshold 2)",
		"canary: {steps: [{setWeight: 5}, {pause: {duration: 1m}}, {setWeight: 25}, {pause: {duration: 1m}}, {setWeight: 50}, {pause: {duration: 1m}}]}",
		"{interval: 30s, threshold: 2, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}"},
}

func main() {
	rate := flag.Int("rate", 100, "requests per second of load")
	fail := flag.Float64("fail", 0.05, "share of the canary's requests that fail with 500")
	bin := flag.String("switchyard", "", "switchyard binary (default: go build ./cmd/switchyard)")
	only := flag.String("only", "", "run only the scenario whose name starts with this")
	flag.Parse()
	if err := run(*rate, *fail, *bin, *only); err != nil {
		fmt.Fprintf(os.Stderr, "rollback: %v\n", err)
		os.Exit(1)
	}
}

func run(rate int, fail float64, bin, only string) error {
	dir, err := os.MkdirTemp("", "switchyard-rollback-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "switchyard")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/switchyard").CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	fmt.Printf("| analysis | load | canary failing | failed requests users saw | time to rollback | result |\n|---|---:|---:|---:|---:|---|\n")
	for _, sc := range scenarios {
		if only != "" && !strings.HasPrefix(sc.name, only) {
			continue
		}
		failed, took, result, err := measure(bin, dir, sc, rate, fail)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		fmt.Printf("| %s | %d req/s | %.0f%% | %d | %s | %s |\n", sc.name, rate, 100*fail, failed, took.Round(time.Second), result)
	}
	return nil
}

// backend serves one version; every 1/fail-th request fails.
func backend(version string, fail float64) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var n atomic.Int64
	every := int64(0)
	if fail > 0 {
		every = int64(1/fail + 0.5)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" && every > 0 && n.Add(1)%every == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, version)
	})}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func measure(bin, dir string, sc scenario, rate int, fail float64) (failed int64, took time.Duration, result string, err error) {
	blue, stopBlue, err := backend("blue", 0)
	if err != nil {
		return 0, 0, "", err
	}
	defer stopBlue()
	green, stopGreen, err := backend("green", fail)
	if err != nil {
		return 0, 0, "", err
	}
	defer stopGreen()
	listen, adminAddr := freeAddr(), freeAddr()
	state := filepath.Join(dir, fmt.Sprintf("state-%d", time.Now().UnixNano()))
	cfg := filepath.Join(dir, "web.yaml")
	doc := fmt.Sprintf(`apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  listen: %s
  versions:
    - {name: blue, targets: [%q]}
    - {name: green, targets: [%q]}
  stable: blue
  healthCheck: {path: /health, interval: 1s, timeout: 500ms}
  strategy:
    %s
  analysis: %s
`, listen, blue, green, sc.strategy, sc.analysis)
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		return 0, 0, "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := exec.CommandContext(ctx, bin, "serve", "-f", cfg, "--state-dir", state, "--admin", adminAddr, "--log-level", "warn")
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		return 0, 0, "", err
	}
	defer func() { serve.Process.Signal(os.Interrupt); serve.Wait() }()
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if res, err := c.Get("http://" + listen + "/"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, "", errors.New("switchyard did not start serving")
		}
		time.Sleep(100 * time.Millisecond) // polling for the listener to come up
	}

	// The load: rate requests a second, counted as users see them.
	var bad atomic.Int64
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithCancel(ctx)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	wg.Go(func() {
		defer tick.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			wg.Go(func() {
				res, err := c.Get("http://" + listen + "/")
				if err != nil {
					bad.Add(1)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode >= 500 {
					bad.Add(1)
				}
			})
		}
	})
	start := time.Now()
	deploy := exec.Command(bin, "deploy", "web", "--version", "green", "--wait", "--timeout", "30m", "--state-dir", state)
	out, derr := deploy.CombinedOutput()
	took = time.Since(start)
	stopLoad()
	wg.Wait()
	result = "promoted"
	if derr != nil {
		result = "rolled back"
		var ee *exec.ExitError
		if !errors.As(derr, &ee) || ee.ExitCode() != 1 {
			return 0, 0, "", fmt.Errorf("deploy: %v\n%s", derr, out)
		}
	}
	return bad.Load(), took, result, nil
}
