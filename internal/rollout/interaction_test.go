package rollout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/switchyard/switchyard/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

// epoch is the time every transcript starts at; outputs show times relative to it.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestInteraction runs the scenario scripts in testdata/*.txt. Each entry is
// a command (with, for `spec`, a YAML body), a `----` line and the expected
// output: the state summary and the actions the command produced. Run with
// -update to rewrite the expected outputs, then review the diff.
//
// Commands:
//
//	spec                        (YAML body: a service) build the machine and reconcile a zero state
//	deploy VERSION [targets=a,b] [strategy=canary|blue-green] [force] [by=NAME]
//	health VERSION HEALTHY/TOTAL
//	tick [+DURATION]            advance the clock, then step a Tick
//	promote [full] | pause | resume | abort [reason=TEXT] | retry | rollback
//	verdict METRIC passed|failed|inconclusive VALUE [samples=N]
//	router ok | router fail MESSAGE   answer the last SetWeights
//	restart                     JSON round trip of the state, then Reconcile
//	describe                    print State.Describe and State.Next
func TestInteraction(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata/")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runTranscript(t, file)
		})
	}
}

type entry struct {
	comments []string
	input    []string
	want     string
}

func parseTranscript(t *testing.T, file string) []entry {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	var cur entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	state := 0 // 0: before a command, 1: input, 2: output
	var want []string
	flush := func() {
		cur.want = strings.Join(want, "\n")
		out = append(out, cur)
		cur, want, state = entry{}, nil, 0
	}
	for sc.Scan() {
		line := sc.Text()
		switch state {
		case 0:
			switch {
			case strings.TrimSpace(line) == "":
			case strings.HasPrefix(line, "#"):
				cur.comments = append(cur.comments, line)
			default:
				cur.input = []string{line}
				state = 1
			}
		case 1:
			if line == "----" {
				state = 2
			} else {
				cur.input = append(cur.input, line)
			}
		case 2:
			if strings.TrimSpace(line) == "" {
				flush()
			} else {
				want = append(want, line)
			}
		}
	}
	if state == 1 {
		t.Fatalf("%s: command %q has no ---- line", file, cur.input[0])
	}
	if state == 2 {
		flush()
	}
	return out
}

func runTranscript(t *testing.T, file string) {
	entries := parseTranscript(t, file)
	h := &harness{t: t, now: epoch}
	var rewritten bytes.Buffer
	for i, e := range entries {
		got := h.run(e.input)
		if *update {
			for _, c := range e.comments {
				rewritten.WriteString(c + "\n")
			}
			rewritten.WriteString(strings.Join(e.input, "\n") + "\n----\n" + got + "\n")
			if i < len(entries)-1 {
				rewritten.WriteString("\n")
			}
			continue
		}
		if got != e.want {
			t.Errorf("%s: %s\n--- got:\n%s\n--- want:\n%s", file, e.input[0], got, e.want)
		}
	}
	if *update {
		if err := os.WriteFile(file, rewritten.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness holds one transcript's machine, state and clock.
type harness struct {
	t   *testing.T
	svc *spec.Service
	m   *Machine
	s   State
	now time.Time
}

func (h *harness) run(input []string) string {
	f := strings.Fields(input[0])
	cmd, args := f[0], f[1:]
	opts := map[string]string{}
	var pos []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			opts[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	var ev Event
	switch cmd {
	case "spec":
		svc, err := loadSpec(strings.Join(input[1:], "\n"))
		if err != nil {
			return "error: " + err.Error()
		}
		m, err := New(svc)
		if err != nil {
			return "error: " + err.Error()
		}
		h.svc, h.m = svc, m
		s, acts := m.Reconcile(State{}, h.now)
		h.s = s
		return h.show(acts)
	case "restart":
		data, err := json.Marshal(h.s)
		if err != nil {
			h.t.Fatal(err)
		}
		var s State
		if err := json.Unmarshal(data, &s); err != nil {
			h.t.Fatal(err)
		}
		m, err := New(h.svc)
		if err != nil {
			h.t.Fatal(err)
		}
		h.m = m
		s, acts := m.Reconcile(s, h.now)
		h.s = s
		return h.show(acts)
	case "describe":
		next := "none"
		if n := h.s.Next(h.now); !n.IsZero() {
			next = rel(n)
		}
		return fmt.Sprintf("%q next=%s", h.s.Describe(h.now), next)
	case "deploy":
		d := Deploy{Version: pos[0], Strategy: StrategyKind(opts["strategy"]), By: opts["by"], Force: slices.Contains(pos, "force")}
		if ts := opts["targets"]; ts != "" {
			d.Targets = strings.Split(ts, ",")
		}
		ev = d
	case "health":
		hs, ts, _ := strings.Cut(pos[1], "/")
		ev = HealthChanged{Version: pos[0], Healthy: atoi(h.t, hs), Total: atoi(h.t, ts)}
	case "tick":
		if len(pos) > 0 {
			d, err := time.ParseDuration(strings.TrimPrefix(pos[0], "+"))
			if err != nil {
				h.t.Fatal(err)
			}
			h.now = h.now.Add(d)
		}
		ev = Tick{}
	case "promote":
		ev = Promote{Full: slices.Contains(pos, "full"), By: opts["by"]}
	case "pause":
		ev = Pause{By: opts["by"]}
	case "resume":
		ev = Resume{By: opts["by"]}
	case "abort":
		_, reason, _ := strings.Cut(input[0], "reason=")
		ev = Abort{Reason: reason, By: opts["by"]}
	case "retry":
		ev = Retry{By: opts["by"]}
	case "rollback":
		ev = Rollback{By: opts["by"]}
	case "verdict":
		v, err := strconv.ParseFloat(pos[2], 64)
		if err != nil {
			h.t.Fatal(err)
		}
		n := int64(100)
		if s := opts["samples"]; s != "" {
			n = int64(atoi(h.t, s))
		}
		ev = Verdict{Metric: pos[0], Result: VerdictResult(pos[1]), Value: v, Samples: n}
	case "router":
		if pos[0] == "ok" {
			ev = RouterApplied{Weights: h.s.Weights}
		} else {
			ev = RouterFailed{Weights: h.s.Weights, Error: strings.Join(pos[1:], " ")}
		}
	default:
		h.t.Fatalf("unknown command %q", cmd)
	}
	before, _ := json.Marshal(h.s)
	s, acts, err := h.m.Step(h.s, ev, h.now)
	if after, _ := json.Marshal(h.s); !bytes.Equal(before, after) {
		h.t.Fatalf("%s: Step mutated its input state", input[0])
	}
	if err != nil {
		if !bytes.Equal(mustJSON(h.t, s), before) {
			h.t.Fatalf("%s: Step returned an error and a changed state", input[0])
		}
		return "error: " + err.Error()
	}
	h.s = s
	return h.show(acts)
}

func loadSpec(body string) (*spec.Service, error) {
	var svc spec.Service
	if err := yaml.UnmarshalStrict([]byte(body), &svc); err != nil {
		return nil, err
	}
	svc.Default()
	return &svc, nil
}

func mustJSON(t *testing.T, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func rel(at time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return "t+" + at.Sub(epoch).String()
}

// show prints the state summary and the actions.
func (h *harness) show(acts []Action) string {
	s := h.s
	var b strings.Builder
	rt := s.Routing()
	fmt.Fprintf(&b, "%s phase=%s", rel(h.now), s.Phase)
	if shown := s.ShownPhase(); shown != s.Phase {
		fmt.Fprintf(&b, " shown=%s", shown)
	}
	fmt.Fprintf(&b, " stable=%s", s.Stable)
	if rt.Canary != "" {
		fmt.Fprintf(&b, " canary=%s", rt.Canary)
	}
	fmt.Fprintf(&b, " weights=%s\n", FormatWeights(s.Weights))
	if r := s.Rollout; r != nil {
		fmt.Fprintf(&b, "rollout #%d %s %s: %s", r.ID, r.Version, r.Strategy, s.Describe(h.now))
		if r.Analysis {
			fmt.Fprintf(&b, " failed=%d/%d", r.FailedChecks, r.Threshold)
		}
		b.WriteString("\n")
		if len(r.Verdicts) > 0 {
			b.WriteString("verdicts:")
			for _, k := range slices.Sorted(maps.Keys(r.Verdicts)) {
				v := r.Verdicts[k]
				fmt.Fprintf(&b, " %s=%s(%s@%s)", k, v.Result, formatFloat(v.Value), rel(v.At))
			}
			b.WriteString("\n")
		}
	}
	if l := s.Last; l != nil {
		fmt.Fprintf(&b, "last #%d %s from %s %s: %s\n", l.ID, l.Version, l.From, l.Result, l.Reason)
	}
	if s.Previous != "" {
		fmt.Fprintf(&b, "previous=%s until %s", s.Previous, rel(s.PreviousUntil))
		if s.KeptPrevious(h.now) == "" && h.now.Before(s.PreviousUntil) {
			b.WriteString(" (not shown: it is the canary)")
		}
		b.WriteString("\n")
	}
	if s.RouterError != "" {
		fmt.Fprintf(&b, "router-error: %s\n", s.RouterError)
	}
	if len(acts) == 0 {
		b.WriteString("no actions")
		return b.String()
	}
	b.WriteString("actions:")
	for _, a := range acts {
		b.WriteString("\n  " + showAction(a))
	}
	return b.String()
}

func showAction(a Action) string {
	switch a := a.(type) {
	case SetWeights:
		r := a.Routing
		s := "set-weights stable=" + r.Stable
		if r.Canary != "" {
			s += " canary=" + r.Canary
		}
		return s + " " + FormatWeights(r.Weights)
	case RegisterVersion:
		return fmt.Sprintf("register-version %s %v", a.Version, a.Targets)
	case RetireVersion:
		return "retire-version " + a.Version
	case StartAnalysis:
		return fmt.Sprintf("start-analysis canary=%s stable=%s", a.Canary, a.Stable)
	case StopAnalysis:
		return "stop-analysis"
	case Notify:
		return "notify " + a.Kind
	case RecordHistory:
		e := a.Entry
		s := fmt.Sprintf("history %s #%d", e.Kind, e.Rollout)
		if e.By != "" {
			s += " by=" + e.By
		}
		return s + ": " + e.Message
	case Finished:
		return fmt.Sprintf("finished #%d %s %s: %s", a.Rollout, a.Version, a.Result, a.Reason)
	}
	return ActionName(a)
}

// TestStepErrorsLeaveStateUnchanged checks the sentinel errors of commands
// that do not fit the state.
func TestStepErrorsLeaveStateUnchanged(t *testing.T) {
	svc, err := loadSpec(`
metadata: {name: web}
spec:
  stable: blue
  versions: [{name: blue, targets: [b1]}, {name: green, targets: [g1]}]
  strategy: {canary: {steps: [{setWeight: 10}, {pause: {}}]}}`)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(svc)
	if err != nil {
		t.Fatal(err)
	}
	idle, _ := m.Reconcile(State{}, epoch)
	running, _, err := m.Step(idle, Deploy{Version: "green"}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		s    State
		e    Event
		want error
	}{
		{"deploy unknown version", idle, Deploy{Version: "red"}, ErrUnknownVersion},
		{"deploy stable", idle, Deploy{Version: "blue"}, ErrAlreadyStable},
		{"deploy while running", running, Deploy{Version: "green"}, ErrRolloutRunning},
		{"forced deploy of the stable version", running, Deploy{Version: "blue", Force: true}, ErrAlreadyStable},
		{"deploy unknown strategy", idle, Deploy{Version: "green", Strategy: "rainbow"}, ErrUnknownStrategy},
		{"promote idle", idle, Promote{}, ErrNoRollout},
		{"promote health gate", running, Promote{}, ErrCannotPromote},
		{"pause idle", idle, Pause{}, ErrNoRollout},
		{"resume idle", idle, Resume{}, ErrNoRollout},
		{"abort idle", idle, Abort{}, ErrNoRollout},
		{"retry nothing", idle, Retry{}, ErrNothingToRetry},
		{"retry while running", running, Retry{}, ErrRolloutRunning},
		{"rollback nothing", idle, Rollback{}, ErrNothingToRevert},
		{"rollback while running", running, Rollback{}, ErrRolloutRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := mustJSON(t, tt.s)
			got, acts, err := m.Step(tt.s, tt.e, epoch.Add(time.Second))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Step(%s) error = %v, want %v", EventName(tt.e), err, tt.want)
			}
			if !bytes.Equal(mustJSON(t, got), before) || len(acts) != 0 {
				t.Errorf("Step(%s) changed the state or returned %d actions on error", EventName(tt.e), len(acts))
			}
		})
	}
}

// TestNewRejectsBadSteps checks that a canary step out of range stops New.
func TestNewRejectsBadSteps(t *testing.T) {
	w := 120
	svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Strategy: spec.Strategy{Canary: &spec.Canary{Steps: []spec.Step{{SetWeight: &w}}}},
	}}
	_, err := New(svc)
	if err == nil || !strings.Contains(err.Error(), "steps[0].setWeight is 120") {
		t.Fatalf("New() error = %v, want one naming steps[0].setWeight", err)
	}
}
