package spec

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// QueryVars are the values a Prometheus query template may use.
type QueryVars struct {
	Service, Version, Stable string
	// Interval is a PromQL duration, e.g. "1m" or "30s".
	Interval string
}

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z_]*)\s*\}\}`)

// ExpandQuery replaces {{ service }}, {{ version }}, {{ stable }} and
// {{ interval }} in a query template. Values are label values or a
// duration Switchyard produced itself, quoted by the query's author
// (version="{{ version }}"); names are validated DNS labels, so they cannot
// break out of the quotes. An unknown placeholder is an error.
func ExpandQuery(tmpl string, vars QueryVars) (string, error) {
	var bad []string
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		switch name := placeholder.FindStringSubmatch(m)[1]; name {
		case "service":
			return vars.Service
		case "version", "canary":
			return vars.Version
		case "stable":
			return vars.Stable
		case "interval":
			return vars.Interval
		default:
			bad = append(bad, m)
			return m
		}
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("has unknown placeholder %s; use {{ service }}, {{ version }}, {{ stable }} or {{ interval }}", strings.Join(bad, ", "))
	}
	return out, nil
}

// PromDuration writes d as a PromQL duration ("1m", "1m30s", "500ms").
func PromDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return shortDuration(d)
}

// +kubebuilder:object:generate=false

// Condition is a compiled successCondition or failureCondition.
type Condition struct{ prog *vm.Program }

// CompileCondition compiles an expression over result (a float64) that
// must yield a boolean, e.g. "result < 0.01 && result >= 0". A typo is an
// error with the position.
func CompileCondition(src string) (*Condition, error) {
	prog, err := expr.Compile(src, expr.Env(map[string]any{"result": float64(0)}), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("is not a valid expression over result: %s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return &Condition{prog: prog}, nil
}

// Eval reports whether the condition holds for result.
func (c *Condition) Eval(result float64) (bool, error) {
	v, err := expr.Run(c.prog, map[string]any{"result": result})
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}
