package controller

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// plugin runs the switchyard binary as the kubectl plugin, through a real
// kubectl, as one user.
type plugin struct {
	t                 *testing.T
	kubectl, path, kc string
}

func (e *env) plugin(user string, groups ...string) *plugin {
	e.t.Helper()
	kubectl := testenv.RequireBinary(e.t, "kubectl")
	dir := e.t.TempDir()
	if err := os.Symlink(testenv.BuildSwitchyard(e.t), filepath.Join(dir, "kubectl-switchyard")); err != nil {
		e.t.Fatal(err)
	}
	kc, err := e.k.KubeconfigAs(user, groups...)
	if err != nil {
		e.t.Fatal(err)
	}
	return &plugin{t: e.t, kubectl: kubectl, path: dir + string(os.PathListSeparator) + os.Getenv("PATH"), kc: kc}
}

// run returns the command's combined output and exit code.
func (p *plugin) run(args ...string) (string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.kubectl, append([]string{"switchyard"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+p.path, "KUBECONFIG="+p.kc, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	var xe *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &xe):
		return string(out), xe.ExitCode()
	}
	p.t.Fatalf("kubectl switchyard %v: %v\n%s", args, err, out)
	return "", -1
}

// interrupted runs a command until its output holds every one of want
// (or a minute passes), then interrupts it (Ctrl-C), and returns its
// output.
func (p *plugin) interrupted(want []string, args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.kubectl, append([]string{"switchyard"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+p.path, "KUBECONFIG="+p.kc, "NO_COLOR=1")
	var mu sync.Mutex
	var out strings.Builder
	w := writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(b)
	})
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	testenv.Poll(time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range want {
			if !strings.Contains(out.String(), s) {
				return false
			}
		}
		return true
	})
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		p.t.Fatalf("kubectl switchyard %s, interrupted: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// must runs a command that must exit 0 and returns its output.
func (p *plugin) must(args ...string) string {
	p.t.Helper()
	out, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("kubectl switchyard %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// refused runs a command that the controller must refuse (exit 1),
// saying want.
func (p *plugin) refused(want string, args ...string) {
	p.t.Helper()
	out, code := p.run(args...)
	if code != 1 || !strings.Contains(out, "refused") || !strings.Contains(out, want) {
		p.t.Fatalf("kubectl switchyard %s: exit %d, want 1 and a refusal saying %q\n%s", strings.Join(args, " "), code, want, out)
	}
}

// grantCLI gives user what docs/kubernetes.md says the CLI needs in the
// test's namespace: get, list, watch and patch on Rollouts, list on Pods.
func (e *env) grantCLI(user string) {
	e.t.Helper()
	ctx := ctxT(e.t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "switchyard-cli", Namespace: e.ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1alpha1.Group}, Resources: []string{"rollouts"}, Verbs: []string{"get", "list", "watch", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		},
	}
	bind := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "switchyard-cli", Namespace: e.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if err := e.c.Create(ctx, role); err != nil {
		e.t.Fatalf("create role: %v", err)
	}
	if err := e.c.Create(ctx, bind); err != nil {
		e.t.Fatalf("create role binding: %v", err)
	}
}

// countHistory counts the status.history entries of kind by a requester
// other than the controller's own.
func (e *env) countHistory(kind string) int {
	ro, _ := e.rollout()
	n := 0
	for _, h := range ro.Status.History {
		if h.Kind == kind && h.By != "" && h.By != "template change" {
			n++
		}
	}
	return n
}

// TestKubectlPlugin: `kubectl switchyard` (the switchyard binary as a
// kubectl plugin, through a real kubectl and a user with only the
// documented RBAC) shows a Rollout's status and history and commands its
// rollout through the switchyard.dev/request annotation: pause, resume,
// promote of a blue-green gate, abort with a reason; the controller
// refuses what the engine refuses (promote with no rollout, rollback on a
// cluster) with its reason, and applies each request once (a restarted
// controller does not apply the standing annotation again).
func TestKubectlPlugin(t *testing.T) {
	e := newEnv(t)
	user := "alice-" + e.ns
	e.grantCLI(user)
	p := e.plugin(user)
	ctl := e.startController(false)
	e.create("web:1", spec.BlueGreen{AutoPromote: ptrTo(false), ScaleDownDelay: spec.D(time.Hour)})
	r1, r2, r3 := rev(t, "web:1"), rev(t, "web:2"), rev(t, "web:3")
	e.waitStable(r1, "a")
	ns := []string{"-n", e.ns}

	out := p.must(append([]string{"status"}, ns...)...)
	if !strings.Contains(out, "NAME") || !strings.Contains(out, "web") || !strings.Contains(out, r1) {
		t.Fatalf("status of the namespace does not list web at %s:\n%s", r1, out)
	}
	p.refused("no rollout in progress", append([]string{"promote", "web"}, ns...)...)

	e.setImage("web:2")
	e.waitStep(r2, rollout.StepGate)
	out = p.must(append([]string{"status", "web"}, ns...)...)
	t.Logf("kubectl switchyard status web:\n%s", out)
	if !strings.Contains(out, "canary "+r2) || !strings.Contains(out, "target") {
		t.Fatalf("status web does not show canary %s and its pods:\n%s", r2, out)
	}
	if out := p.interrupted([]string{"web Paused", "step 2/3"}, append([]string{"status", "web", "--watch"}, ns...)...); !strings.Contains(out, "web Paused") || !strings.Contains(out, "step 2/3") {
		t.Fatalf("status --watch does not show the rollout at its gate:\n%s", out)
	}
	if out := p.must(append([]string{"pause", "web"}, ns...)...); !strings.Contains(out, "pause web: done") {
		t.Fatalf("pause:\n%s", out)
	}
	if _, st := e.rollout(); st.Rollout == nil || !st.Rollout.Paused {
		t.Fatalf("rollout not paused after pause: %+v", st.Rollout)
	}
	p.must(append([]string{"resume", "web"}, ns...)...)
	p.refused("on a cluster", append([]string{"rollback", "web"}, ns...)...)
	if out := p.must(append([]string{"promote", "web"}, ns...)...); !strings.Contains(out, "promote web: done") {
		t.Fatalf("promote:\n%s", out)
	}
	e.waitStable(r2, "b")
	if n := e.countHistory("promote"); n != 1 {
		t.Fatalf("%d promote entries in status.history after one promote, want 1", n)
	}

	// The annotation still holds the promote: a restarted controller must
	// not apply it again. Every reconcile runs the request check right
	// after it submits a template change, so the one that deployed r3 has
	// seen the standing request by the time r3 reaches its gate: applied,
	// it would have promoted (or been refused, overwriting the answer).
	before, _ := e.rollout()
	answered := before.Status.LastRequest.DeepCopy()
	ctl.stop()
	e.setImage("web:3")
	ctl = e.startController(false)
	e.waitStep(r3, rollout.StepGate)
	if ro, _ := e.rollout(); !equality.Semantic.DeepEqual(ro.Status.LastRequest, answered) {
		t.Fatalf("after a restart the standing request was answered again: %+v, was %+v", ro.Status.LastRequest, answered)
	}
	if _, st := e.rollout(); st.Rollout == nil || st.Rollout.Version != r3 || e.countHistory("promote") != 1 {
		t.Fatalf("after a restart the standing promote request was applied again: rollout %+v, %d promotes", st.Rollout, e.countHistory("promote"))
	}
	p.must(append([]string{"abort", "web", "--reason", "smoke test failed"}, ns...)...)
	e.waitFor("the rollout of "+r3+" aborted", func() bool {
		_, st := e.rollout()
		return st.Rollout == nil && st.Last != nil && st.Last.Version == r3 && st.Last.Result == rollout.ResultAborted
	})
	p.refused("no rollout in progress", append([]string{"abort", "web"}, ns...)...)

	out = p.must(append([]string{"history", "web"}, ns...)...)
	t.Logf("kubectl switchyard history web:\n%s", out)
	for _, want := range []string{"promote", "aborted", "smoke test failed", "paused"} {
		if !strings.Contains(out, want) {
			t.Fatalf("history lacks %q:\n%s", want, out)
		}
	}
	if out := p.must(append([]string{"status", "web", "-o", "json"}, ns...)...); !strings.Contains(out, `"stableVersion": "`+r2+`"`) {
		t.Fatalf("status -o json does not give stable %s:\n%s", r2, out)
	}

	// A user without the RBAC is told what the CLI needs.
	stranger := e.plugin("mallory-" + e.ns)
	out, code := stranger.run(append([]string{"promote", "web"}, ns...)...)
	if code != 1 || !strings.Contains(out, "patch on rollouts.switchyard.dev") {
		t.Fatalf("a user without RBAC: exit %d, want 1 naming the RBAC it needs:\n%s", code, out)
	}
	ro, _ := e.rollout()
	if ro.Status.LastRequest == nil || ro.Status.LastRequest.Command != v1alpha1.CommandAbort {
		t.Fatalf("the refused user changed the last request: %+v", ro.Status.LastRequest)
	}
}

// TestRequestWhileInvalid: a bad edit in the middle of a rollout makes
// the Rollout not valid (its runner keeps the last valid spec), and an
// abort through the CLI still reaches that rollout; a Rollout that has
// no runner refuses a request, saying why.
func TestRequestWhileInvalid(t *testing.T) {
	e := newEnv(t)
	p := e.plugin("bob-"+e.ns, "system:masters")
	e.startController(false)
	e.create("web:1", spec.BlueGreen{AutoPromote: ptrTo(false)})
	r1, r2 := rev(t, "web:1"), rev(t, "web:2")
	e.waitStable(r1, "a")
	e.setImage("web:2")
	e.waitStep(r2, rollout.StepGate)
	e.edit(func(ro *v1alpha1.Rollout) {
		ro.Spec.Routing = spec.Routing{Rules: []spec.Rule{{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: "canary"}}}
	})
	e.waitValid(metav1.ConditionFalse, "Invalid")
	p.must("abort", "web", "-n", e.ns, "--reason", "bad edit")
	e.waitFor("the rollout of "+r2+" aborted", func() bool {
		_, st := e.rollout()
		return st.Rollout == nil && st.Last != nil && st.Last.Result == rollout.ResultAborted
	})
	if s := e.selectorSlot(); s != "a" {
		t.Fatalf("service at slot %s after the abort, want a", s)
	}

	// A Rollout whose Service does not exist has no runner.
	e.edit(func(ro *v1alpha1.Rollout) {
		ro.Spec.Routing = spec.Routing{}
		ro.Spec.Service.Name = "nope"
	})
	e.waitValid(metav1.ConditionFalse, reasonServiceNotFound)
	p.refused("ServiceNotFound", "resume", "web", "-n", e.ns)
}
