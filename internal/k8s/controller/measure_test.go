package controller

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
)

// serviceClient sends requests through the Service web as kube-proxy
// would: to one of the ready addresses its EndpointSlices list (read
// from the API server for every request). No kubelet or network runs
// here, so each pod IP is a real HTTP server of the test, started the
// first time its address is chosen, that answers with its pod's revision.
type serviceClient struct {
	e       *env
	servers map[string]*httptest.Server // by pod name and IP
}

func (e *env) serviceClient() *serviceClient {
	s := &serviceClient{e: e, servers: map[string]*httptest.Server{}}
	e.t.Cleanup(func() {
		for _, srv := range s.servers {
			srv.Close()
		}
	})
	return s
}

// get sends one request through the Service and returns the revision
// that served it ("" when the Service had no ready endpoint).
func (s *serviceClient) get() (string, error) {
	ips := s.e.endpointIPs()
	if len(ips) == 0 {
		return "", nil
	}
	ip := ips[rand.IntN(len(ips))]
	var pods corev1.PodList
	if err := s.e.c.List(ctxT(s.e.t), &pods, client.InNamespace(s.e.ns), client.MatchingLabels{v1alpha1.LabelRollout: "web"}); err != nil {
		return "", err
	}
	var pod *corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Status.PodIP == ip && p.DeletionTimestamp == nil {
			pod = p
		}
	}
	if pod == nil {
		return "", fmt.Errorf("endpoint %s is no pod's", ip)
	}
	key := pod.Name + " " + ip
	srv := s.servers[key]
	if srv == nil {
		rev := pod.Labels[v1alpha1.LabelRevision]
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, rev) }))
		s.servers[key] = srv
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestMeasureBlueGreen reports, as MEASURE lines (no timing is asserted:
// the machines are shared), the time from a changed pod template to the
// first request served by the new revision through the Service, and the
// status writes per rollout step, for a blue-green by selector with 2
// replicas. It asserts what must hold at any speed: every request
// through the Service found a ready endpoint, and was served by the old
// revision or the new one.
func TestMeasureBlueGreen(t *testing.T) {
	e := newEnv(t)
	ctl := e.startController(false)
	key := types.NamespacedName{Namespace: e.ns, Name: "web"}
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.create("web:1", spec.BlueGreen{ScaleDownDelay: spec.D(time.Hour)})
	e.waitStable(r1, "a")
	sc := e.serviceClient()

	writes := ctl.c.StatusWrites(key)
	start := time.Now()
	e.setImage("web:2")
	var first time.Duration
	requests := 0
	for deadline := start.Add(waitTimeout); first == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no request served by %s within %v", r2, waitTimeout)
		}
		got, err := sc.get()
		if err != nil {
			t.Fatal(err)
		}
		requests++
		switch got {
		case r2:
			first = time.Since(start)
		case r1:
		case "":
			t.Fatalf("request %d through the Service found no ready endpoint", requests)
		default:
			t.Fatalf("request %d served by %q, neither %s nor %s", requests, got, r1, r2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.waitStable(r2, "b")
	_, st := e.rollout()
	if st.Last == nil || st.Last.Version != r2 || st.Last.Result != rollout.ResultPromoted {
		t.Fatalf("rollout of %s ended %+v, want promoted", r2, st.Last)
	}
	steps := len(st.Last.Steps)
	w := ctl.c.StatusWrites(key) - writes
	fmt.Printf("MEASURE kubernetes blue-green (service selector, 2 replicas): template change to first request served by the new revision through the Service: %v (%d requests before, none failed)\n",
		first.Round(time.Millisecond), requests-1)
	fmt.Printf("MEASURE kubernetes blue-green: %d status writes for %d steps (%.1f per step)\n", w, steps, float64(w)/float64(steps))
}

// TestMeasureCanary reports the status writes per step of a canary
// through the Gateway API (20%, pause, 60%, pause, then all).
func TestMeasureCanary(t *testing.T) {
	e := newEnv(t)
	ctl := e.startController(false)
	key := types.NamespacedName{Namespace: e.ns, Name: "web"}
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.createGatewayCanary("web:1")
	e.waitFor("stable "+r1, func() bool {
		ro, _ := e.rollout()
		return ro.Status.StableRevision == r1
	})
	writes := ctl.c.StatusWrites(key)
	e.setImage("web:2")
	e.waitFor("the canary of "+r2+" promoted", func() bool {
		_, st := e.rollout()
		return st.Rollout == nil && st.Last != nil && st.Last.Version == r2 && st.Last.Result == rollout.ResultPromoted
	})
	_, st := e.rollout()
	steps := len(st.Last.Steps)
	w := ctl.c.StatusWrites(key) - writes
	fmt.Printf("MEASURE kubernetes canary (Gateway API, 2 replicas): %d status writes for %d steps (%.1f per step)\n", w, steps, float64(w)/float64(steps))
}
