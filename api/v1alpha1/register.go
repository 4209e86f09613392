package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group, Version, Kind and Resource of the Rollout.
const (
	Group      = "switchyard.dev"
	Version    = "v1alpha1"
	APIVersion = Group + "/" + Version
	Kind       = "Rollout"
	Resource   = "rollouts"
)

// SchemeGroupVersion is the group and version of this package's types.
var SchemeGroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// AddToScheme adds Rollout and RolloutList to a scheme (no registration
// happens at init).
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion, &Rollout{}, &RolloutList{})
	metav1.AddToGroupVersion(s, SchemeGroupVersion)
	return nil
}
