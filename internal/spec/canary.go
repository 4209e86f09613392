package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Preset kinds.
const (
	// PresetAllAtOnce shifts all traffic in one go.
	PresetAllAtOnce = "all-at-once"
	// PresetCanary shifts Percent, waits Interval, then promotes.
	PresetCanary = "canary"
	// PresetLinear adds Percent every Interval until the next step would reach 100.
	PresetLinear = "linear"
)

// Preset is a parsed canary preset (CodeDeploy semantics).
type Preset struct {
	// Kind is PresetAllAtOnce, PresetCanary or PresetLinear.
	Kind string
	// Percent is the canary weight (canary) or the increment (linear), 1-99.
	Percent int
	// Interval is the pause after each weight change.
	Interval time.Duration
}

// namedPresets are the CodeDeploy predefined configurations Switchyard knows,
// in documentation order. A function, not a package variable, so nothing can
// change it at run time.
func namedPresets() []struct {
	Name   string
	Preset Preset
} {
	return []struct {
		Name   string
		Preset Preset
	}{
		{"Canary10Percent5Minutes", Preset{PresetCanary, 10, 5 * time.Minute}},
		{"Canary10Percent10Minutes", Preset{PresetCanary, 10, 10 * time.Minute}},
		{"Canary10Percent15Minutes", Preset{PresetCanary, 10, 15 * time.Minute}},
		{"Canary10Percent30Minutes", Preset{PresetCanary, 10, 30 * time.Minute}},
		{"Linear10PercentEvery1Minute", Preset{PresetLinear, 10, time.Minute}},
		{"Linear10PercentEvery2Minutes", Preset{PresetLinear, 10, 2 * time.Minute}},
		{"Linear10PercentEvery3Minutes", Preset{PresetLinear, 10, 3 * time.Minute}},
		{"Linear10PercentEvery10Minutes", Preset{PresetLinear, 10, 10 * time.Minute}},
		{"AllAtOnce", Preset{Kind: PresetAllAtOnce}},
	}
}

// PresetNames lists the named presets ParsePreset accepts, in documentation order.
func PresetNames() []string {
	var names []string
	for _, p := range namedPresets() {
		names = append(names, p.Name)
	}
	return names
}

// customPreset matches "canary 10%/5m" and "linear 20%/30s" exactly: one
// space, a whole percentage, a Go duration.
var customPreset = regexp.MustCompile(`^(canary|linear) ([0-9]{1,2})%/([0-9][0-9a-zµ.]*)$`)

// codeDeployName matches CodeDeploy's naming pattern for canary and linear
// configurations, "Canary20Percent10Minutes" and
// "Linear15PercentEvery3Minutes", as CodeDeploy writes custom ones too.
var codeDeployName = regexp.MustCompile(`^(Canary|Linear)([0-9]{1,2})Percent(Every)?([0-9]{1,4})(Minutes?)$`)

// Prefixes of CodeDeploy configuration names: its predefined ones are
// CodeDeployDefault.NAME, and seeds write custom ones as Custom.NAME.
const (
	codeDeployDefaultPrefix = "CodeDeployDefault."
	codeDeployCustomPrefix  = "Custom."
)

// PresetWant describes the valid preset spellings, for error messages.
const PresetWant = `one of Canary10Percent5Minutes, Canary10Percent10Minutes, Canary10Percent15Minutes, ` +
	`Canary10Percent30Minutes, Linear10PercentEvery1Minute, Linear10PercentEvery2Minutes, ` +
	`Linear10PercentEvery3Minutes, Linear10PercentEvery10Minutes, AllAtOnce ` +
	`(each also with the CodeDeployDefault. prefix), ` +
	`CanaryNPercentMMinutes or LinearNPercentEveryMMinutes (N 1-99, M 1-9999, "1Minute" for one; optionally with a Custom. prefix), ` +
	`"canary N%/DURATION" or "linear N%/DURATION" (N 1-99, DURATION > 0, e.g. "canary 10%/5m")`

// ParsePreset parses a named preset (Canary10Percent5Minutes,
// Linear10PercentEvery1Minute, AllAtOnce, ..., with or without the
// CodeDeployDefault. prefix), a name in CodeDeploy's pattern
// (Canary20Percent10Minutes, Linear15PercentEvery3Minutes, with or without a
// Custom. prefix) or a custom one ("canary N%/DURATION",
// "linear N%/DURATION" with N in 1-99 and DURATION > 0).
// Parsing is strict: case, spacing and units matter.
func ParsePreset(s string) (Preset, error) {
	name, isDefault := strings.CutPrefix(s, codeDeployDefaultPrefix)
	for _, p := range namedPresets() {
		if p.Name == name {
			return p.Preset, nil
		}
	}
	if isDefault {
		return Preset{}, fmt.Errorf("preset %q: CodeDeployDefault. names only CodeDeploy's predefined configurations; "+
			"write a custom one as %q or %q, or use %s", s, name, codeDeployCustomPrefix+name, PresetWant)
	}
	name = strings.TrimPrefix(name, codeDeployCustomPrefix)
	if m := codeDeployName.FindStringSubmatch(name); m != nil {
		return parseCodeDeployName(s, m)
	}
	m := customPreset.FindStringSubmatch(s)
	if m == nil {
		return Preset{}, fmt.Errorf("unknown preset %q; want %s", s, PresetWant)
	}
	n, err := strconv.Atoi(m[2])
	if err != nil || n < 1 || n > 99 {
		return Preset{}, fmt.Errorf("preset %q: percentage %s must be 1-99", s, m[2])
	}
	d, err := time.ParseDuration(m[3])
	if err != nil {
		return Preset{}, fmt.Errorf("preset %q: %q is not a duration like \"30s\" or \"5m\"", s, m[3])
	}
	if d <= 0 {
		return Preset{}, fmt.Errorf("preset %q: duration must be greater than 0", s)
	}
	return Preset{Kind: m[1], Percent: n, Interval: d}, nil
}

// parseCodeDeployName turns a codeDeployName match of s into a preset.
func parseCodeDeployName(s string, m []string) (Preset, error) {
	kind, every, unit := strings.ToLower(m[1]), m[3] != "", m[5]
	n, _ := strconv.Atoi(m[2])
	mins, _ := strconv.Atoi(m[4])
	want := "Canary%dPercent%d%s"
	if kind == PresetLinear {
		want = "Linear%dPercentEvery%d%s"
	}
	plural := "Minutes"
	if mins == 1 {
		plural = "Minute"
	}
	switch {
	case n < 1 || n > 99:
		return Preset{}, fmt.Errorf("preset %q: percentage %d must be 1-99", s, n)
	case mins < 1:
		return Preset{}, fmt.Errorf("preset %q: minutes must be at least 1", s)
	case every != (kind == PresetLinear) || unit != plural:
		return Preset{}, fmt.Errorf("preset %q: did you mean %q? want %s", s, fmt.Sprintf(want, n, mins, plural), PresetWant)
	}
	return Preset{Kind: kind, Percent: n, Interval: time.Duration(mins) * time.Minute}, nil
}

// Steps expands the preset into explicit steps, not including the final
// promotion to 100%.
func (p Preset) Steps() []Step {
	switch p.Kind {
	case PresetCanary:
		return []Step{weightStep(p.Percent), pauseStep(p.Interval)}
	case PresetLinear:
		if p.Percent <= 0 {
			return nil
		}
		var steps []Step
		for w := p.Percent; w < 100; w += p.Percent {
			steps = append(steps, weightStep(w), pauseStep(p.Interval))
		}
		return steps
	default:
		return []Step{}
	}
}

// ErrNoCanarySteps is returned by ExpandSteps for a canary with none of
// steps, preset, stepWeight or stepWeights.
var ErrNoCanarySteps = errors.New("canary needs one of steps, preset, stepWeight or stepWeights")

// ExpandSteps turns every canary form into explicit setWeight/pause steps,
// not including the final promotion to 100%:
//   - Steps are returned as they are (copied);
//   - a Preset is expanded with CodeDeploy semantics (see Preset.Steps);
//   - Flagger-style StepWeight S with MaxWeight M and Interval I gives
//     S, pause I, 2S, pause I, ... up to M (the last weight clamped to M);
//   - StepWeights [a, b, c] gives a, pause I, b, pause I, c, pause I.
//
// MaxWeight and Interval fall back to DefaultMaxWeight and
// DefaultCanaryInterval when zero, so ExpandSteps works before Default.
// It does not validate beyond what it needs to expand; run Validate first.
func (c *Canary) ExpandSteps() ([]Step, error) {
	switch {
	case c == nil:
		return nil, ErrNoCanarySteps
	case len(c.Steps) > 0:
		out := make([]Step, len(c.Steps))
		for i, s := range c.Steps {
			out[i] = s.clone()
		}
		return out, nil
	case c.Preset != "":
		p, err := ParsePreset(c.Preset)
		if err != nil {
			return nil, err
		}
		return p.Steps(), nil
	case c.StepWeight != 0 || len(c.StepWeights) > 0:
		interval := c.Interval.Duration
		if interval == 0 {
			interval = DefaultCanaryInterval
		}
		if len(c.StepWeights) > 0 {
			steps := make([]Step, 0, 2*len(c.StepWeights))
			for _, w := range c.StepWeights {
				steps = append(steps, weightStep(w), pauseStep(interval))
			}
			return steps, nil
		}
		maxW := c.MaxWeight
		if maxW == 0 {
			maxW = DefaultMaxWeight
		}
		if c.StepWeight < 1 || c.StepWeight > 99 {
			return nil, fmt.Errorf("stepWeight %d must be 1-99", c.StepWeight)
		}
		if maxW < c.StepWeight || maxW > 100 {
			return nil, fmt.Errorf("maxWeight %d must be between stepWeight %d and 100", maxW, c.StepWeight)
		}
		var steps []Step
		for w := c.StepWeight; ; w += c.StepWeight {
			if w > maxW {
				w = maxW
			}
			steps = append(steps, weightStep(w), pauseStep(interval))
			if w >= maxW {
				break
			}
		}
		return steps, nil
	default:
		return nil, ErrNoCanarySteps
	}
}

func weightStep(w int) Step { return Step{SetWeight: &w} }

func pauseStep(d time.Duration) Step { return Step{Pause: &Pause{Duration: D(d)}} }

// clone copies a step so the copy shares no pointers with the original.
func (s Step) clone() Step {
	var out Step
	if s.SetWeight != nil {
		w := *s.SetWeight
		out.SetWeight = &w
	}
	if s.Pause != nil {
		p := *s.Pause
		out.Pause = &p
	}
	return out
}
