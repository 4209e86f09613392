package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/switchyard/switchyard/api/v1alpha1"
)

// SlotServiceName is the name of the Service of one slot that an
// HTTPRoute's backendRefs name (trafficRouter.gatewayAPI):
// "<service>-a", "<service>-b".
func SlotServiceName(service, slot string) string { return service + "-" + slot }

// slotService is the Service of slot: spec.service's ports, selecting
// the slot's pods, owned by ro.
func slotService(ro *v1alpha1.Rollout, user *corev1.Service, slot string) *corev1.Service {
	ports := make([]corev1.ServicePort, 0, len(user.Spec.Ports))
	for _, p := range user.Spec.Ports {
		ports = append(ports, corev1.ServicePort{
			Name: p.Name, Protocol: p.Protocol, AppProtocol: p.AppProtocol, Port: p.Port, TargetPort: p.TargetPort,
		})
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: SlotServiceName(user.Name, slot), Namespace: ro.Namespace,
			Labels:          slotLabels(ro.Name, slot),
			OwnerReferences: []metav1.OwnerReference{ownerRef(ro)},
		},
		Spec: corev1.ServiceSpec{Selector: slotLabels(ro.Name, slot), Ports: ports},
	}
}

// ensureSlotServices keeps, for a Gateway API Rollout, the Services of its
// two slots, with spec.service's ports (created before any weight goes to
// a slot; updated when spec.service's ports change). Other routers need
// none: a selector or a DestinationRule subset picks the slot's pods.
func (c *Controller) ensureSlotServices(ctx context.Context, ro *v1alpha1.Rollout) error {
	if ro.Spec.TrafficRouter.GatewayAPI == nil {
		return nil
	}
	var user corev1.Service
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.Service.Name}
	if err := c.c.Get(ctx, key, &user); err != nil {
		return fmt.Errorf("service %s (spec.service.name): %w", key, err)
	}
	for _, s := range slotNames {
		want := slotService(ro, &user, s)
		var cur corev1.Service
		err := c.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: want.Name}, &cur)
		switch {
		case apierrors.IsNotFound(err):
			if err := c.c.Create(ctx, want); err != nil {
				return fmt.Errorf("create slot service %s: %w", want.Name, err)
			}
			c.recorder.Eventf(ro, want, corev1.EventTypeNormal, "SlotServiceCreated", "Deploy", "service %s selects the pods of slot %s", want.Name, s)
			continue
		case err != nil:
			return err
		}
		if !isControlledBy(cur.OwnerReferences, ro) {
			return &invalidError{"SlotNotOwned", fmt.Errorf("service %s exists and is not this Rollout's; rename or remove it", cur.Name)}
		}
		if maps.Equal(cur.Spec.Selector, want.Spec.Selector) && samePorts(cur.Spec.Ports, want.Spec.Ports) {
			continue
		}
		cur.Spec.Selector, cur.Spec.Ports = want.Spec.Selector, want.Spec.Ports
		if err := c.c.Update(ctx, &cur); err != nil {
			return fmt.Errorf("update slot service %s: %w", cur.Name, err)
		}
	}
	return nil
}

// samePorts compares the fields slotService sets (the API server fills in
// defaults such as the protocol).
func samePorts(have, want []corev1.ServicePort) bool {
	return slices.EqualFunc(have, want, func(h, w corev1.ServicePort) bool {
		if w.Protocol == "" {
			w.Protocol = h.Protocol
		}
		if w.TargetPort.IntVal == 0 && w.TargetPort.StrVal == "" {
			w.TargetPort = h.TargetPort
		}
		return h.Name == w.Name && h.Port == w.Port && h.Protocol == w.Protocol &&
			equality.Semantic.DeepEqual(h.TargetPort, w.TargetPort) && equality.Semantic.DeepEqual(h.AppProtocol, w.AppProtocol)
	})
}

// checkServices makes sure the Services the Rollout names exist:
// spec.service and, with trafficRouter.service, its previewService. A
// missing one is ServiceNotFound, naming the field, the Service and the
// fix; the Service watch (serviceToRollouts) brings the Rollout back when
// it is created.
func (c *Controller) checkServices(ctx context.Context, ro *v1alpha1.Rollout) error {
	refs := []struct{ field, name string }{{"spec.service.name", ro.Spec.Service.Name}}
	if r := ro.Spec.TrafficRouter.Service; r != nil && r.PreviewService != "" {
		refs = append(refs, struct{ field, name string }{"spec.trafficRouter.service.previewService", r.PreviewService})
	}
	var missing []error
	for _, ref := range refs {
		var svc corev1.Service
		err := c.c.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ref.name}, &svc)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, fmt.Errorf("%s is %q: no Service %q in namespace %q; create it, or set %s to an existing Service",
				ref.field, ref.name, ref.name, ro.Namespace, ref.field))
		case err != nil:
			return fmt.Errorf("get service %s/%s (%s): %w", ro.Namespace, ref.name, ref.field, err)
		}
	}
	if len(missing) > 0 {
		return &invalidError{reasonServiceNotFound, errors.Join(missing...)}
	}
	return nil
}
