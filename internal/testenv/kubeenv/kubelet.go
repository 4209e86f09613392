package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// NodeName is the node that the kubelet stand-in registers and binds pods
// to.
const NodeName = "switchyard-test-node"

// PodIPRange is where the kubelet stand-in takes pod IPs from: 198.18.0.0/15,
// reserved for benchmarking (RFC 2544) and routed nowhere. Nothing connects to
// these addresses; they are data in the API. Loopback addresses would be
// nicer but cannot be used: the apiserver rejects EndpointSlice and
// Endpoints addresses in 127.0.0.0/8 ("may not be in the loopback range"),
// so the endpoint controllers could not publish the pods.
var PodIPRange = netip.MustParsePrefix("198.18.0.0/15")

// resyncInterval is how often the stand-in re-lists its pods besides
// watching them, so that a failed write is retried.
const resyncInterval = 2 * time.Second

// KubeletOptions chooses the pods a kubelet stand-in plays for.
type KubeletOptions struct {
	// Namespace of the pods; "" for all namespaces.
	Namespace string
	// Selector is a label selector ("app=web,slot in (a,b)"); "" selects
	// every pod.
	Selector string
	// Ready decides whether a pod is reported ready; nil reports every pod
	// ready. A pod that is not ready is still Running with an IP. Call
	// Refresh after the answer changes.
	Ready func(*corev1.Pod) bool
}

// Kubelet plays the kubelet's part for the pods it selects (no kubelet
// runs): it binds unscheduled pods to NodeName, reports them Running and
// Ready with a distinct IP from PodIPRange, and finishes the deletion of
// terminating pods (a kubelet would stop their containers first). With
// kube-controller-manager running, Deployment status, EndpointSlices and
// Service selector switches then behave as on a cluster.
type Kubelet struct {
	k       *Kube
	opts    KubeletOptions
	cancel  context.CancelFunc
	done    chan struct{}
	refresh chan struct{}

	mu   sync.Mutex
	errs []error // the last few failed writes, for failure messages
}

// RunKubelet registers NodeName (once per Kube) and starts a kubelet
// stand-in for the pods opts selects; it stops on t.Cleanup. Several
// stand-ins may run on one Kube for disjoint sets of pods.
func (k *Kube) RunKubelet(t testing.TB, opts KubeletOptions) *Kubelet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.registerNode(ctx); err != nil {
		t.Fatalf("register node %s: %v", NodeName, err)
	}
	if opts.Selector != "" {
		if _, err := metav1.ParseToLabelSelector(opts.Selector); err != nil {
			t.Fatalf("kubelet stand-in selector %q: %v", opts.Selector, err)
		}
	}
	runCtx, stop := context.WithCancel(context.Background())
	kl := &Kubelet{k: k, opts: opts, cancel: stop, done: make(chan struct{}), refresh: make(chan struct{}, 1)}
	go func() { // owned by kl: Stop waits for done
		defer close(kl.done)
		kl.run(runCtx)
	}()
	t.Cleanup(kl.Stop)
	return kl
}

// Stop stops the stand-in and waits for it. It is idempotent.
func (kl *Kubelet) Stop() {
	kl.cancel()
	<-kl.done
}

// Refresh makes the stand-in look at all its pods again now, for example
// after Ready's answer changed.
func (kl *Kubelet) Refresh() {
	select {
	case kl.refresh <- struct{}{}:
	default:
	}
}

// Errors returns the last failed writes of the stand-in (conflicts are
// normal and not kept).
func (kl *Kubelet) Errors() []error {
	kl.mu.Lock()
	defer kl.mu.Unlock()
	return append([]error(nil), kl.errs...)
}

func (kl *Kubelet) record(err error) {
	if err == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) || errors.Is(err, context.Canceled) {
		return
	}
	kl.mu.Lock()
	defer kl.mu.Unlock()
	kl.errs = append(kl.errs, err)
	if len(kl.errs) > 10 {
		kl.errs = kl.errs[len(kl.errs)-10:]
	}
}

// run lists and watches the pods until ctx ends, syncing each.
func (kl *Kubelet) run(ctx context.Context) {
	pods := kl.k.Clientset.CoreV1().Pods(kl.opts.Namespace)
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	for ctx.Err() == nil {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: kl.opts.Selector})
		if err != nil {
			kl.record(fmt.Errorf("list pods: %w", err))
			select {
			case <-ctx.Done():
			case <-resync.C:
			}
			continue
		}
		for i := range list.Items {
			kl.record(kl.sync(ctx, &list.Items[i]))
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: kl.opts.Selector, ResourceVersion: list.ResourceVersion})
		if err != nil {
			kl.record(fmt.Errorf("watch pods: %w", err))
			continue
		}
		kl.watch(ctx, w, resync.C)
		w.Stop()
	}
}

// watch syncs the pods of w's events until w ends, ctx ends, a refresh is
// asked for or the resync ticks (then run lists again).
func (kl *Kubelet) watch(ctx context.Context, w watch.Interface, resync <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kl.refresh:
			return
		case <-resync:
			return
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			if ev.Type == watch.Deleted {
				kl.k.ips.release(pod.UID)
				continue
			}
			kl.record(kl.sync(ctx, pod))
		}
	}
}

// sync does the kubelet's next step for pod.
func (kl *Kubelet) sync(ctx context.Context, pod *corev1.Pod) error {
	pods := kl.k.Clientset.CoreV1().Pods(pod.Namespace)
	switch {
	case pod.DeletionTimestamp != nil:
		if pod.Spec.NodeName != NodeName && pod.Spec.NodeName != "" {
			return nil
		}
		// The containers are "stopped": finish the graceful deletion, as
		// the kubelet does once they have exited.
		zero := int64(0)
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		return nil
	case pod.Spec.NodeName == "":
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: NodeName},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("bind pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		return nil // the bound pod comes back through the watch
	case pod.Spec.NodeName != NodeName:
		return nil // someone else's
	}
	ready := kl.opts.Ready == nil || kl.opts.Ready(pod)
	ip, err := kl.k.ips.get(pod.UID)
	if err != nil {
		return err
	}
	status, changed := runningStatus(pod, ip, ready, metav1.Now())
	if !changed {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = status
	if _, err := pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// runningStatus returns pod's status as a kubelet would report it once all
// containers run (ready or not), and whether it differs from the current
// one. Fields the stand-in does not own (qosClass, ...) are kept.
func runningStatus(pod *corev1.Pod, ip netip.Addr, ready bool, now metav1.Time) (corev1.PodStatus, bool) {
	s := *pod.Status.DeepCopy()
	changed := false
	set := func(cur *string, want string) {
		if *cur != want {
			*cur = want
			changed = true
		}
	}
	phase := string(s.Phase)
	set(&phase, string(corev1.PodRunning))
	s.Phase = corev1.PodPhase(phase)
	set(&s.PodIP, ip.String())
	set(&s.HostIP, "127.0.0.1")
	if len(s.PodIPs) != 1 || s.PodIPs[0].IP != ip.String() {
		s.PodIPs = []corev1.PodIP{{IP: ip.String()}}
		changed = true
	}
	if len(s.HostIPs) != 1 || s.HostIPs[0].IP != "127.0.0.1" {
		s.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
		changed = true
	}
	if s.StartTime == nil {
		s.StartTime = &now
		changed = true
	}
	status := func(b bool) corev1.ConditionStatus {
		if b {
			return corev1.ConditionTrue
		}
		return corev1.ConditionFalse
	}
	for _, c := range []struct {
		typ    corev1.PodConditionType
		status corev1.ConditionStatus
	}{
		{corev1.PodScheduled, corev1.ConditionTrue},
		{corev1.PodInitialized, corev1.ConditionTrue},
		{corev1.ContainersReady, status(ready)},
		{corev1.PodReady, status(ready)},
	} {
		if setCondition(&s.Conditions, c.typ, c.status, now) {
			changed = true
		}
	}
	if st := containerStatuses(pod.Spec.Containers, s.ContainerStatuses, ready, false, now); st != nil {
		s.ContainerStatuses = st
		changed = true
	}
	if st := containerStatuses(pod.Spec.InitContainers, s.InitContainerStatuses, false, true, now); st != nil {
		s.InitContainerStatuses = st
		changed = true
	}
	return s, changed
}

// setCondition sets condition typ to status, with a new transition time
// when it changes, and reports whether anything changed.
func setCondition(conds *[]corev1.PodCondition, typ corev1.PodConditionType, status corev1.ConditionStatus, now metav1.Time) bool {
	for i := range *conds {
		c := &(*conds)[i]
		if c.Type != typ {
			continue
		}
		if c.Status == status {
			return false
		}
		c.Status, c.LastTransitionTime, c.Reason, c.Message = status, now, "", ""
		return true
	}
	*conds = append(*conds, corev1.PodCondition{Type: typ, Status: status, LastTransitionTime: now})
	return true
}

// containerStatuses returns the statuses of containers as running (or, for
// init containers, completed), or nil when cur already says so.
func containerStatuses(containers []corev1.Container, cur []corev1.ContainerStatus, ready, completed bool, now metav1.Time) []corev1.ContainerStatus {
	if len(containers) == 0 {
		return nil
	}
	same := len(cur) == len(containers)
	for i := 0; same && i < len(cur); i++ {
		c := cur[i]
		running := c.State.Running != nil
		if completed {
			running = c.State.Terminated != nil
		}
		same = c.Name == containers[i].Name && c.Ready == ready && running
	}
	if same {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(containers))
	for i, c := range containers {
		started := !completed
		cs := corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "switchyard-test://" + c.Image,
			ContainerID: "switchyard-test://" + c.Name,
			Ready:       ready,
			Started:     &started,
		}
		if completed {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}
		} else {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		}
		out[i] = cs
	}
	return out
}

// registerNode creates NodeName, Ready, on 127.0.0.1, once per Kube.
func (k *Kube) registerNode(ctx context.Context) error {
	k.nodeOnce.Do(func() { k.nodeErr = k.createNode(ctx) })
	return k.nodeErr
}

func (k *Kube) createNode(ctx context.Context) error {
	nodes := k.Clientset.CoreV1().Nodes()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:   NodeName,
		Labels: map[string]string{corev1.LabelHostname: NodeName, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"},
	}}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = nodes.Get(ctx, NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
	created.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet stand-in of kubeenv", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: corev1.NodeHostName, Address: NodeName},
		},
		NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "v0.0.0-kubeenv"},
	}
	_, err = nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

// ipAllocator hands out distinct pod IPs from PodIPRange.
type ipAllocator struct {
	mu    sync.Mutex
	next  netip.Addr
	byUID map[types.UID]netip.Addr
	free  []netip.Addr
}

// get returns uid's IP, allocating one on first use.
func (a *ipAllocator) get(uid types.UID) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.byUID[uid]; ok {
		return ip, nil
	}
	if a.byUID == nil {
		a.byUID = map[types.UID]netip.Addr{}
		a.next = PodIPRange.Addr().Next() // skip the network address
	}
	var ip netip.Addr
	switch {
	case a.next.IsValid() && PodIPRange.Contains(a.next):
		ip, a.next = a.next, a.next.Next()
	case len(a.free) > 0:
		ip, a.free = a.free[0], a.free[1:]
	default:
		return netip.Addr{}, fmt.Errorf("pod IPs of %v exhausted", PodIPRange)
	}
	a.byUID[uid] = ip
	return ip, nil
}

// release returns uid's IP for reuse (after every fresh one was used, so
// that an address does not move to a new pod while endpoints still show
// the old one).
func (a *ipAllocator) release(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ip, ok := a.byUID[uid]; ok {
		delete(a.byUID, uid)
		a.free = append(a.free, ip)
	}
}
