package controller

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/switchyard/switchyard/api/v1alpha1"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/testenv"
	"github.com/switchyard/switchyard/internal/testenv/kubeenv"
)

// guideWorkflow is one workflow of docs/kubernetes-guide.md: the YAML of
// its "before" (checked by a server-side dry run), of its "after"
// (applied), and its shell blocks after the Rollout, in order.
type guideWorkflow struct {
	before, after []*unstructured.Unstructured
	shell         []string
}

func readGuide(t *testing.T) []guideWorkflow {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "docs", "kubernetes-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```(yaml|sh)\n(.*?)```")
	var out []guideWorkflow
	for _, part := range regexp.MustCompile(`(?m)^## \d+\. `).Split(string(data), -1)[1:] {
		var w guideWorkflow
		for _, b := range block.FindAllStringSubmatch(part, -1) {
			if b[1] == "sh" {
				if len(w.after) > 0 {
					w.shell = append(w.shell, b[2])
				}
				continue
			}
			objs, err := kubeenv.DecodeDocs([]byte(b[2]))
			if err != nil {
				t.Fatalf("docs/kubernetes-guide.md workflow %d: %v\n%s", len(out)+1, err, b[2])
			}
			if strings.HasPrefix(b[2], "# before") {
				w.before = append(w.before, objs...)
			} else {
				w.after = append(w.after, objs...)
			}
		}
		out = append(out, w)
	}
	if len(out) != 2 {
		t.Fatalf("docs/kubernetes-guide.md has %d workflows, want 2", len(out))
	}
	return out
}

// applyGuide creates the workflow's objects in the test's namespace (the
// "before" ones with a server-side dry run) and returns its Rollout.
func (e *env) applyGuide(w guideWorkflow) *v1alpha1.Rollout {
	e.t.Helper()
	ctx := ctxT(e.t)
	for _, o := range w.before {
		o.SetNamespace(e.ns)
		if err := e.c.Create(ctx, o, client.DryRunAll); err != nil {
			e.t.Fatalf("the guide's before %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	var ro *v1alpha1.Rollout
	for _, o := range w.after {
		o.SetNamespace(e.ns)
		if err := e.c.Create(ctx, o); err != nil {
			e.t.Fatalf("the guide's %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() == "Rollout" {
			ro = &v1alpha1.Rollout{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ro); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	if ro == nil || ro.Name != "web" {
		e.t.Fatalf("the guide's workflow has no Rollout web")
	}
	return ro
}

// runShell runs a shell block of the guide as a user would, with the
// namespace shop replaced by the test's, through the real kubectl and the
// switchyard binary as its plugin.
func (p *plugin) runShell(ns, script string) string {
	p.t.Helper()
	script = strings.ReplaceAll(script, "-n shop", "-n "+ns)
	cmd := exec.CommandContext(ctxT(p.t), "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(p.kubectl)+string(os.PathListSeparator)+p.path, "KUBECONFIG="+p.kc, "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		p.t.Fatalf("the guide's commands failed: %v\n%s\n%s", err, script, out.String())
	}
	return out.String()
}

// TestGuide replays docs/kubernetes-guide.md against the real API server:
// both workflows' YAML as written, and their commands (kubectl patch of
// the template, kubectl switchyard status, promote, history) run by bash.
func TestGuide(t *testing.T) {
	testenv.RequireBinary(t, "kubectl")
	guide := readGuide(t)

	t.Run("blue-green", func(t *testing.T) {
		e := newEnv(t)
		e.startController(false)
		p := e.plugin("guide-"+e.ns, "system:masters")
		ro := e.applyGuide(guide[0])
		r1 := mustRevision(t, ro)
		e.waitFor("stable "+r1+" in slot a", func() bool {
			cur, st := e.rollout()
			return cur.Status.StableRevision == r1 && st.Rollout == nil && e.selectorSlot() == "a"
		})
		if len(guide[0].shell) != 2 {
			t.Fatalf("blue-green: %d shell blocks after the Rollout, want 2 (release, promote)", len(guide[0].shell))
		}
		out := p.runShell(e.ns, guide[0].shell[0])
		r2 := e.templateRevision()
		if r2 == r1 || !strings.Contains(out, "web") {
			t.Fatalf("the release did not change the revision (%s) or status printed nothing:\n%s", r2, out)
		}
		e.waitStep(r2, rollout.StepGate)
		e.waitFor("web-preview on slot b", func() bool { return e.previewSlotOf() == "b" })
		if s := e.selectorSlot(); s != "a" {
			t.Fatalf("web at slot %s before the promotion", s)
		}
		out = p.runShell(e.ns, guide[0].shell[1])
		if !strings.Contains(out, "promote web: done") || !strings.Contains(out, "promoted") {
			t.Fatalf("promote and history:\n%s", out)
		}
		e.waitFor("stable "+r2+" in slot b", func() bool {
			cur, st := e.rollout()
			return cur.Status.StableRevision == r2 && st.Rollout == nil && e.selectorSlot() == "b"
		})
	})

	t.Run("istio", func(t *testing.T) {
		e := newEnv(t)
		e.startController(false)
		p := e.plugin("guide-"+e.ns, "system:masters")
		ro := e.applyGuide(guide[1])
		r1 := mustRevision(t, ro)
		e.waitFor("stable "+r1+" with all traffic to switchyard-a", func() bool {
			cur, _ := e.rollout()
			return cur.Status.StableRevision == r1 && slices.Equal(e.istioRoutes(), []string{"primary:switchyard-a=100"})
		})
		if len(guide[1].shell) != 2 {
			t.Fatalf("istio: %d shell blocks after the Rollout, want 2 (release, promote)", len(guide[1].shell))
		}
		p.runShell(e.ns, guide[1].shell[0])
		r2 := e.templateRevision()
		e.waitStep(r2, rollout.StepPause)
		want := []string{"switchyard-0-canary:switchyard-b=100", "switchyard-0-stable:switchyard-a=100", "primary:switchyard-a=90,switchyard-b=10"}
		e.waitFor("the VirtualService at 90/10 with the x-canary route", func() bool { return slices.Equal(e.istioRoutes(), want) })
		out := p.runShell(e.ns, guide[1].shell[1])
		if !strings.Contains(out, "promote web: done") {
			t.Fatalf("promote --full and history:\n%s", out)
		}
		e.waitFor("all traffic to switchyard-b, the header route gone", func() bool {
			w := e.istioRoutes()
			cur, st := e.rollout()
			return cur.Status.StableRevision == r2 && st.Rollout == nil && len(w) == 1 &&
				(w[0] == "primary:switchyard-a=0,switchyard-b=100" || w[0] == "primary:switchyard-b=100")
		})
	})
}

func mustRevision(t *testing.T, ro *v1alpha1.Rollout) string {
	t.Helper()
	r, err := Revision(ro.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// templateRevision is the revision of the Rollout web's template now.
func (e *env) templateRevision() string {
	e.t.Helper()
	ro, _ := e.rollout()
	return mustRevision(e.t, ro)
}
