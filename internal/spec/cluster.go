package spec

import "strings"

// clusterProvided reports whether path is a field that a Kubernetes
// Rollout's cluster provides rather than its author: the Rollout has no
// listen address, TLS or spec.trafficRouter of a service file (its own
// trafficRouter is checked by api/v1alpha1), and its versions and stable
// version are the controller's revisions, which may have no ready pod yet.
// Validate of a Cluster service reports every other field as usual.
func clusterProvided(path string) bool {
	switch path {
	case "spec.listen", "spec.trafficRouter", "spec.stable", "spec.versions":
		return true
	}
	return strings.HasPrefix(path, "spec.tls.") || strings.HasPrefix(path, "spec.versions[")
}
