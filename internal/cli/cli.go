// Package cli is the switchyard command line: cobra commands that start the
// daemon or talk to it through the admin API.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/switchyard/switchyard/internal/admin"
)

// Exit codes, as PRODUCT.md promises.
const (
	ExitOK       = 0
	ExitFailed   = 1 // runtime failure, rolled back or aborted
	ExitUsage    = 2 // invalid usage or configuration
	ExitTimeout  = 3 // --wait/--timeout ran out; the rollout goes on
	exitSignaled = 130
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// ExitError carries an exit code with the error to print.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// env is what every command shares: streams, global flags, the environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	server   string
	token    string
	caCert   string
	stateDir string
	output   string
	// plain forces line-by-line progress even in a terminal (the demo
	// prints traffic lines between them).
	plain bool
	// heartbeat overrides progressHeartbeat (tests).
	heartbeat time.Duration
	// self is how the user runs this binary, for the commands the demo
	// suggests: "switchyard", "go run ./cmd/switchyard" or a path.
	self string
}

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	exe, _ := os.Executable()
	e.self = selfCommand(exe, exec.LookPath)
	root := e.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var xe *ExitError
	if errors.As(err, &xe) {
		if xe.Err != nil && xe.Err.Error() != "" {
			fmt.Fprintln(stderr, "Error:", xe.Err)
		}
		return xe.Code
	}
	fmt.Fprintln(stderr, "Error:", err)
	if errors.Is(err, admin.ErrInvalid) || isFlagError(err) {
		return ExitUsage
	}
	if errors.Is(err, context.Canceled) {
		return exitSignaled
	}
	return ExitFailed
}

// selfCommand returns what a user types to run the binary at exe again:
// "switchyard" when that is on PATH, "go run ./cmd/switchyard" when exe was
// built by go run (the README's first command, from the repository root),
// else exe itself.
func selfCommand(exe string, lookPath func(string) (string, error)) string {
	if exe == "" {
		return "switchyard"
	}
	if p, err := lookPath("switchyard"); err == nil && sameFile(p, exe) {
		return "switchyard"
	}
	// go run builds into $GOTMPDIR/go-build*/b001/exe/ and removes it on exit.
	for d := filepath.Dir(exe); d != filepath.Dir(d); d = filepath.Dir(d) {
		if strings.HasPrefix(filepath.Base(d), "go-build") {
			return "go run ./cmd/switchyard"
		}
	}
	return exe
}

// sameFile reports whether the paths a and b name one file.
func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

func isFlagError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "unknown flag") || strings.Contains(msg, "unknown command") ||
		strings.Contains(msg, "flag needs an argument") || strings.Contains(msg, "invalid argument") ||
		strings.Contains(msg, "accepts ") || strings.Contains(msg, "required flag")
}

func (e *env) rootCommand() *cobra.Command {
	use := "switchyard"
	if filepath.Base(os.Args[0]) == pluginName {
		use = "kubectl switchyard"
	}
	root := &cobra.Command{
		Use:   use,
		Short: "Zero-downtime, automatically verified blue-green and canary deployments",
		Long: `Switchyard moves traffic from the stable version of a service to a new one,
by blue-green switch or canary steps, watching health and metrics and rolling
back automatically. Start with "switchyard demo".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch e.output {
			case "", "text", "json", "yaml":
				return nil
			}
			return usageErr("-o %q is not a known output format; use text, json or yaml", e.output)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.server, "server", "", "admin API URL (default: found in --state-dir, or $SWITCHYARD_SERVER)")
	pf.StringVar(&e.token, "token", "", "admin API token (default: found in --state-dir, or $SWITCHYARD_TOKEN)")
	pf.StringVar(&e.caCert, "ca-cert", "", "PEM certificate(s) to trust for an https:// --server, e.g. serve's --admin-tls-cert ($SWITCHYARD_CA_CERT)")
	pf.StringVar(&e.stateDir, "state-dir", defaultStateDir(os.Getenv), "directory holding the store, the admin token and address ($SWITCHYARD_STATE_DIR)")
	pf.StringVarP(&e.output, "output", "o", "text", "output format: text, json or yaml")

	root.AddCommand(
		e.serveCommand(),
		e.controllerCommand(),
		e.validateCommand(),
		e.planCommand(),
		e.applyCommand(),
		e.statusCommand(),
		e.deployCommand(),
		e.promoteCommand(),
		e.simpleCommand("pause", "Pause a rollout where it is (weights unchanged)"),
		e.simpleCommand("resume", "Resume a paused rollout"),
		e.abortCommand(),
		e.simpleCommand("retry", "Restart the last aborted or rolled-back rollout"),
		e.simpleCommand("rollback", "Go back to the previous version after a finished rollout"),
		e.historyCommand(),
		e.removeVersionCommand(),
		e.versionCommand(),
		e.demoCommand(),
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	return root
}

// defaultStateDir is $SWITCHYARD_STATE_DIR, /var/lib/switchyard for root,
// or $XDG_STATE_HOME/switchyard (~/.local/state/switchyard).
func defaultStateDir(getenv func(string) string) string {
	if d := getenv("SWITCHYARD_STATE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/switchyard"
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "switchyard")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "switchyard")
	}
	return filepath.Join(os.TempDir(), "switchyard")
}

// client builds an admin API client from flags, environment or state dir.
func (e *env) client() (*admin.Client, error) {
	server, token := e.server, e.token
	if server == "" {
		server = e.getenv("SWITCHYARD_SERVER")
	}
	if token == "" {
		token = e.getenv("SWITCHYARD_TOKEN")
	}
	url, tok, err := admin.ResolveEndpoint(server, token, e.stateDir)
	if err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: err}
	}
	opts := []admin.ClientOption{admin.WithUser(whoami())}
	https := strings.HasPrefix(url, "https://")
	if e.caCert != "" && !https {
		return nil, usageErr("--ca-cert %s is for an https:// server, and the server is %s", e.caCert, url)
	}
	// The environment variable may be set for every call; it applies to
	// https servers only.
	caCert := e.caCert
	if caCert == "" && https {
		caCert = e.getenv(admin.EnvCACert)
	}
	if caCert != "" {
		pool, err := admin.LoadCACert(caCert)
		if err != nil {
			return nil, &ExitError{Code: ExitUsage, Err: err}
		}
		opts = append(opts, admin.WithRootCAs(pool))
	}
	return admin.NewClient(url, tok, opts...), nil
}

func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// print writes v as JSON or YAML, or calls text for the text format.
func (e *env) print(v any, text func(w io.Writer)) error {
	switch e.output {
	case "json":
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	text(e.stdout)
	return nil
}

func (e *env) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"version": Version}
			return e.print(v, func(w io.Writer) { fmt.Fprintln(w, "switchyard", Version) })
		},
	}
}

// timeoutCtx bounds ctx by d when d > 0.
func timeoutCtx(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
