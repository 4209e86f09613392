// Package k8s holds the RBAC markers of what Switchyard's Kubernetes
// controller (internal/k8s/controller) needs, from which
// deploy/rbac/role.yaml is generated (go generate ./api/...): no Secrets,
// no wildcard, and every rule namespaced in effect when the ClusterRole is
// bound by a RoleBinding (a namespaced install).
//
// Rollouts, their status (the engine's state lives there) and finalizers
// (traffic restored to stable before a Rollout is deleted):
// +kubebuilder:rbac:groups=switchyard.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=switchyard.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=switchyard.dev,resources=rollouts/finalizers,verbs=update
//
// The slots' Deployments (created, scaled, their template set; removed by
// garbage collection through owner references, so no delete); a
// workloadRef Deployment is read, and only its replicas are ever written
// (patched to 0 by scaleDown onsuccess). ReplicaSets and Pods are read for
// readiness and revisions, EndpointSlices for the targets that serve:
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
//
// Services: spec.service's selector (blue-green), the preview Service, and
// the slots' Services of a Gateway API HTTPRoute:
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch
//
// The traffic routers' objects:
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;list;watch;update;patch
//
// Events of each rollout, and the Lease of leader election:
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update
package k8s
