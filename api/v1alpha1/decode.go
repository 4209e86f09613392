package v1alpha1

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// Decode reads one Rollout from YAML or JSON strictly: an unknown or
// duplicate field anywhere, the pod template included, is an error (the
// CRD leaves the template's schema out, so the API server keeps unknown
// fields there). It neither defaults nor validates: see Rollout.Validate.
func Decode(data []byte) (*Rollout, error) {
	var r Rollout
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("decode rollout: %w", err)
	}
	if r.APIVersion != APIVersion || r.Kind != Kind {
		return nil, fmt.Errorf("decode rollout: apiVersion %q, kind %q: %w", r.APIVersion, r.Kind, ErrNotRollout)
	}
	return &r, nil
}
