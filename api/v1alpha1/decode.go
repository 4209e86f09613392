package v1alpha1

import (
	"errors"
	"fmt"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// ErrNotRollout is returned by Decode for a document of another kind.
var ErrNotRollout = errors.New("not a switchyard.dev/v1alpha1 Rollout")

// Decode reads one Rollout from YAML or JSON strictly, as the API server
// does with strict field validation: an unknown, miscased or duplicate
// field anywhere, the pod template included, is an error naming its path
// (the CRD leaves the template's schema out, so the API server would keep
// unknown fields there). It neither defaults nor validates: see
// Rollout.Validate.
func Decode(data []byte) (*Rollout, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("decode rollout: %w", err)
	}
	var r Rollout
	strict, err := kjson.UnmarshalStrict(js, &r, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("decode rollout: %w", err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("decode rollout %q: %w", r.Name, errors.Join(strict...))
	}
	if r.APIVersion != APIVersion || r.Kind != Kind {
		return nil, fmt.Errorf("decode rollout: apiVersion %q, kind %q: %w", r.APIVersion, r.Kind, ErrNotRollout)
	}
	return &r, nil
}
