package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one field of a service file. Decode,
// Validate, Parse and LoadFiles return these, joined with errors.Join, so a
// caller can list every problem at once (errors.As finds the first; see
// FieldErrors for all).
type FieldError struct {
	// File is the file the service came from ("" when not from a file).
	File string
	// Line and Column locate the field (1-based); 0 when unknown.
	Line   int
	Column int
	// Service is the service's metadata.name, when known.
	Service string
	// Path is the field path, like "spec.strategy.canary.steps[2].setWeight".
	Path string
	// Value is the offending value as written (strings quoted); "" when the
	// problem is not about a value (a missing or unknown field).
	Value string
	// Want says what would be valid, like "must be 0-100".
	Want string
}

// Error reads like
// `web.yaml:14: service "web": spec.strategy.canary.steps[2].setWeight is 120; must be 0-100`.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" || e.Line > 0 {
		file := e.File
		if file == "" {
			file = "<input>"
		}
		b.WriteString(file)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Service != "" {
		fmt.Fprintf(&b, "service %q: ", e.Service)
	}
	switch {
	case e.Path == "":
		b.WriteString(e.Want)
	case e.Value == "":
		b.WriteString(e.Path + ": " + e.Want)
	default:
		b.WriteString(e.Path + " is " + e.Value + "; " + e.Want)
	}
	return b.String()
}

// FieldErrors returns every *FieldError inside err (which may be a tree
// of errors.Join), in order.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var fe *FieldError
		if errors.As(err, &fe) && fe == err {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// position is where a field was written.
type position struct {
	Line, Column int
}

// quote formats a value for a FieldError: strings quoted, the rest as %v.
func quote(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	default:
		return fmt.Sprint(v)
	}
}
