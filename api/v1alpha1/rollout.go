package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/switchyard/switchyard/internal/spec"
)

// Labels the controller puts on the objects it creates. The workload
// design these types assume: two slots per Rollout, Deployments
// "<rollout>-a" and "<rollout>-b" labelled by rollout, slot and revision;
// a new revision goes to the idle slot, and traffic moves between the
// slots (the Service's selector, the slots' Services in an HTTPRoute, or
// the slots' subsets of a DestinationRule).
const (
	LabelRollout  = Group + "/rollout"
	LabelSlot     = Group + "/slot"
	LabelRevision = Group + "/revision"
	// Finalizer is set on a Rollout so that deleting it mid-rollout first
	// restores all traffic to the stable revision.
	Finalizer = Group + "/restore-traffic"
	// AnnotationRequest holds a command for the Rollout's running rollout
	// (a Request as JSON), set by `switchyard promote|pause|resume|abort|retry`
	// through the kubeconfig; the controller applies it once and answers in
	// status.lastRequest.
	AnnotationRequest = Group + "/request"
)

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=syr,categories=switchyard
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Stable",type=string,JSONPath=`.status.stableRevision`
// +kubebuilder:printcolumn:name="Canary",type=string,JSONPath=`.status.canaryRevision`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// Rollout runs a workload's new revisions through a verified rollout:
// blue-green or canary, with analysis, hooks and webhooks, by the same
// rules as a standalone service file.
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the workload, its Service, what moves its traffic and how a
	// new revision is rolled out.
	Spec RolloutSpec `json:"spec"`
	// Status is written by the controller only.
	// +optional
	Status RolloutStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// RolloutList is a list of Rollouts.
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Rollouts.
	Items []Rollout `json:"items"`
}

// +kubebuilder:validation:XValidation:rule="has(self.template) != has(self.workloadRef)",message="set exactly one of template (a pod template) or workloadRef (an existing Deployment)"

// RolloutSpec is the desired state of a Rollout. Strategy, analysis,
// hooks, webhooks, routing, notifications and progressDeadline are the
// service file's blocks, field for field (docs/configuration.md).
type RolloutSpec struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000

	// Replicas is how many pods each revision runs, with template (default
	// 1); with workloadRef, the Deployment's own replicas are used. A new
	// revision is scaled to this count before it takes all traffic.
	// +optional
	Replicas *int32 `json:"replicas,omitempty" range:"1,10000"`
	// Template is the pod template of the workload; a change to it starts a
	// rollout of a new revision. Exactly one of template or workloadRef.
	// Its schema is left out of the CRD (it would be 500 KB of the CRD's
	// 680 KB, past what `kubectl apply` can annotate); the API server
	// checks it when the controller writes a slot's Deployment, and
	// Decode refuses unknown fields in it.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Template *corev1.PodTemplateSpec `json:"template,omitempty"`
	// WorkloadRef names an existing Deployment in the Rollout's namespace
	// whose pod template is the workload (Argo Rollouts' workloadRef); the
	// Deployment stays the user's (GitOps tools keep owning it) and its
	// template changes start rollouts. Exactly one of template or
	// workloadRef.
	// +optional
	WorkloadRef *WorkloadRef `json:"workloadRef,omitempty"`
	// Service names the Service, in the Rollout's namespace, that clients
	// reach the workload through.
	Service ServiceRef `json:"service"`
	// TrafficRouter is what moves the traffic between revisions: exactly
	// one of service, gatewayAPI or istio.
	TrafficRouter TrafficRouter `json:"trafficRouter"`
	// Strategy is how a new revision replaces the stable one (the service
	// file's spec.strategy; default blue-green with autoPromote).
	// strategy.blueGreen.scaleDownDelay is how long the previous revision
	// stays scaled and routable for an instant rollback.
	// +optional
	Strategy spec.Strategy `json:"strategy,omitempty"`
	// Analysis is the metric analysis that runs during a rollout (the
	// service file's spec.analysis). In a cluster, metrics come from
	// Prometheus (provider prometheus).
	// +optional
	Analysis *spec.Analysis `json:"analysis,omitempty"`
	// Hooks are the lifecycle commands of a rollout (the service file's
	// spec.hooks); they run in the controller's container.
	// +optional
	Hooks *spec.Hooks `json:"hooks,omitempty"`
	// Webhooks are the HTTP calls and gates of a rollout (the service
	// file's spec.webhooks). A secretFile is a path in the controller's
	// container (a mounted Secret).
	// +optional
	Webhooks []spec.Webhook `json:"webhooks,omitempty"`
	// Routing holds the header and cookie rules that send matching
	// requests to the canary (the service file's spec.routing); with
	// gatewayAPI and istio they become header matches of the route.
	// +optional
	Routing spec.Routing `json:"routing,omitempty"`
	// Notifications are where the rollout's events are sent (the service
	// file's spec.notifications); a urlFile is a path in the controller's
	// container.
	// +optional
	Notifications []spec.Notification `json:"notifications,omitempty"`
	// ProgressDeadline is how long a rollout may wait for its new revision
	// to become ready before it is rolled back (default 10m).
	// +optional
	ProgressDeadline spec.Duration `json:"progressDeadline,omitempty" range:"1s,720h"`
}

// What the controller does with a workloadRef Deployment's own pods
// (spec.workloadRef.scaleDown).
const (
	// ScaleDownNever leaves the Deployment's replicas alone (the default).
	ScaleDownNever = "never"
	// ScaleDownOnSuccess scales the Deployment to 0 once the Rollout's
	// stable revision takes all the traffic with all its pods ready.
	ScaleDownOnSuccess = "onsuccess"
)

// WorkloadRef names an existing Deployment.
type WorkloadRef struct {
	// Name is the Deployment's name (apps/v1, in the Rollout's namespace).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// ScaleDown is what happens to the Deployment's own pods once the
	// Rollout's slots serve (Argo Rollouts' workloadRef.scaleDown): never
	// (default) leaves its replicas alone; onsuccess scales it to 0 once
	// the first revision the Rollout runs takes all the traffic with all
	// its pods ready, and keeps it there. The controller never changes
	// anything else of the Deployment (its template, labels, selector).
	// +kubebuilder:validation:Enum=never;onsuccess
	// +optional
	ScaleDown string `json:"scaleDown,omitempty"`
}

// ScaleDownPolicy is ScaleDown, defaulted: never when unset.
func (w *WorkloadRef) ScaleDownPolicy() string {
	if w.ScaleDown == "" {
		return ScaleDownNever
	}
	return w.ScaleDown
}

// ServiceRef names a Service.
type ServiceRef struct {
	// Name is the Service's name, in the Rollout's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535

	// Port is the Service port that traffic is routed to (an HTTPRoute's
	// backendRef port, a VirtualService destination's port); unset: the
	// Service's only port.
	// +optional
	Port int32 `json:"port,omitempty" range:"1,65535,unset"`
}

// +kubebuilder:validation:ExactlyOneOf=service;gatewayAPI;istio

// TrafficRouter selects what moves a Rollout's traffic: exactly one field.
type TrafficRouter struct {
	// Service switches all traffic at once by changing spec.service's
	// selector to the new revision's slot, after its pods are ready, never
	// leaving the selector empty (blue-green only: a selector has no
	// weights).
	// +optional
	Service *ServiceRouter `json:"service,omitempty"`
	// GatewayAPI sets the backendRef weights of an HTTPRoute's rules
	// between the two slots' Services, and adds a rule with the header
	// matches of spec.routing.rules that sends to the canary.
	// +optional
	GatewayAPI *GatewayAPIRouter `json:"gatewayAPI,omitempty"`
	// Istio sets the destination weights of a VirtualService's HTTP routes
	// between two subsets of a DestinationRule, one per slot, and adds a
	// route with the header matches of spec.routing.rules that sends to
	// the canary.
	// +optional
	Istio *IstioRouter `json:"istio,omitempty"`
}

// ServiceRouter is blue-green by Service selector.
type ServiceRouter struct {
	// PreviewService, when set, names a Service whose selector the
	// controller points at the new revision while it is tested before the
	// switch (previewDuration, manual approval), so smoke tests and people
	// can reach it; it must exist, and its selector is the controller's.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	PreviewService string `json:"previewService,omitempty"`
}

// GatewayAPIRouter moves traffic with a Gateway API HTTPRoute.
type GatewayAPIRouter struct {
	// HTTPRoute names the HTTPRoute (gateway.networking.k8s.io/v1, in the
	// Rollout's namespace) whose rules send traffic to spec.service: the
	// controller owns those rules' backendRefs (the slots' Services,
	// "<service>-a" and "<service>-b", with weights) and the canary rule
	// it adds for spec.routing.rules; every other rule stays the user's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	HTTPRoute string `json:"httpRoute"`
}

// IstioRouter moves traffic with an Istio VirtualService and DestinationRule.
type IstioRouter struct {
	// VirtualService is the VirtualService whose routes the controller
	// sets the weights of.
	VirtualService IstioVirtualService `json:"virtualService"`
	// DestinationRule is the DestinationRule that holds the slots' subsets.
	DestinationRule IstioDestinationRule `json:"destinationRule"`
}

// IstioVirtualService names a VirtualService and the routes in it that the
// controller owns.
type IstioVirtualService struct {
	// Name is the VirtualService's name (networking.istio.io, in the
	// Rollout's namespace).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Routes name the HTTP routes whose destinations the controller sets
	// (by their name field; to spec.service's host, one per subset, with
	// weights); unset: every HTTP route whose destination is the
	// Service's host. The canary route for spec.routing.rules is added
	// before the first of them.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Routes []string `json:"routes,omitempty"`
}

// IstioDestinationRule names the DestinationRule of the slots' subsets.
type IstioDestinationRule struct {
	// Name is the DestinationRule's name (networking.istio.io, in the
	// Rollout's namespace, for spec.service's host). The controller keeps
	// two subsets in it, SubsetPrefix + "a" and SubsetPrefix + "b", each
	// selecting one slot's pods by the switchyard.dev/slot label; its other
	// subsets and traffic policy stay the user's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// SubsetPrefix starts the names of the two subsets (default
	// "switchyard-", so "switchyard-a" and "switchyard-b").
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*)?$`
	// +optional
	SubsetPrefix string `json:"subsetPrefix,omitempty"`
}

// Condition types of a Rollout's status.
const (
	// ConditionValid is False when the spec is invalid; its message names
	// every bad field, the value and what would be valid.
	ConditionValid = "Valid"
	// ConditionProgressing is True while a rollout runs.
	ConditionProgressing = "Progressing"
	// ConditionAvailable is True while the stable revision has ready pods
	// and takes traffic.
	ConditionAvailable = "Available"
)

// Phases of a Rollout: the rollout engine's (internal/rollout.Phase).
// +kubebuilder:validation:Enum=Stable;Progressing;Paused;RollingBack;Degraded
type Phase string

// RolloutStatus is what the controller observed and did. The engine's
// own state (EngineState) is saved here before any of its actions runs,
// through the status subresource, with the resourceVersion it was read at.
type RolloutStatus struct {
	// ObservedGeneration is the spec generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are the Rollout's Valid, Progressing and Available conditions.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Phase is Stable, Progressing, Paused, RollingBack or Degraded.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Message says, in a sentence, why the Rollout is in its phase (the
	// reason of a pause or a rollback, with the numbers behind it).
	// +optional
	Message string `json:"message,omitempty"`
	// StableRevision is the revision that takes traffic when no rollout runs.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// CanaryRevision is the revision being rolled out, if any.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// CanaryWeight is the percentage of traffic the canary revision takes:
	// in force (appliedWeights) once the router confirmed any.
	// +optional
	CanaryWeight int32 `json:"canaryWeight,omitempty"`
	// Weights are the percentages of traffic by revision last asked of the
	// traffic router.
	// +optional
	Weights map[string]int32 `json:"weights,omitempty"`
	// AppliedWeights are the percentages the traffic router last
	// confirmed: the weights in force. They differ from weights while the
	// router has not applied (or failed to apply) the newest ones.
	// +optional
	AppliedWeights map[string]int32 `json:"appliedWeights,omitempty"`
	// CurrentStep is the step of the rollout in progress.
	// +optional
	CurrentStep *StepStatus `json:"currentStep,omitempty"`
	// Verdicts are the latest verdict of each analysis check.
	// +optional
	// +listType=map
	// +listMapKey=metric
	Verdicts []Verdict `json:"verdicts,omitempty"`
	// LastRequest is the controller's answer to the last command set in the
	// switchyard.dev/request annotation.
	// +optional
	LastRequest *RequestStatus `json:"lastRequest,omitempty"`
	// History is the Rollout's recent timeline, newest last: steps,
	// decisions, commands and the failed measurements behind them (at
	// most MaxHistory entries; every measurement is in the controller's
	// events and metrics).
	// +kubebuilder:validation:MaxItems=100
	// +optional
	History []HistoryEntry `json:"history,omitempty"`
	// EngineState is the rollout engine's persisted state
	// (internal/rollout.State as JSON): what a restarted controller resumes
	// from. It is the controller's; read the other fields instead.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	EngineState *runtime.RawExtension `json:"engineState,omitempty"`
}

// StepStatus is one compiled step of a rollout.
type StepStatus struct {
	// Index is the step's place in the compiled plan, from 0.
	Index int32 `json:"index"`
	// Count is how many steps the plan has.
	Count int32 `json:"count"`
	// Kind is HealthGate, SetWeight, Pause, Gate, Hook, Switch or Bake.
	// +kubebuilder:validation:Enum=HealthGate;SetWeight;Pause;Gate;Hook;Switch;Bake
	Kind string `json:"kind"`
	// Weight is the canary weight a SetWeight step sets.
	// +optional
	Weight int32 `json:"weight,omitempty"`
	// Name is the hook of a Hook step or the gate of a Gate step.
	// +optional
	Name string `json:"name,omitempty"`
	// StartedAt is when the step began.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
}

// Verdict is the latest verdict of one analysis check.
type Verdict struct {
	// Metric is the check's name (or "judge" for the sequential judge).
	Metric string `json:"metric"`
	// Result is passed, failed, inconclusive or error.
	// +kubebuilder:validation:Enum=passed;failed;inconclusive;error
	Result string `json:"result"`
	// Value is the measured value, as text (a percentage, milliseconds or
	// a query's result).
	// +optional
	Value string `json:"value,omitempty"`
	// Samples is how many requests the verdict was measured over.
	// +optional
	Samples int64 `json:"samples,omitempty"`
	// Reason explains an inconclusive, error or failed verdict.
	// +optional
	Reason string `json:"reason,omitempty"`
	// At is when the verdict was made.
	// +optional
	At *metav1.Time `json:"at,omitempty"`
}
