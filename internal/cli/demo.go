package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/daemon"
	"github.com/switchyard/switchyard/internal/demo"
	"github.com/switchyard/switchyard/internal/spec"
)

const demoService = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: %s
  versions:
    - name: v1
      targets: [%q, %q]
    - name: v2
      targets: [%q]
    - name: v3
      targets: [%q]
  stable: v1
  healthCheck: {path: /health, interval: 500ms, timeout: 400ms, healthyThreshold: 1, unhealthyThreshold: 1}
  progressDeadline: 6s
  routing:
    rules:
      - header: {name: x-canary, value: "true"}
        to: canary
  strategy:
    canary:
      steps:
        - setWeight: 20
        - pause: {duration: 3s}
        - setWeight: 50
        - pause: {duration: 3s}
  analysis:
    interval: 2s
    threshold: 2
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
        # The demo sends the canary 10-25 requests/s; a real service keeps
        # the default (100 for min 99: one error in fewer cannot fail it).
        minSamples: 20
`

func (e *env) demoCommand() *cobra.Command {
	var (
		listen string
		stay   bool
		exit   bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a self-contained demo: a canary that succeeds, then a bad version rolled back",
		Long: `demo starts three versions of a toy app on loopback, the proxy on --listen
and a steady load, then rolls out v2 as a canary (promoted) and v3, whose health
checks fail (rolled back automatically). It ends by itself after that, unless
--stay keeps it serving for you to try commands against it (Ctrl-C stops it).
It needs nothing but this binary, and removes its temporary state directory
on every exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.runDemo(cmd.Context(), listen, stay)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the demo service")
	cmd.Flags().BoolVar(&stay, "stay", false, "keep serving after the scripted rollouts, until Ctrl-C or SIGTERM")
	// --exit was the way to end after the scripted part when staying was
	// the default; it is kept so that scripts using it still work.
	cmd.Flags().BoolVar(&exit, "exit", false, "end after the scripted rollouts (the default)")
	cmd.Flags().MarkHidden("exit")
	return cmd
}

func (e *env) runDemo(ctx context.Context, listen string, stay bool) (err error) {
	pal := e.color()
	say := func(format string, args ...any) {
		fmt.Fprintf(e.stdout, "\n%s %s\n", pal.bold("==>"), fmt.Sprintf(format, args...))
	}
	var apps []*demo.App
	defer func() {
		for _, a := range apps {
			a.Close()
		}
	}()
	for _, v := range []struct {
		name    string
		healthy bool
	}{{"v1", true}, {"v1", true}, {"v2", true}, {"v3", false}} {
		a, err := demo.StartApp(v.name, v.healthy)
		if err != nil {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("start demo app: %w", err)}
		}
		apps = append(apps, a)
	}
	doc := fmt.Sprintf(demoService, listen, apps[0].Addr, apps[1].Addr, apps[2].Addr, apps[3].Addr)
	var svcs []*spec.Service
	svcs, err = spec.Parse("demo.yaml", []byte(doc))
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("demo config: %w", err)}
	}
	stateDir, err := os.MkdirTemp("", "switchyard-demo-")
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	// Deferred first, so it runs last: after the daemon has stopped and
	// closed its store. main turns SIGINT and SIGTERM into a cancelled
	// ctx, so this runs on those exits too.
	defer os.RemoveAll(stateDir)
	defer func() {
		if ctx.Err() != nil && !stay {
			err = &ExitError{Code: exitSignaled, Err: fmt.Errorf("demo stopped before its end; removed %s", stateDir)}
		}
	}()
	if err := os.WriteFile(stateDir+"/demo.yaml", []byte(doc), 0o600); err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}

	// The daemon's warnings are kept and shown only if the demo fails.
	var logBuf strings.Builder
	log := slog.New(slog.NewTextHandler(&syncWriter{w: &logBuf}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defer func() {
		if err != nil && logBuf.Len() > 0 {
			fmt.Fprintf(e.stderr, "daemon log:\n%s", logBuf.String())
		}
	}()
	d, err := daemon.New(daemon.Options{Services: svcs, StateDir: stateDir, Admin: "127.0.0.1:0", Logger: log})
	if err != nil {
		return startErr(err)
	}
	dctx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(dctx) }()
	defer func() {
		stopDaemon()
		<-runErr
	}()

	// Wait for the admin API, then talk to the daemon exactly as the CLI does.
	var c *admin.Client
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		select {
		case err := <-runErr:
			runErr <- err
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("demo daemon: %w (is %s in use? try --listen 127.0.0.1:18080)", err, listen)}
		case <-time.After(50 * time.Millisecond):
		}
		if url := d.AdminURL(); url != "" {
			c = admin.NewClient(url, d.Token(), admin.WithUser("demo"))
		}
		if time.Now().After(deadline) {
			return &ExitError{Code: ExitFailed, Err: errors.New("demo daemon did not start in 10s")}
		}
	}
	st, err := c.Service(ctx, "web")
	if err != nil {
		return apiErr(err)
	}
	url := "http://" + st.Listen + "/"
	say("Switchyard is serving %s: v1 on two targets, v2 and v3 waiting (config: %s/demo.yaml)", pal.bold(url), stateDir)
	fmt.Fprintf(e.stdout, "    a steady load of 50 requests/s runs against it; every answer says which version served it\n")
	load := demo.StartLoad(ctx, url, 50)
	defer load.Stop()
	if err := e.waitHealthy(ctx, c); err != nil {
		return err
	}

	say("Canary rollout of v2: 20%% → pause 3s → 50%% → pause 3s → 100%%, checking success rate every 2s")
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "v2", Strategy: "canary"}); err != nil {
		return apiErr(err)
	}
	if err := e.watchDemo(ctx, c, load); err != nil {
		return err
	}

	say("Now v3, a bad version: its /health answers 500. Switchyard never sends it traffic and rolls it back after progressDeadline (6s)")
	if _, err := c.Deploy(ctx, "web", admin.DeployRequest{Version: "v3", Strategy: "canary"}); err != nil {
		return apiErr(err)
	}
	var xe *ExitError
	if err := e.watchDemo(ctx, c, load); !errors.As(err, &xe) || xe.Code != ExitFailed {
		return fmt.Errorf("expected v3 to be rolled back, got %v", err)
	}
	fmt.Fprintf(e.stdout, "%s %v\n", pal.red("✘"), xe.Err)
	ok, failed := load.Totals()
	say("Done: v2 is stable, v3 was rolled back; %d requests answered, %d failed", ok, failed)
	if !stay {
		fmt.Fprintf(e.stdout, "\n(demo over; its state directory is removed. `%s demo --stay` keeps it serving for you to try commands against it)\n", e.self)
		return nil
	}
	fmt.Fprintf(e.stdout, `
Try next, in another terminal (Ctrl-C or SIGTERM here stops the demo and removes %[2]s):
  curl %[1]s                                       # answered by v2
  curl -H 'x-canary: true' %[1]s                   # reaches the canary during a rollout
  %[3]s status web --state-dir %[2]s
  %[3]s history web --state-dir %[2]s
  %[3]s deploy web --version v1 --strategy blue-green --wait --state-dir %[2]s
  %[3]s rollback web --state-dir %[2]s
`, url, stateDir, e.self)
	<-ctx.Done()
	fmt.Fprintf(e.stdout, "\ndemo stopped; removed %s\n", stateDir)
	return nil
}

// waitHealthy waits until every v1 target is healthy.
func (e *env) waitHealthy(ctx context.Context, c *admin.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		st, err := c.Service(ctx, "web")
		if err == nil {
			n := 0
			for _, t := range st.Targets {
				if t.Version == "v1" && t.Healthy {
					n++
				}
			}
			if n == 2 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return &ExitError{Code: ExitFailed, Err: errors.New("demo: v1 did not become healthy in 15s")}
		case <-time.After(pollInterval):
		}
	}
}

// watchDemo follows the rollout in progress and prints, every second, the
// traffic each version served.
func (e *env) watchDemo(ctx context.Context, c *admin.Client, load *demo.Load) error {
	st, err := c.Service(ctx, "web")
	if err != nil {
		return apiErr(err)
	}
	id := rolloutOf(st, st.CanaryVersion)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				counts, failed := load.Counts()
				names := slices.Sorted(mapKeys(counts))
				parts := make([]string, 0, len(names))
				for _, n := range names {
					parts = append(parts, fmt.Sprintf("%s:%d", n, counts[n]))
				}
				fmt.Fprintf(e.stdout, "    %s\n", e.color().dim(fmt.Sprintf("traffic last second: %s  failed: %d", strings.Join(parts, " "), failed)))
			}
		}
	}()
	saved := e.output
	e.output, e.plain = "text", true
	err = e.watch(ctx, c, "web", id, 2*time.Minute)
	e.output, e.plain = saved, false
	close(stop)
	<-done
	return err
}

// syncWriter serialises writes from the daemon's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
