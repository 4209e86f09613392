package gatewayapi_test

import (
	"errors"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/router/gatewayapi"
	"github.com/switchyard/switchyard/internal/spec"
)

func pathRule(path string, refs ...gatewayv1.HTTPBackendRef) gatewayv1.HTTPRouteRule {
	return gatewayv1.HTTPRouteRule{
		Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr(path)}}},
		BackendRefs: refs,
	}
}

func TestApply(t *testing.T) {
	tg := gatewayapi.Target{Namespace: "shop", HTTPRoute: "web", Service: "web",
		Slots: map[string]string{"v1": gatewayapi.SlotA, "v2": gatewayapi.SlotB}}
	canary := rollout.Routing{Stable: "v1", Canary: "v2", Weights: rollout.Weights{"v1": 90, "v2": 10}}
	stableRule := spec.Rule{Header: &spec.Match{Name: "x-stable", Value: "yes"}, To: spec.RoleStable}
	for _, tc := range []struct {
		name    string
		rules   []gatewayv1.HTTPRouteRule
		target  func(gatewayapi.Target) gatewayapi.Target
		routing rollout.Routing
		want    string // rule by rule: "matches -> refs"
		err     string
	}{
		{
			name:  "two owned rules, another backend kept (as written: no group or kind)",
			rules: []gatewayv1.HTTPRouteRule{pathRule("/api", backend("web", 80, nil), backend("audit", 81, ptr(int32(0)))), pathRule("/app", backend("web-b", 80, nil))},
			want:  "PathPrefix /api -> web-a:80=90,web-b:80=10,audit:81=0(not a core Service) | PathPrefix /app -> web-a:80=90,web-b:80=10",
		},
		{
			name:   "a stable rule: its value to stable, never to the canary, for every owned match",
			rules:  []gatewayv1.HTTPRouteRule{pathRule("/api", backend("web", 80, nil)), pathRule("/app", backend("web", 80, nil))},
			target: func(t gatewayapi.Target) gatewayapi.Target { t.Rules = []spec.Rule{stableRule}; return t },
			want: "PathPrefix /api x-stable=yes|PathPrefix /app x-stable=yes|PathPrefix /api x-stable=always|PathPrefix /app x-stable=always -> web-a:80=1 | " +
				"PathPrefix /api x-stable=never|PathPrefix /app x-stable=never -> web-b:80=1 | " +
				"PathPrefix /api -> web-a:80=90,web-b:80=10 | PathPrefix /app -> web-a:80=90,web-b:80=10",
		},
		{
			name:   "spec.service.port wins over the rule's",
			rules:  []gatewayv1.HTTPRouteRule{pathRule("/", backend("web", 80, nil))},
			target: func(t gatewayapi.Target) gatewayapi.Target { t.Port = 8443; return t },
			want:   "PathPrefix / -> web-a:8443=90,web-b:8443=10",
		},
		{
			name:    "a version with weight in no slot",
			rules:   []gatewayv1.HTTPRouteRule{pathRule("/", backend("web", 80, nil))},
			routing: rollout.Routing{Stable: "v1", Canary: "v3", Weights: rollout.Weights{"v1": 90, "v3": 10}},
			err:     `version "v3" has weight 10 but is in no slot`,
		},
		{
			name:  "two versions in one slot",
			rules: []gatewayv1.HTTPRouteRule{pathRule("/", backend("web", 80, nil))},
			target: func(t gatewayapi.Target) gatewayapi.Target {
				t.Slots = map[string]string{"v1": "a", "v2": "a"}
				return t
			},
			err: `versions "v1" and "v2" are both in slot "a"`,
		},
		{
			name:  "no port anywhere",
			rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "web"}}}}}},
			err:   `the backendRef to Service "web" has no port, and spec.service.port is unset`,
		},
		{
			name:  "a cookie rule",
			rules: []gatewayv1.HTTPRouteRule{pathRule("/", backend("web", 80, nil))},
			target: func(t gatewayapi.Target) gatewayapi.Target {
				t.Rules = []spec.Rule{{Cookie: &spec.Match{Name: "beta"}}}
				return t
			},
			err: "an HTTPRoute cannot match a cookie",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := tg
			if tc.target != nil {
				target = tc.target(tg)
			}
			rt := tc.routing
			if rt.Weights == nil {
				rt = canary
			}
			got, err := gatewayapi.Apply(tc.rules, target, rt)
			if tc.err != "" {
				if !errors.Is(err, gatewayapi.ErrMalformed) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Apply: %v, want ErrMalformed with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			var parts []string
			for _, r := range got {
				parts = append(parts, matches(r.Matches)+" -> "+refs(r.BackendRefs))
			}
			if s := strings.Join(parts, " | "); s != tc.want {
				t.Errorf("Apply =\n%s\nwant\n%s", s, tc.want)
			}
		})
	}
}
