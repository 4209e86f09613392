package controller

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/api/v1alpha1"
)

// ManagerOptions are how the controller runs on a cluster.
type ManagerOptions struct {
	// Namespace restricts the controller to one namespace (a namespaced
	// install, its ClusterRole bound by a RoleBinding); "" watches all.
	Namespace string
	// LeaderElect runs rollouts only while holding the Lease
	// LeaderElectionNamespace/switchyard-controller.
	LeaderElect             bool
	LeaderElectionNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod of leader election
	// (controller-runtime's 15s, 10s, 2s if zero).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddress serves controller-runtime's /metrics; "0" disables it.
	MetricsAddress string
}

// Scheme returns a scheme with the built-in types, the Rollout and the
// Gateway API (the HTTPRoutes of trafficRouter.gatewayAPI).
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := gatewayv1.Install(s); err != nil {
		return nil, err
	}
	return s, nil
}

// NewManager builds a controller-runtime manager with a Controller on it.
func NewManager(cfg *rest.Config, mo ManagerOptions, opts Options) (manager.Manager, *Controller, error) {
	scheme, err := Scheme()
	if err != nil {
		return nil, nil, err
	}
	mopts := manager.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: mo.MetricsAddress},
		HealthProbeBindAddress:        "0",
		LeaderElection:                mo.LeaderElect,
		LeaderElectionID:              Name,
		LeaderElectionNamespace:       mo.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
	}
	if mo.LeaderElectionNamespace == "" {
		mopts.LeaderElectionNamespace = mo.Namespace
	}
	if mo.LeaseDuration > 0 {
		mopts.LeaseDuration = &mo.LeaseDuration
	}
	if mo.RenewDeadline > 0 {
		mopts.RenewDeadline = &mo.RenewDeadline
	}
	if mo.RetryPeriod > 0 {
		mopts.RetryPeriod = &mo.RetryPeriod
	}
	if mo.Namespace != "" {
		mopts.Cache = cache.Options{DefaultNamespaces: map[string]cache.Config{mo.Namespace: {}}}
	}
	mgr, err := manager.New(cfg, mopts)
	if err != nil {
		return nil, nil, fmt.Errorf("controller manager: %w", err)
	}
	c, err := New(mgr, opts)
	if err != nil {
		return nil, nil, err
	}
	return mgr, c, nil
}

// Run runs the controller until ctx ends or leadership is lost (an error:
// the process must exit, as controller-runtime requires).
func Run(ctx context.Context, cfg *rest.Config, mo ManagerOptions, opts Options) error {
	mgr, _, err := NewManager(cfg, mo, opts)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}
