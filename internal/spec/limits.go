package spec

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Limits on what Decode reads. A service file is a few kilobytes; these
// bound the parser's time and memory (nested flow collections cost the YAML
// parser memory quadratic in their depth: 100 KB of "[" took 3.8 GB).
const (
	// MaxDocumentBytes is the largest file or admin API body decoded.
	MaxDocumentBytes = 1 << 20
	// MaxNesting is the deepest nesting of flow collections ([ ], { }).
	MaxNesting = 32
)

// checkBounds refuses data that is too large or nested too deeply to
// decode, before the parser sees it.
func checkBounds(file string, data []byte) error {
	if len(data) > MaxDocumentBytes {
		return &FieldError{File: file, Value: strconv.Itoa(len(data)) + " bytes",
			Want: fmt.Sprintf("must be at most %d bytes (1 MiB); split the services into several files", MaxDocumentBytes)}
	}
	depth, line := 0, 1
	var quote byte // the quote a scalar is open with, or 0
	comment := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '\n':
			line++
			comment = false
			continue
		case comment:
			continue
		case quote != 0:
			switch {
			case quote == '"' && c == '\\':
				i++ // the escaped byte
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case '#':
			// A comment starts at a '#' after a blank or at a line's start.
			comment = i == 0 || data[i-1] == ' ' || data[i-1] == '\t' || data[i-1] == '\n'
		case '"', '\'':
			quote = c
		case '[', '{':
			depth++
			if depth > MaxNesting {
				return &FieldError{File: file, Line: line, Value: "nesting deeper than " + strconv.Itoa(MaxNesting),
					Want: fmt.Sprintf("flow collections ([ ] and { }) may nest at most %d deep", MaxNesting)}
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return nil
}

// valueRange is a field's allowed range, from its `range:"lo,hi"` tag: the
// one place a number's or duration's limits are written, read by Validate
// and by the configuration reference.
type valueRange struct {
	lo, hi   float64 // in the field's unit (nanoseconds for durations)
	duration bool
	// unset: zero means "not set" and is accepted (a field defaulted only
	// where it applies), written `range:"lo,hi,unset"`.
	unset bool
}

func parseRange(tag string, duration bool) (valueRange, bool) {
	if tag == "" {
		return valueRange{}, false
	}
	lo, hi, ok := strings.Cut(tag, ",")
	if !ok {
		panic("spec: bad range tag " + tag) // a programming error in types.go, caught by every test
	}
	r := valueRange{duration: duration}
	if h, opt, ok := strings.Cut(hi, ","); ok {
		if opt != "unset" {
			panic("spec: bad range tag " + tag)
		}
		hi, r.unset = h, true
	}
	parse := func(s string) float64 {
		if duration {
			d, err := time.ParseDuration(s)
			if err != nil {
				panic("spec: bad range tag " + tag)
			}
			return float64(d)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			panic("spec: bad range tag " + tag)
		}
		return f
	}
	r.lo, r.hi = parse(lo), parse(hi)
	return r, true
}

// String renders the range as users write it: "1-100", "1s to 24h".
func (r valueRange) String() string {
	var s string
	if r.duration {
		s = shortDuration(time.Duration(r.lo)) + " to " + shortDuration(time.Duration(r.hi))
	} else {
		s = strconv.FormatFloat(r.lo, 'f', -1, 64) + "-" + strconv.FormatFloat(r.hi, 'f', -1, 64)
	}
	if r.unset {
		s += " (or unset)"
	}
	return s
}

// shortDuration writes 1h rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// fieldRange returns the range of a struct field, if it has one.
func fieldRange(f reflect.StructField) (valueRange, bool) {
	return parseRange(f.Tag.Get("range"), f.Type == durationType)
}

// ranges checks every field with a range tag, anywhere in the spec.
func (v *validator) ranges() {
	v.rangesIn(reflect.ValueOf(&v.s.Spec).Elem(), "spec")
}

func (v *validator) rangesIn(rv reflect.Value, path string) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.rangesIn(rv.Elem(), path)
		}
		return
	case reflect.Slice:
		for i := range rv.Len() {
			v.rangesIn(rv.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		return
	case reflect.Struct:
	default:
		return
	}
	if rv.Type() == durationType {
		return
	}
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fv, fp := rv.Field(i), path+"."+name
		r, ok := fieldRange(f)
		if !ok {
			v.rangesIn(fv, fp)
			continue
		}
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		var x float64
		var shown string
		switch {
		case r.duration:
			d := fv.Interface().(Duration).Duration
			x, shown = float64(d), d.String()
		case fv.CanInt():
			x, shown = float64(fv.Int()), strconv.FormatInt(fv.Int(), 10)
		case fv.CanFloat():
			x, shown = fv.Float(), fmtFloat(fv.Float())
		default:
			panic("spec: range tag on " + fp + " of type " + fv.Type().String())
		}
		if (x < r.lo || x > r.hi) && !(r.unset && x == 0) {
			v.add(fp, shown, "must be "+r.String())
		}
	}
}

// Range is a field's allowed range from its `range:"lo,hi"` tag, for
// packages that must agree with it (the Kubernetes CRD's schema).
type Range struct {
	// Min and Max are in the field's unit (nanoseconds for durations).
	Min, Max float64
	// Duration is set for a Duration field.
	Duration bool
	// Unset: zero means "not set" and is accepted.
	Unset bool
}

// FieldRange returns the range of a struct field of the spec's types, if
// its tag sets one: the same parser Validate uses.
func FieldRange(f reflect.StructField) (Range, bool) {
	r, ok := fieldRange(f)
	return Range{Min: r.lo, Max: r.hi, Duration: r.duration, Unset: r.unset}, ok
}

// String renders the range as Validate's messages do: "1-100", "1s to 24h".
func (r Range) String() string {
	return valueRange{lo: r.Min, hi: r.Max, duration: r.Duration, unset: r.Unset}.String()
}
