package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/rollout"
)

// The commands for a running rollout (status, promote, pause, resume,
// abort, retry, rollback, history) talk to a controller's Rollouts through
// a kubeconfig instead of a daemon's admin API when a Kubernetes flag is
// given or the binary runs as the kubectl plugin kubectl-switchyard. A
// command is a Request in the Rollout's switchyard.dev/request annotation
// (a merge patch: the user needs get and patch on rollouts, nothing on
// their status); the controller answers in status.lastRequest, which the
// CLI waits for.

// pluginName is the binary's name as a kubectl plugin ("kubectl
// switchyard ...").
const pluginName = "kubectl-switchyard"

// kubeFlags are the Kubernetes flags of one command.
type kubeFlags struct {
	kubeconfig string
	context    string
	namespace  string
	timeout    time.Duration
	set        func() bool
}

// addKubeFlags adds the Kubernetes flags to a command's flags; wait says
// whether the command waits for the controller's answer (--timeout).
func (e *env) addKubeFlags(f *pflag.FlagSet, wait bool) *kubeFlags {
	k := &kubeFlags{}
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "talk to a cluster's Rollouts through this kubeconfig (default $KUBECONFIG, ~/.kube/config when another Kubernetes flag is given)")
	f.StringVar(&k.context, "context", "", "kubeconfig context to use (a cluster's Rollouts)")
	f.StringVarP(&k.namespace, "namespace", "n", "", "namespace of the Rollout (default: the context's)")
	if wait {
		f.DurationVar(&k.timeout, "timeout", 30*time.Second, "on a cluster: how long to wait for the controller's answer (exit 3)")
	}
	k.set = func() bool {
		return f.Changed("kubeconfig") || f.Changed("context") || f.Changed("namespace") ||
			filepath.Base(os.Args[0]) == pluginName
	}
	return k
}

// kube is a cluster's Rollouts in one namespace.
type kube struct {
	c         client.Client
	namespace string
}

// connect builds the client from the kubeconfig, as kubectl would.
func (k *kubeFlags) connect() (*kube, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	overrides.Context.Namespace = k.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("kubeconfig: %w (set --kubeconfig or $KUBECONFIG, and --context)", err)}
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("kubeconfig namespace: %w", err)}
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, &ExitError{Code: ExitFailed, Err: fmt.Errorf("kubernetes client: %w", err)}
	}
	return &kube{c: c, namespace: ns}, nil
}

// kubeErr words an API error about the Rollout name.
func (k *kube) kubeErr(name string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("no Rollout %q in namespace %q (kubectl get rollouts.switchyard.dev -n %s lists them)", name, k.namespace, k.namespace)}
	case apierrors.IsForbidden(err):
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%w (the switchyard CLI needs get, list and patch on rollouts.switchyard.dev in namespace %q: docs/kubernetes.md#the-cli)", err, k.namespace)}
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

func (k *kube) get(ctx context.Context, name string) (*v1alpha1.Rollout, error) {
	var ro v1alpha1.Rollout
	if err := k.c.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: name}, &ro); err != nil {
		return nil, k.kubeErr(name, err)
	}
	return &ro, nil
}

// status renders a Rollout as the admin API renders a service: its
// targets are its slots' pods, by revision and readiness (left out when
// the user may not list pods).
func (k *kube) status(ctx context.Context, ro *v1alpha1.Rollout) (admin.ServiceStatus, error) {
	st, _, err := ro.Status.LoadEngineState()
	if err != nil {
		return admin.ServiceStatus{}, &ExitError{Code: ExitFailed, Err: fmt.Errorf("rollout %s: %w", ro.Name, err)}
	}
	out := admin.StatusOf(ro.Name, st, time.Now())
	if c := condition(ro, v1alpha1.ConditionValid); c != nil && c.Status == metav1.ConditionFalse {
		out.Message = strings.TrimSpace(out.Message + " " + c.Reason + ": " + c.Message)
	}
	var pods corev1.PodList
	if err := k.c.List(ctx, &pods, client.InNamespace(ro.Namespace), client.MatchingLabels{v1alpha1.LabelRollout: ro.Name}); err == nil {
		for _, p := range pods.Items {
			out.Targets = append(out.Targets, admin.TargetStatus{
				Version: p.Labels[v1alpha1.LabelRevision], Address: p.Name + " " + p.Status.PodIP, Healthy: podReady(&p),
			})
		}
		slices.SortFunc(out.Targets, func(a, b admin.TargetStatus) int { return strings.Compare(a.Version+a.Address, b.Version+b.Address) })
	}
	return out, nil
}

func condition(ro *v1alpha1.Rollout, typ string) *metav1.Condition {
	for i := range ro.Status.Conditions {
		if ro.Status.Conditions[i].Type == typ {
			return &ro.Status.Conditions[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// kubeStatus is status on a cluster: one Rollout, or all of the namespace.
func (e *env) kubeStatus(ctx context.Context, k *kube, args []string) error {
	if len(args) == 1 {
		ro, err := k.get(ctx, args[0])
		if err != nil {
			return err
		}
		st, err := k.status(ctx, ro)
		if err != nil {
			return err
		}
		return e.print(st, func(w io.Writer) { writeStatus(w, st, e.color()) })
	}
	var list v1alpha1.RolloutList
	if err := k.c.List(ctx, &list, client.InNamespace(k.namespace)); err != nil {
		return k.kubeErr("", err)
	}
	all := make([]admin.ServiceStatus, 0, len(list.Items))
	for i := range list.Items {
		st, err := k.status(ctx, &list.Items[i])
		if err != nil {
			return err
		}
		all = append(all, st)
	}
	slices.SortFunc(all, func(a, b admin.ServiceStatus) int { return strings.Compare(a.Name, b.Name) })
	return e.print(all, func(w io.Writer) { writeServices(w, all) })
}

// kubeHistory is a Rollout's status.history as the engine's entries.
func (k *kube) history(ctx context.Context, name string) ([]rollout.HistoryEntry, error) {
	ro, err := k.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return ro.Status.EngineHistory(), nil
}

// request sets req in the Rollout's annotation and waits for the
// controller's answer: done (the Rollout's status is printed), refused
// (exit 1 with the controller's reason) or none within timeout (exit 3).
func (e *env) request(ctx context.Context, k *kube, name string, timeout time.Duration, req v1alpha1.Request) error {
	var id [8]byte
	_, _ = rand.Read(id[:])
	req.ID, req.By = hex.EncodeToString(id[:]), whoami()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{v1alpha1.AnnotationRequest: req.String()}}})
	if err != nil {
		return err
	}
	target := &v1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: k.namespace, Name: name}}
	if err := k.c.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return k.kubeErr(name, err)
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var ro *v1alpha1.Rollout
	for {
		if ro, err = k.get(wctx, name); err != nil && wctx.Err() == nil {
			return err
		}
		if ro != nil && ro.Status.LastRequest != nil && ro.Status.LastRequest.ID == req.ID {
			break
		}
		select {
		case <-tick.C:
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			why := "is the controller running? (kubectl get deploy -n switchyard-system; its logs say why)"
			if ro != nil {
				if c := condition(ro, v1alpha1.ConditionValid); c != nil && c.Status == metav1.ConditionFalse {
					why = fmt.Sprintf("the Rollout is not valid: %s: %s", c.Reason, c.Message)
				}
			}
			return &ExitError{Code: ExitTimeout, Err: fmt.Errorf("%s %s: no answer from the controller within %s (the request stays set and may still be applied); %s",
				req.Command, name, timeout, why)}
		}
	}
	ans := ro.Status.LastRequest
	if ans.Result != v1alpha1.RequestDone {
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("%s %s refused: %s", req.Command, name, ans.Message)}
	}
	st, err := k.status(ctx, ro)
	if err != nil {
		return err
	}
	return e.print(st, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s: done\n", req.Command, name)
		writeStatus(w, st, e.color())
	})
}

// kubeCommand runs a command for a running rollout on a cluster, when
// the command's Kubernetes flags ask for it (handled false otherwise).
func (e *env) kubeCommand(cmd *cobra.Command, k *kubeFlags, name string, req v1alpha1.Request) (handled bool, err error) {
	if !k.set() {
		return false, nil
	}
	kc, err := k.connect()
	if err != nil {
		return true, err
	}
	return true, e.request(cmd.Context(), kc, name, k.timeout, req)
}
