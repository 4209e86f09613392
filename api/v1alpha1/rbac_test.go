package v1alpha1

import (
	"os"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// TestRBACMinimal: the generated ClusterRole grants what the controller
// needs and nothing broad: no wildcard, no Secrets, no delete, and write
// access only where the controller writes.
func TestRBACMinimal(t *testing.T) {
	data, err := os.ReadFile("../../deploy/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatal(err)
	}
	grants := map[string][]string{} // "group/resource" -> verbs
	for _, r := range role.Rules {
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
			if slices.Contains(list, "*") {
				t.Errorf("rule %+v has a wildcard", r)
			}
		}
		if slices.Contains(r.Verbs, "delete") || slices.Contains(r.Verbs, "deletecollection") {
			t.Errorf("rule %+v deletes", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				grants[g+"/"+res] = append(grants[g+"/"+res], r.Verbs...)
			}
		}
	}
	for key := range grants {
		if key == "/secrets" || key == "/configmaps" {
			t.Errorf("the controller may read %s", key)
		}
	}
	want := map[string][]string{
		"switchyard.dev/rollouts":              {"get", "list", "watch", "update", "patch"},
		"switchyard.dev/rollouts/status":       {"get", "update", "patch"},
		"switchyard.dev/rollouts/finalizers":   {"update"},
		"apps/deployments":                     {"get", "list", "watch", "create", "update", "patch"},
		"apps/replicasets":                     {"get", "list", "watch"},
		"/pods":                                {"get", "list", "watch"},
		"/services":                            {"get", "list", "watch", "create", "update", "patch"},
		"discovery.k8s.io/endpointslices":      {"get", "list", "watch"},
		"gateway.networking.k8s.io/httproutes": {"get", "list", "watch", "update", "patch"},
		"networking.istio.io/virtualservices":  {"get", "list", "watch", "update", "patch"},
		"networking.istio.io/destinationrules": {"get", "list", "watch", "update", "patch"},
		"events.k8s.io/events":                 {"create", "patch"},
		"coordination.k8s.io/leases":           {"get", "create", "update"},
	}
	for key, verbs := range want {
		got := slices.Sorted(slices.Values(grants[key]))
		if !slices.Equal(got, slices.Sorted(slices.Values(verbs))) {
			t.Errorf("%s: verbs %v, want %v", key, got, verbs)
		}
	}
	for key := range grants {
		if _, ok := want[key]; !ok {
			t.Errorf("%s is granted; add it to this test if the controller needs it", key)
		}
	}
}
