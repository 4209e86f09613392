// +kubebuilder:object:generate=true

package spec

// The types of this package are embedded in the Kubernetes Rollout
// (api/v1alpha1), so they get generated DeepCopy methods
// (zz_generated.deepcopy.go) and carry kubebuilder validation markers
// for the CRD's schema, each in a comment group of its own above the doc
// comment so that docs/configuration.md does not show them. The markers
// repeat the range tags and the fixed sets of names; a test in
// api/v1alpha1 keeps them equal. Regenerate with `go generate ./api/...`.
