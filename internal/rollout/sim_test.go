package rollout

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/spec"
)

var (
	simRuns  = flag.Int("sim.runs", 0, "number of random rollouts TestSimulation runs (default 1000, 300 with -short)")
	simSteps = flag.Int("sim.steps", 120, "events per simulated rollout")
	simSeed  = flag.Uint64("sim.seed", 0, "run only this seed (as printed by a failure)")
)

// simSpecs are the services the simulation picks from: every strategy
// shape, with and without analysis.
func simSpecs() []*spec.Service {
	bools := func(b bool) *bool { return &b }
	minRate, maxDur := 99.0, 500.0
	analysis := &spec.Analysis{Threshold: 2, Metrics: []spec.Metric{
		{Name: "request-success-rate", ThresholdRange: spec.ThresholdRange{Min: &minRate}},
		{Name: "request-duration", ThresholdRange: spec.ThresholdRange{Max: &maxDur}},
	}}
	w := func(n int) spec.Step { return spec.Step{SetWeight: &n} }
	p := func(d time.Duration) spec.Step { return spec.Step{Pause: &spec.Pause{Duration: spec.D(d)}} }
	base := func(st spec.Strategy, a *spec.Analysis) *spec.Service {
		svc := &spec.Service{Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
			Stable:   "blue",
			Versions: []spec.Version{{Name: "blue", Targets: []string{"b1", "b2"}}, {Name: "green", Targets: []string{"g1"}}},
			Strategy: st, Analysis: a, ProgressDeadline: spec.D(3 * time.Minute),
		}}
		svc.Default()
		return svc
	}
	steps := []spec.Step{w(10), p(time.Minute), w(50), p(0), w(80), p(30 * time.Second)}
	return []*spec.Service{
		base(spec.Strategy{Canary: &spec.Canary{Steps: steps}}, nil),
		base(spec.Strategy{Canary: &spec.Canary{Steps: steps}}, analysis),
		base(spec.Strategy{Canary: &spec.Canary{Preset: "AllAtOnce"}}, analysis),
		base(spec.Strategy{Canary: &spec.Canary{StepWeight: 20, MaxWeight: 60, Interval: spec.D(time.Minute)}}, analysis),
		base(spec.Strategy{BlueGreen: &spec.BlueGreen{}}, nil),
		base(spec.Strategy{BlueGreen: &spec.BlueGreen{AutoPromote: bools(false), PreviewDuration: spec.D(time.Minute),
			BakeDuration: spec.D(2 * time.Minute), ScaleDownDelay: spec.D(5 * time.Minute)}}, analysis),
		base(spec.Strategy{BlueGreen: &spec.BlueGreen{BakeDuration: spec.D(time.Minute)}}, analysis),
	}
}

// TestSimulation drives the machine with random event sequences (commands,
// ticks of random size, health flaps, verdicts, router answers and
// failures, restarts) and checks the invariants after every step. A failure
// prints the seed; rerun it with -sim.seed=N.
func TestSimulation(t *testing.T) {
	specs := simSpecs()
	machines := make([]*Machine, len(specs))
	for i, svc := range specs {
		m, err := New(svc)
		if err != nil {
			t.Fatalf("New(spec %d): %v", i, err)
		}
		machines[i] = m
	}
	runs := 1000
	if testing.Short() {
		runs = 300
	}
	if *simRuns > 0 {
		runs = *simRuns
	}
	seeds := make([]uint64, runs)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	if *simSeed != 0 {
		seeds = []uint64{*simSeed}
	}
	stats := map[string]int{}
	for _, seed := range seeds {
		m := machines[seed%uint64(len(machines))]
		if err := simulate(m, seed, *simSteps, stats); err != nil {
			t.Fatalf("seed %d (spec %d): %v\nrerun: go test ./internal/rollout -run TestSimulation -sim.seed=%d -v",
				seed, seed%uint64(len(machines)), err, seed)
		}
	}
	t.Logf("%d runs: %v", len(seeds), stats)
	// The simulation is only worth something if it reaches every ending.
	for _, k := range []string{"promoted", "rolled-back", "aborted", "manual-rollback", "restart", "router-failed", "degraded"} {
		if len(seeds) >= 300 && stats[k] == 0 {
			t.Errorf("no run reached %q: the generator needs tuning", k)
		}
	}
}

// simInput is one input to the machine: an event, or a restart.
type simInput struct {
	event   Event
	restart bool
	now     time.Time
}

type simRecord struct {
	state   []byte
	actions []byte
	err     string
}

type simWorld struct {
	m          *Machine
	r          *rand.Rand
	s          State
	now        time.Time
	pending    []Weights // SetWeights not answered yet
	initial    []byte    // the JSON state before the first input
	checkInput bool
	inputs     []simInput
	records    []simRecord
	stats      map[string]int
	results    map[uint64]Result
	finished   map[uint64]bool
	// latest verdict per metric, per run, as fed to the machine.
	verdicts map[uint64]map[string]VerdictResult
}

func simulate(m *Machine, seed uint64, steps int, stats map[string]int) error {
	w := &simWorld{
		m: m, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: epoch, stats: stats,
		checkInput: seed%4 == 0, results: map[uint64]Result{}, finished: map[uint64]bool{}, verdicts: map[uint64]map[string]VerdictResult{},
	}
	s, acts := m.Reconcile(State{}, w.now)
	w.s = s
	w.collect(acts)
	// Restart snapshots are taken from here on; record 0 is the first input.
	initial := mustMarshal(w.s)
	w.initial = initial
	for i := 0; i < steps; i++ {
		in := w.next()
		if err := w.apply(in); err != nil {
			return fmt.Errorf("input %d (%s at %s): %w\nstate: %s", i, describeInput(in), rel(in.now), err, mustMarshal(w.s))
		}
	}
	// Replay from a random point: restoring the JSON state and feeding the
	// remaining inputs must give the same states and actions.
	k := w.r.IntN(len(w.inputs) + 1)
	var from []byte
	if k == 0 {
		from = initial
	} else {
		from = w.records[k-1].state
	}
	var rs State
	if err := json.Unmarshal(from, &rs); err != nil {
		return err
	}
	for i := k; i < len(w.inputs); i++ {
		in := w.inputs[i]
		var acts []Action
		var err error
		if in.restart {
			rs, acts = roundTrip(m, rs, in.now)
		} else {
			var ns State
			ns, acts, err = m.Step(rs, in.event, in.now)
			if err == nil {
				rs = ns
			}
		}
		got := simRecord{state: mustMarshal(rs), actions: marshalActions(acts), err: errString(err)}
		want := w.records[i]
		if !bytes.Equal(got.state, want.state) || !bytes.Equal(got.actions, want.actions) || got.err != want.err {
			return fmt.Errorf("replay from input %d diverges at input %d (%s):\n got state %s\nwant state %s\n got actions %s\nwant actions %s",
				k, i, describeInput(in), got.state, want.state, got.actions, want.actions)
		}
	}
	return nil
}

func roundTrip(m *Machine, s State, now time.Time) (State, []Action) {
	var restored State
	if err := json.Unmarshal(mustMarshal(s), &restored); err != nil {
		panic(err)
	}
	return m.Reconcile(restored, now)
}

// next draws a random input; router answers come from the pending queue.
func (w *simWorld) next() simInput {
	r := w.r
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	version := func() string { return pick("blue", "green", "green", "yellow") }
	n := r.IntN(100)
	var e Event
	switch {
	case n < 25:
		w.now = w.now.Add(time.Duration(r.IntN(90)) * time.Second)
		e = Tick{}
	case n < 37:
		v := version()
		total := 1 + r.IntN(3)
		healthy := total
		if r.IntN(4) == 0 {
			healthy = r.IntN(total + 1)
		}
		e = HealthChanged{Version: v, Healthy: healthy, Total: total}
	case n < 50:
		res := VerdictPassed
		switch x := r.IntN(10); {
		case x < 2:
			res = VerdictFailed
		case x < 4:
			res = VerdictInconclusive
		}
		e = Verdict{Metric: pick("request-success-rate", "request-duration"), Result: res, Value: float64(r.IntN(1000)) / 10, Samples: int64(r.IntN(500))}
	case n < 64:
		if len(w.pending) > 0 {
			i := r.IntN(len(w.pending))
			if r.IntN(2) == 0 {
				i = len(w.pending) - 1
			}
			wt := w.pending[i]
			w.pending = slices.Delete(w.pending, i, i+1)
			if r.IntN(6) == 0 {
				e = RouterFailed{Weights: wt, Error: "injected failure"}
			} else {
				e = RouterApplied{Weights: wt}
			}
		} else {
			e = Tick{}
		}
	case n < 72:
		d := Deploy{Version: version(), Force: r.IntN(4) == 0, By: "sim"}
		if d.Version == "yellow" || r.IntN(6) == 0 {
			d.Targets = []string{d.Version + "-1"}
		}
		d.Strategy = StrategyKind(pick("", "", string(StrategyCanary), string(StrategyBlueGreen)))
		e = d
	case n < 78:
		e = Promote{Full: r.IntN(4) == 0, By: "sim"}
	case n < 82:
		e = Pause{By: "sim"}
	case n < 86:
		e = Resume{By: "sim"}
	case n < 89:
		e = Abort{By: "sim"}
	case n < 92:
		e = Retry{By: "sim"}
	case n < 95:
		e = Rollback{By: "sim"}
	default:
		return simInput{restart: true, now: w.now}
	}
	return simInput{event: e, now: w.now}
}

func (w *simWorld) collect(acts []Action) {
	for _, a := range acts {
		if sw, ok := a.(SetWeights); ok {
			w.pending = append(w.pending, sw.Routing.Weights)
		}
	}
}

func (w *simWorld) apply(in simInput) error {
	w.inputs = append(w.inputs, in)
	before := w.s
	beforeJSON := w.initial
	if n := len(w.records); n > 0 {
		beforeJSON = w.records[n-1].state
	}
	var (
		ns   State
		acts []Action
		err  error
	)
	if in.restart {
		w.stats["restart"]++
		ns, acts = roundTrip(w.m, before, in.now)
		// A restart loses the router answers in flight.
		w.pending = nil
	} else {
		ns, acts, err = w.m.Step(before, in.event, in.now)
	}
	// Checking that Step left its input alone costs a JSON encoding per
	// step; every fourth run does it.
	if w.checkInput && !bytes.Equal(mustMarshal(before), beforeJSON) {
		return fmt.Errorf("Step mutated its input state")
	}
	if err != nil {
		if !bytes.Equal(mustMarshal(ns), beforeJSON) || len(acts) != 0 {
			return fmt.Errorf("error %v but the state changed or actions were returned", err)
		}
		ns = before
	}
	w.records = append(w.records, simRecord{state: mustMarshal(ns), actions: marshalActions(acts), err: errString(err)})
	if !in.restart {
		w.trackVerdict(before, in.event)
	}
	if err := w.check(before, ns, in, acts); err != nil {
		return err
	}
	w.s = ns
	w.collect(acts)
	return nil
}

func (w *simWorld) trackVerdict(before State, e Event) {
	v, ok := e.(Verdict)
	r := before.Rollout
	if !ok || r == nil || !r.Analysis {
		return
	}
	if w.verdicts[r.ID] == nil {
		w.verdicts[r.ID] = map[string]VerdictResult{}
	}
	w.verdicts[r.ID][v.Metric] = v.Result
}

// check verifies the invariants of one step from before to after.
func (w *simWorld) check(before, after State, in simInput, acts []Action) error {
	// Every state the machine makes is one the store accepts at load.
	if err := after.Validate(); err != nil {
		return fmt.Errorf("state refused by Validate: %w", err)
	}
	// Weights: 0-100, summing to 100, naming known versions only.
	sum := 0
	for v, p := range after.Weights {
		if p < 0 || p > 100 {
			return fmt.Errorf("weight %s:%d out of range", v, p)
		}
		if _, ok := after.Versions[v]; !ok {
			return fmt.Errorf("weights %s name unknown version %s", FormatWeights(after.Weights), v)
		}
		sum += p
	}
	if sum != 100 {
		return fmt.Errorf("weights %s sum to %d", FormatWeights(after.Weights), sum)
	}
	// Never route to a version with no healthy target while another version
	// in play has one.
	inPlay := []string{after.Stable}
	if r := after.Rollout; r != nil {
		inPlay = append(inPlay, r.Version)
	}
	if after.Previous != "" {
		inPlay = append(inPlay, after.Previous)
	}
	up := func(v string) bool { return after.Health[v].Healthy > 0 }
	if slices.ContainsFunc(inPlay, up) {
		for v, p := range after.Weights {
			if p > 0 && !up(v) {
				return fmt.Errorf("weights %s send traffic to %s (health %+v) while %v has a healthy version",
					FormatWeights(after.Weights), v, after.Health[v], inPlay)
			}
		}
	}
	// A failed verdict never leads to a promotion without a human's promote --full.
	if r := before.Rollout; r != nil {
		switched := (after.Rollout != nil && after.Rollout.ID == r.ID && after.Rollout.Switched && !r.Switched) ||
			(after.Last != nil && after.Last.ID == r.ID && after.Last.Result == ResultPromoted)
		full := false
		if p, ok := in.event.(Promote); ok && p.Full {
			full = true
		}
		if switched && !full {
			for metric, res := range w.verdicts[r.ID] {
				if res == VerdictFailed {
					return fmt.Errorf("rollout #%d switched or was promoted while %s's latest verdict is failed", r.ID, metric)
				}
			}
			if r.Strategy == StrategyCanary && r.Analysis {
				for _, metric := range r.Metrics {
					if w.verdicts[r.ID][metric] != VerdictPassed {
						return fmt.Errorf("canary #%d switched without a passed %s verdict", r.ID, metric)
					}
				}
			}
		}
	}
	// Terminal results stay terminal; a run ends once.
	if r := after.Rollout; r != nil {
		if r.Result != "" {
			return fmt.Errorf("running rollout #%d has result %s", r.ID, r.Result)
		}
		if res, ok := w.results[r.ID]; ok {
			return fmt.Errorf("rollout #%d runs again after ending %s", r.ID, res)
		}
		if after.Phase != PhaseProgressing && after.Phase != PhasePaused && after.Phase != PhaseDegraded {
			return fmt.Errorf("rollout #%d running in phase %s", r.ID, after.Phase)
		}
	} else if after.Phase == PhaseProgressing || after.Phase == PhasePaused {
		return fmt.Errorf("phase %s with no rollout", after.Phase)
	}
	if l := after.Last; l != nil {
		if res, ok := w.results[l.ID]; ok && res != l.Result {
			return fmt.Errorf("rollout #%d result changed from %s to %s", l.ID, res, l.Result)
		}
		if l.Result == "" {
			return fmt.Errorf("last rollout #%d has no result", l.ID)
		}
		w.results[l.ID] = l.Result
	}
	for _, a := range acts {
		f, ok := a.(Finished)
		if !ok {
			continue
		}
		if w.finished[f.Rollout] {
			return fmt.Errorf("rollout #%d finished twice", f.Rollout)
		}
		w.finished[f.Rollout] = true
		w.stats[string(f.Result)]++
		if _, ok := in.event.(Rollback); ok {
			w.stats["manual-rollback"]++
		}
	}
	if after.RouterError != "" && before.RouterError == "" {
		w.stats["router-failed"]++
	}
	if after.Phase == PhaseDegraded && before.Phase != PhaseDegraded {
		w.stats["degraded"]++
	}
	return nil
}

func describeInput(in simInput) string {
	if in.restart {
		return "restart"
	}
	return fmt.Sprintf("%s %+v", EventName(in.event), in.event)
}

func mustMarshal(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

func marshalActions(acts []Action) []byte {
	type named struct {
		Name   string
		Action Action
	}
	out := make([]named, len(acts))
	for i, a := range acts {
		out[i] = named{ActionName(a), a}
	}
	return mustMarshal(out)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
