package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/switchyard/switchyard/internal/egress"
	"github.com/switchyard/switchyard/internal/k8s/controller"
)

func (e *env) controllerCommand() *cobra.Command {
	var (
		kubeconfig string
		mo         controller.ManagerOptions
		logLevel   string
		logFormat  string
		egressCfg  []string
	)
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Kubernetes controller of Rollouts",
		Long: `controller runs Switchyard's Kubernetes controller: one rollout runner per
Rollout (switchyard.dev/v1alpha1), with the same engine, analysis and hooks as
serve, its state kept in each Rollout's status. It uses the in-cluster
configuration, or --kubeconfig ($KUBECONFIG, ~/.kube/config) outside a cluster.
With --leader-elect only the holder of the Lease switchyard-controller runs
rollouts; losing it stops them at once and exits non-zero. See docs/kubernetes.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(e.stderr, logLevel, logFormat)
			if err != nil {
				return err
			}
			allow, err := egress.ParseAllow(egressCfg)
			if err != nil {
				return usageErr("--egress-allow: %v", err)
			}
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
			if err != nil {
				return usageErr("kubeconfig: %v", err)
			}
			if mo.LeaderElect && mo.Namespace == "" && mo.LeaderElectionNamespace == "" {
				if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
					mo.LeaderElectionNamespace = string(b)
				} else {
					return usageErr("--leader-elect needs a namespace for its Lease: pass --namespace or --leader-election-namespace")
				}
			}
			ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := controller.Run(ctx, cfg, mo, controller.Options{Log: log, EgressAllow: allow}); err != nil && ctx.Err() == nil {
				return &ExitError{Code: ExitFailed, Err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config)")
	f.StringVarP(&mo.Namespace, "namespace", "n", "", "watch Rollouts in this namespace only (a namespaced install); default: all namespaces")
	f.BoolVar(&mo.LeaderElect, "leader-elect", false, "run rollouts only while holding the Lease switchyard-controller (for several replicas)")
	f.StringVar(&mo.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: --namespace, or the pod's own)")
	f.StringVar(&mo.MetricsAddress, "metrics-address", ":8080", `address of the controller's /metrics; "0" disables it`)
	f.StringArrayVar(&egressCfg, "egress-allow", nil,
		"a CIDR or address that Prometheus queries and webhooks may reach although it is loopback, private or link-local (a Prometheus in the cluster); repeat for several")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "json", "log format: text or json")
	return cmd
}
