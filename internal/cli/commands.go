package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
)

// apiErr gives API refusals their exit codes: invalid input 2, the rest 1.
func apiErr(err error) error {
	var xe *ExitError
	if errors.As(err, &xe) {
		return err
	}
	if errors.Is(err, admin.ErrInvalid) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

func (e *env) statusCommand() *cobra.Command {
	var watch bool
	var k *kubeFlags
	cmd := &cobra.Command{
		Use:   "status [SERVICE]",
		Short: "Show services (or a cluster's Rollouts): phase, versions, weights, step, target health, verdicts",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if k.set() {
				kc, err := k.connect()
				if err != nil {
					return err
				}
				if watch {
					if len(args) == 0 {
						return usageErr("status --watch needs a ROLLOUT")
					}
					return e.watchWith(cmd.Context(), func(ctx context.Context) (admin.ServiceStatus, error) {
						ro, err := kc.get(ctx, args[0])
						if err != nil {
							return admin.ServiceStatus{}, err
						}
						return kc.status(ctx, ro)
					}, nil, args[0], 0, 0)
				}
				return e.kubeStatus(cmd.Context(), kc, args)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if watch {
				if len(args) == 0 {
					return usageErr("status --watch needs a SERVICE")
				}
				return e.watch(ctx, c, args[0], 0, 0)
			}
			if len(args) == 1 {
				st, err := c.Service(ctx, args[0])
				if err != nil {
					return apiErr(err)
				}
				return e.print(st, func(w io.Writer) { writeStatus(w, st, e.color()) })
			}
			all, err := c.Services(ctx)
			if err != nil {
				return apiErr(err)
			}
			return e.print(all, func(w io.Writer) { writeServices(w, all) })
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep showing live progress until Ctrl-C")
	k = e.addKubeFlags(cmd.Flags(), false)
	return cmd
}

func (e *env) deployCommand() *cobra.Command {
	var (
		req     admin.DeployRequest
		targets string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "deploy SERVICE --version V [--targets H:P,...] [--strategy canary|blue-green] [--wait]",
		Short: "Start a rollout of a new version",
		Long: `deploy starts a rollout of --version. With --targets the version's targets are
(re)defined; otherwise the version must be listed in the service file. With --wait
it shows live progress and exits 0 when the version is promoted, 1 when it was
rolled back or aborted (saying why), 3 when --timeout runs out (the rollout goes on).
A deploy while another rollout of the service runs is refused unless --force,
which aborts the running one first.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Version == "" {
				return usageErr("--version is required: the version to roll out")
			}
			switch req.Strategy {
			case "", rollout.StrategyCanary, rollout.StrategyBlueGreen:
			default:
				return usageErr("--strategy %q is not a strategy; use canary or blue-green", req.Strategy)
			}
			if targets != "" {
				for _, t := range strings.Split(targets, ",") {
					if t = strings.TrimSpace(t); t != "" {
						req.Targets = append(req.Targets, t)
					}
				}
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.Deploy(ctx, args[0], req)
			if err != nil {
				return apiErr(err)
			}
			id := rolloutOf(st, req.Version)
			if !wait {
				return e.print(st, func(w io.Writer) {
					fmt.Fprintf(w, "rollout #%d of %s %s started\n", id, args[0], req.Version)
				})
			}
			return e.watch(ctx, c, args[0], id, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Version, "version", "", "version to roll out (required)")
	f.StringVar(&targets, "targets", "", "comma-separated HOST:PORT targets of the version")
	f.StringVar((*string)(&req.Strategy), "strategy", "", "canary or blue-green (default: the service file's)")
	f.BoolVar(&req.Force, "force", false, "abort a running rollout of the service first")
	f.BoolVar(&wait, "wait", false, "show live progress and wait for the result")
	f.DurationVar(&timeout, "timeout", 0, "with --wait: give up waiting after this long (exit 3), e.g. 10m")
	return cmd
}

// rolloutOf finds the ID of the rollout a deploy started.
func rolloutOf(st admin.ServiceStatus, version string) uint64 {
	if st.Rollout != nil && st.Rollout.Version == version {
		return st.Rollout.ID
	}
	if st.LastRollout != nil {
		return st.LastRollout.ID
	}
	return 0
}

func (e *env) promoteCommand() *cobra.Command {
	var full bool
	var k *kubeFlags
	cmd := &cobra.Command{
		Use:   "promote SERVICE [--full]",
		Short: "Go past the current pause or approval gate; --full sends all traffic now",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ok, err := e.kubeCommand(cmd, k, args[0], v1alpha1.Request{Command: v1alpha1.CommandPromote, Full: full}); ok {
				return err
			}
			return e.command(cmd.Context(), args[0], "promote", func(ctx context.Context, c *admin.Client) (admin.ServiceStatus, error) {
				return c.Promote(ctx, args[0], full)
			})
		},
	}
	cmd.Flags().BoolVar(&full, "full", false, "skip every remaining step and send all traffic to the new version")
	k = e.addKubeFlags(cmd.Flags(), true)
	return cmd
}

func (e *env) abortCommand() *cobra.Command {
	var reason string
	var k *kubeFlags
	cmd := &cobra.Command{
		Use:   "abort SERVICE",
		Short: "Send all traffic back to the stable version now and end the rollout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ok, err := e.kubeCommand(cmd, k, args[0], v1alpha1.Request{Command: v1alpha1.CommandAbort, Reason: reason}); ok {
				return err
			}
			return e.command(cmd.Context(), args[0], "abort", func(ctx context.Context, c *admin.Client) (admin.ServiceStatus, error) {
				return c.Abort(ctx, args[0], reason)
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the history)")
	k = e.addKubeFlags(cmd.Flags(), true)
	return cmd
}

// simpleCommand builds pause, resume, retry and rollback.
func (e *env) simpleCommand(name, short string) *cobra.Command {
	var k *kubeFlags
	cmd := &cobra.Command{
		Use:   name + " SERVICE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ok, err := e.kubeCommand(cmd, k, args[0], v1alpha1.Request{Command: name}); ok {
				return err
			}
			return e.command(cmd.Context(), args[0], name, func(ctx context.Context, c *admin.Client) (admin.ServiceStatus, error) {
				switch name {
				case "pause":
					return c.Pause(ctx, args[0])
				case "resume":
					return c.Resume(ctx, args[0])
				case "retry":
					return c.Retry(ctx, args[0])
				default:
					return c.Rollback(ctx, args[0])
				}
			})
		},
	}
	k = e.addKubeFlags(cmd.Flags(), true)
	return cmd
}

// command runs one rollout command and prints the resulting status.
func (e *env) command(ctx context.Context, service, verb string, call func(context.Context, *admin.Client) (admin.ServiceStatus, error)) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	st, err := call(ctx, c)
	if err != nil {
		return apiErr(err)
	}
	return e.print(st, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s: done\n", verb, service)
		writeStatus(w, st, e.color())
	})
}

func (e *env) removeVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove-version SERVICE VERSION",
		Short: "Forget a version added by deploy --targets that nothing uses (its targets drain)",
		Long: `remove-version forgets a version that a deploy added with --targets: its targets
drain and are no longer probed. The stable version, the versions of a running
rollout, the previous version while it is kept for rollback and the versions the
service file lists are refused (edit the file and apply for those).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.command(cmd.Context(), args[0], "remove-version", func(ctx context.Context, c *admin.Client) (admin.ServiceStatus, error) {
				return c.RemoveVersion(ctx, args[0], args[1])
			})
		},
	}
}

func (e *env) historyCommand() *cobra.Command {
	var (
		limit    int
		verdicts bool
		k        *kubeFlags
	)
	cmd := &cobra.Command{
		Use:   "history SERVICE [ROLLOUT]",
		Short: "Show a service's rollout timeline, and why its last rollout ended as it did",
		Long: `history shows steps, decisions and the measurements that decided them (every
failed check, and each check's latest verdict before a step or a decision),
then says in one sentence why the rollout (ROLLOUT, or the latest that ended)
was promoted, rolled back or aborted; --verdicts shows every measurement, and
-o json/yaml gives all of it.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id uint64
			if len(args) == 2 {
				n, err := strconv.ParseUint(strings.TrimPrefix(args[1], "#"), 10, 64)
				if err != nil || n == 0 {
					return usageErr("ROLLOUT is %q; give a rollout number such as 3 (see the ROLLOUT column)", args[1])
				}
				id = n
			}
			text := e.output == "" || e.output == "text"
			fetch := limit
			if text && !verdicts || id != 0 {
				fetch = 0 // filter first, then keep the newest limit
			}
			h, err := e.fetchHistory(cmd.Context(), k, args[0], fetch)
			if err != nil {
				return err
			}
			if id != 0 {
				h = ofRollout(h, id)
				if len(h) == 0 {
					return &ExitError{Code: ExitFailed, Err: fmt.Errorf("service %q has no rollout #%d in its history", args[0], id)}
				}
			}
			return e.print(h, func(w io.Writer) {
				defer func() {
					if why := outcome(h); why != "" {
						fmt.Fprintln(w, why)
					}
				}()
				if verdicts {
					writeHistory(w, h)
					return
				}
				kept, hidden := decisive(h, limit)
				writeHistory(w, kept)
				if hidden > 0 {
					fmt.Fprintf(w, "(%d more measurements; --verdicts shows every one)\n", hidden)
				}
			})
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "newest entries to show (0: all)")
	cmd.Flags().BoolVar(&verdicts, "verdicts", false, "show every analysis measurement, not only those that decided")
	k = e.addKubeFlags(cmd.Flags(), false)
	return cmd
}

// fetchHistory reads a service's history from the admin API, or a
// Rollout's from its status (k set), the newest limit entries (0: all).
func (e *env) fetchHistory(ctx context.Context, k *kubeFlags, name string, limit int) ([]rollout.HistoryEntry, error) {
	if k.set() {
		kc, err := k.connect()
		if err != nil {
			return nil, err
		}
		h, err := kc.history(ctx, name)
		if err != nil {
			return nil, err
		}
		if limit > 0 && len(h) > limit {
			h = h[len(h)-limit:]
		}
		return h, nil
	}
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	h, err := c.History(ctx, name, limit)
	if err != nil {
		return nil, apiErr(err)
	}
	return h, nil
}
