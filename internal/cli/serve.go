package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/daemon"
	"github.com/switchyard/switchyard/internal/egress"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/statedir"
	"github.com/switchyard/switchyard/internal/store"
)

func (e *env) serveCommand() *cobra.Command {
	var (
		files     []string
		adminAddr string
		logLevel  string
		logFormat string
		listen    admin.ListenConfig
		egressCfg []string
	)
	cmd := &cobra.Command{
		Use:   "serve -f FILE [-f FILE ...]",
		Short: "Run the proxy, the rollout controller and the admin API",
		Long: `serve runs everything: one reverse proxy listener per service, health checks,
one rollout runner per service and the admin API (with /metrics).
SIGHUP re-reads the files; SIGTERM and SIGINT shut down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageErr("no service file: pass -f FILE")
			}
			log, err := newLogger(e.stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			// Refuse an exposed admin address before anything is opened
			// or bound.
			listen.Addr = adminAddr
			if _, err := listen.Check(); err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			allow, err := egress.ParseAllow(egressCfg)
			if err != nil {
				return usageErr("--egress-allow: %v", err)
			}
			warnLoosePermissions(log, e.stateDir)
			d, err := daemon.New(daemon.Options{
				Files: files, StateDir: e.stateDir, Admin: adminAddr, Logger: log,
				AdminTLSCert: listen.CertFile, AdminTLSKey: listen.KeyFile,
				AdminInsecureRemote: listen.InsecureRemote, AdminOpenMetrics: listen.OpenMetrics,
				EgressAllow: allow,
			})
			if err != nil {
				return startErr(err)
			}
			return runDaemon(cmd.Context(), d, log)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "service file (YAML); repeat for several")
	cmd.Flags().StringVar(&adminAddr, "admin", daemon.DefaultAdminAddr,
		"admin API listen address; one that is not loopback needs --admin-tls-cert/--admin-tls-key or --admin-insecure-remote")
	cmd.Flags().StringVar(&listen.CertFile, "admin-tls-cert", "", "serve the admin API over HTTPS with this PEM certificate (chain)")
	cmd.Flags().StringVar(&listen.KeyFile, "admin-tls-key", "", "the PEM private key of --admin-tls-cert")
	cmd.Flags().BoolVar(&listen.InsecureRemote, "admin-insecure-remote", false,
		"allow plain HTTP on a non-loopback --admin address (the token crosses the network unencrypted)")
	cmd.Flags().BoolVar(&listen.OpenMetrics, "admin-open-metrics", false,
		"on a non-loopback --admin address, serve /metrics without the token (by default it needs it there)")
	cmd.Flags().StringArrayVar(&egressCfg, "egress-allow", nil,
		"a CIDR or address that outbound calls (Prometheus queries) may reach although it is loopback, private or link-local; repeat for several")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// warnLoosePermissions warns, as OpenSSH does, about a state directory or a
// secret in it that other users may read or change. The admin token is
// refused outright by admin.EnsureToken; these are warnings because the
// files themselves are created 0600 and an existing 0755 directory is a
// common leftover, not yet a leak.
func warnLoosePermissions(log *slog.Logger, stateDir string) {
	for _, path := range []string{stateDir, filepath.Join(stateDir, store.FileName), filepath.Join(stateDir, "sticky.key")} {
		var loose *statedir.LooseError
		switch err := statedir.CheckPrivate(path); {
		case errors.As(err, &loose):
			log.Warn("state directory or file is accessible to other users", "path", loose.Path,
				"mode", fmt.Sprintf("%04o", loose.Mode), "access", loose.Access(), "fix", loose.Fix())
		case err != nil:
			log.Warn("cannot check the permissions of the state directory", "path", path, "err", err)
		}
	}
}

// startErr gives configuration errors exit code 2.
func startErr(err error) error {
	var ce *daemon.ConfigError
	if errors.As(err, &ce) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

// runDaemon runs d until SIGINT/SIGTERM, reloading on SIGHUP.
func runDaemon(ctx context.Context, d *daemon.Daemon, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-hup:
				if err := d.Reload(ctx); err != nil {
					log.Error("reload failed; the running configuration keeps serving", "err", err)
				} else {
					log.Info("configuration reloaded")
				}
			case <-done:
				return
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		return startErr(err)
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("--log-level %q is not a level; use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("--log-format %q is not a format; use text or json", format)
}

func (e *env) validateCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE [-f FILE ...]",
		Short: "Check service files; exit 0 when valid, 2 with every problem listed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageErr("no service file: pass -f FILE")
			}
			svcs, err := spec.LoadFiles(files...)
			if err != nil {
				return e.invalidConfig(err)
			}
			names := make([]string, 0, len(svcs))
			for _, s := range svcs {
				names = append(names, s.Metadata.Name)
			}
			out := map[string]any{"valid": true, "services": names}
			return e.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "valid: %d service(s): %s\n", len(svcs), strings.Join(names, ", "))
			})
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "service file (YAML); repeat for several")
	return cmd
}

func (e *env) applyCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f FILE [-f FILE ...]",
		Short: "Send service files to the running daemon (validated fully, then swapped in)",
		Long: `apply sends service documents to the running daemon. Services are replaced
by name, new ones are added; on any error nothing changes and the running
configuration keeps serving.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageErr("no service file: pass -f FILE")
			}
			// Validate here first: errors then name the user's own files and lines.
			if _, err := spec.LoadFiles(files...); err != nil {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("invalid configuration, nothing applied:\n%w", err)}
			}
			var docs []string
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return usageErr("read %s: %v", f, err)
				}
				docs = append(docs, string(b))
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			names, err := c.Apply(cmd.Context(), []byte(strings.Join(docs, "\n---\n")))
			if err != nil {
				return apiErr(err)
			}
			return e.print(map[string]any{"applied": names}, func(w io.Writer) {
				fmt.Fprintf(w, "applied: %s\n", strings.Join(names, ", "))
			})
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "service file (YAML); repeat for several")
	return cmd
}
