package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Decode strictly decodes every YAML document in data (documents separated
// by "---") into a Service, recording each service's File, Line and the
// position of each field for Validate. Unknown, misspelled, wrongly-cased
// and duplicate keys, and malformed durations, are errors naming
// file:line:column; every such problem in the buffer is returned, joined.
// Data larger than MaxDocumentBytes or nested deeper than MaxNesting is
// refused before parsing. Decode neither defaults nor validates: see Parse
// and LoadFiles.
//
// A document with such problems is still decoded without the fields that
// could not be, and returned with the error, so that LoadFiles can validate
// the rest and show both kinds of problem in one run. Such a service is for
// reporting only: with a non-nil error, callers must not use the services.
func Decode(file string, data []byte) ([]*Service, error) {
	if err := checkBounds(file, data); err != nil {
		return nil, err
	}
	var docs []*ast.DocumentNode
	var errs []error
	for _, chunk := range splitDocuments(data) {
		f, err := parser.ParseBytes(chunk, 0)
		if err != nil {
			// A syntax error (this includes a duplicate key) stops the
			// parser; the other documents are still checked.
			errs = append(errs, yamlError(file, "", nil, err))
			continue
		}
		docs = append(docs, f.Docs...)
	}
	var svcs []*Service
	for _, doc := range docs {
		body := unwrap(doc.Body)
		if body == nil || body.Type() == ast.NullType || body.Type() == ast.CommentType {
			continue // an empty document, e.g. after a trailing "---"
		}
		start := tokenPos(body.GetToken())
		if m, ok := body.(*ast.MappingNode); ok && len(m.Values) > 0 {
			start = tokenPos(m.Values[0].Key.GetToken())
		}
		w := &walker{
			file:      file,
			service:   lookupString(body, "metadata", "name"),
			positions: map[string]position{"": start},
		}
		if _, ok := body.(*ast.MappingNode); !ok {
			w.fail(start, "(document)", nodeValue(body), "must be a mapping with apiVersion, kind, metadata and spec")
			errs = append(errs, w.errs...)
			continue
		}
		w.walk(body, reflect.TypeFor[Service](), "")
		svc, err := w.decode(body)
		errs = append(errs, w.errs...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if svc == nil {
			continue
		}
		svc.File = file
		svc.Line = start.Line
		svc.positions = w.positions
		if len(w.errs) > 0 {
			svc.dropped = w.dropped
		}
		svcs = append(svcs, svc)
	}
	return svcs, errors.Join(errs...)
}

// Parse decodes, defaults and validates the services in one buffer (a file
// or an admin API request body), including the checks across services.
// Like LoadFiles, it validates what did decode when something did not, so
// every problem is reported at once.
func Parse(file string, data []byte) ([]*Service, error) {
	svcs, decodeErr := Decode(file, data)
	for _, s := range svcs {
		s.Default()
	}
	if err := errors.Join(decodeErr, ValidateAll(svcs)); err != nil {
		return nil, err
	}
	return svcs, nil
}

// LoadFiles reads, decodes, defaults and validates every file, including
// the checks across all their services (unique names, unique listen
// addresses). It returns every problem in every file at once, and no
// services when there is any problem.
func LoadFiles(paths ...string) ([]*Service, error) {
	var all []*Service
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read service file: %w", err))
			continue
		}
		svcs, err := Decode(p, data)
		if err != nil {
			errs = append(errs, err)
		}
		all = append(all, svcs...)
	}
	for _, s := range all {
		s.Default()
	}
	// Validate what did decode even when another document did not, so the
	// user sees every problem in one run.
	if err := ValidateAll(all); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, &FieldError{File: strings.Join(paths, ", "), Want: "no services found; a file needs at least one document with apiVersion, kind: Service, metadata and spec"}
	}
	return all, nil
}

// splitDocuments splits a YAML stream at its "---" document markers and
// parses nothing itself. go-yaml v1.19.2 silently drops every document after
// an empty or comment-only one (goccy/go-yaml#765, #870), so Decode parses
// each document on its own. Each chunk is prefixed with as many newlines as
// lines precede it, so positions still refer to the whole file. A marker is
// "---" at the start of a line followed by a blank or the line's end; YAML
// forbids that sequence inside scalars, so the split is exact.
func splitDocuments(data []byte) [][]byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	var chunks [][]byte
	start := 0
	flush := func(end int) {
		var b bytes.Buffer
		b.Write(bytes.Repeat([]byte("\n"), start))
		for _, l := range lines[start:end] {
			b.Write(l)
		}
		chunks = append(chunks, b.Bytes())
	}
	for i, l := range lines {
		if i > start && isDocumentMarker(l) {
			flush(i)
			start = i
		}
	}
	flush(len(lines))
	return chunks
}

func isDocumentMarker(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, []byte("---"))
	return ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r')
}

// walker checks a document's AST against the Go types before decoding: it
// reports every unknown key (with a suggestion) and every malformed
// duration with its position, which the decoder alone would not (it stops
// at the first problem, and duration errors carry no position), and it
// records the position of every field.
type walker struct {
	file      string
	service   string
	positions map[string]position
	errs      []error
	// fields records each mapping entry by its path, so that decode can
	// leave out one the decoder refuses.
	fields map[string]fieldNode
	// dropped holds the paths left out of the document, and their parents.
	dropped map[string]bool
}

// fieldNode is one key: value entry and the mapping that holds it.
type fieldNode struct {
	parent *ast.MappingNode
	entry  *ast.MappingValueNode
}

// maxDecodeRetries bounds how many fields decode leaves out, one per
// decoder error, before it gives up on a document.
const maxDecodeRetries = 100

// decode decodes body, which walk has checked and trimmed, into a Service.
// The decoder stops at its first error (a scalar of the wrong type); decode
// reports it, leaves that field out and tries again, so every such problem
// is reported and the rest of the document can still be validated. It
// returns nil and no error when nothing more can be decoded after a
// reported problem.
func (w *walker) decode(body ast.Node) (*Service, error) {
	for range maxDecodeRetries {
		svc := &Service{}
		err := yaml.NodeToValue(body, svc, yaml.Strict(), yaml.UseJSONUnmarshaler())
		if err == nil {
			return svc, nil
		}
		fe := yamlError(w.file, w.service, w.positions, err)
		f, ok := w.fields[fieldPath(fe)]
		if !ok || !w.drop(f, fieldPath(fe)) {
			if len(w.errs) == 0 {
				return nil, fe
			}
			// The earlier problems are reported; this one may be their
			// consequence.
			w.errs = append(w.errs, fe)
			return nil, nil
		}
		w.errs = append(w.errs, fe)
	}
	return nil, nil
}

// fieldPath is the path of a decoder error, or "".
func fieldPath(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Path
	}
	return ""
}

// drop removes the entry at path from its mapping and records it.
func (w *walker) drop(f fieldNode, path string) bool {
	for i, mv := range f.parent.Values {
		if mv == f.entry {
			f.parent.Values = append(f.parent.Values[:i:i], f.parent.Values[i+1:]...)
			w.markDropped(path)
			return true
		}
	}
	return false
}

// markDropped records path, and its parent (whose "needs one of" check
// would otherwise fire), as left out.
func (w *walker) markDropped(path string) {
	if w.dropped == nil {
		w.dropped = map[string]bool{}
	}
	w.dropped[path] = true
	if p := parentPath(path); p != "" {
		w.dropped[p] = true
	}
}

var durationType = reflect.TypeFor[Duration]()

func (w *walker) fail(pos position, path, value, want string) {
	w.errs = append(w.errs, &FieldError{File: w.file, Line: pos.Line, Column: pos.Column,
		Service: w.service, Path: path, Value: value, Want: want})
}

// walk checks n against t and reports whether n can be decoded as a t;
// the caller leaves out what cannot.
func (w *walker) walk(n ast.Node, t reflect.Type, path string) bool {
	n = unwrap(n)
	if n == nil || n.Type() == ast.NullType || n.Type() == ast.AliasType {
		return true // nothing to check; the decoder resolves aliases
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pos := tokenPos(n.GetToken())
	if _, seen := w.positions[path]; !seen {
		w.positions[path] = pos
	}
	switch {
	case t == durationType:
		s, ok := n.(*ast.StringNode)
		if !ok {
			w.fail(pos, path, n.GetToken().Value, `must be a duration with a unit, like "500ms", "30s", "1m" or "2h45m"`)
			return false
		}
		if s.Value == "" {
			return true
		}
		switch d, err := time.ParseDuration(s.Value); {
		case err != nil:
			w.fail(pos, path, quote(s.Value), `must be a duration like "500ms", "30s", "1m" or "2h45m"`)
			return false
		case d == 0 && strings.ContainsAny(s.Value, "123456789"):
			// It would decode as 0, read as unset, and take the default.
			w.fail(pos, path, quote(s.Value), "is shorter than a nanosecond; write 0 to leave it unset, or a longer duration")
			return false
		}
	case t.Kind() == reflect.Struct:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			w.fail(pos, path, nodeValue(n), "must be a mapping (key: value)")
			return false
		}
		fields := jsonFields(t)
		kept := make([]*ast.MappingValueNode, 0, len(m.Values))
		for _, mv := range m.Values {
			if mv.Key.IsMergeKey() {
				kept = append(kept, mv)
				continue // "<<: *anchor"; the decoder checks the merged keys
			}
			name := keyString(mv.Key)
			kpos := tokenPos(mv.Key.GetToken())
			child := join(path, name)
			f, ok := fields[name]
			if !ok {
				w.fail(kpos, child, "", "unknown field; "+suggest(name, fields))
				w.markDropped(child)
				// The field it was meant to be is missing because of it: that
				// is not a second problem.
				if meant, _ := closestField(name, fields); meant != "" {
					w.markDropped(join(path, meant))
				}
				continue
			}
			w.positions[child] = kpos
			if !w.walk(mv.Value, f.Type, child) {
				w.markDropped(child)
				continue
			}
			if w.fields == nil {
				w.fields = map[string]fieldNode{}
			}
			w.fields[child] = fieldNode{parent: m, entry: mv}
			kept = append(kept, mv)
		}
		m.Values = kept
	case t.Kind() == reflect.Map:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			w.fail(pos, path, nodeValue(n), "must be a mapping (key: value)")
			return false
		}
		ok = true
		for _, mv := range m.Values {
			child := join(path, keyString(mv.Key))
			w.positions[child] = tokenPos(mv.Key.GetToken())
			ok = w.walk(mv.Value, t.Elem(), child) && ok
		}
		// A map or list with a bad element is left out whole: leaving out
		// the element would renumber the others' paths.
		return ok
	case t.Kind() == reflect.Slice:
		s, ok := n.(*ast.SequenceNode)
		if !ok {
			w.fail(pos, path, nodeValue(n), "must be a list")
			return false
		}
		ok = true
		for i, v := range s.Values {
			child := path + "[" + strconv.Itoa(i) + "]"
			if v != nil {
				w.positions[child] = tokenPos(v.GetToken())
			}
			ok = w.walk(v, t.Elem(), child) && ok
		}
		return ok
	}
	// Scalars are left to the decoder, whose type errors carry a position.
	return true
}

// jsonFields maps the JSON names of t's exported fields to the fields.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// suggest proposes the known field closest to an unknown key.
func suggest(name string, fields map[string]reflect.StructField) string {
	switch best, exact := closestField(name, fields); {
	case exact:
		return fmt.Sprintf("did you mean %q? (keys are case-sensitive)", best)
	case best != "":
		return fmt.Sprintf("did you mean %q?", best)
	}
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	return "valid fields here are " + strings.Join(known, ", ")
}

// closestField finds the field name was probably meant to be: the same but
// for case (exact), or within an edit distance of 2; "" when none is.
func closestField(name string, fields map[string]reflect.StructField) (best string, exact bool) {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	bestD := 3
	for _, k := range known {
		if d := levenshtein(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best, false
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// unwrap looks through anchors and tags to the node that holds the value.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		case *ast.DocumentNode:
			n = v.Body
		default:
			return n
		}
	}
}

func keyString(k ast.MapKeyNode) string {
	if s, ok := k.(ast.ScalarNode); ok {
		return fmt.Sprint(s.GetValue())
	}
	return k.GetToken().Value
}

func nodeValue(n ast.Node) string {
	switch v := n.(type) {
	case *ast.StringNode:
		return quote(v.Value)
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	default:
		return n.GetToken().Value
	}
}

func tokenPos(t *token.Token) position {
	if t == nil || t.Position == nil {
		return position{}
	}
	return position{Line: t.Position.Line, Column: t.Position.Column}
}

// lookupString returns the string at a key path of a mapping, or "".
func lookupString(n ast.Node, keys ...string) string {
	for _, k := range keys {
		m, ok := unwrap(n).(*ast.MappingNode)
		if !ok {
			return ""
		}
		n = nil
		for _, mv := range m.Values {
			if keyString(mv.Key) == k {
				n = mv.Value
				break
			}
		}
		if n == nil {
			return ""
		}
	}
	if s, ok := unwrap(n).(*ast.StringNode); ok {
		return s.Value
	}
	return ""
}

// yamlError turns a go-yaml error into a *FieldError with its position and,
// when positions are known, the field path at that position.
func yamlError(file, service string, positions map[string]position, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &FieldError{File: file, Service: service, Want: err.Error()}
	}
	pos := tokenPos(ye.GetToken())
	fe := &FieldError{File: file, Line: pos.Line, Column: pos.Column, Service: service, Want: ye.GetMessage()}
	fe.Path = pathAt(positions, pos.Line)
	var te *yaml.TypeError
	if errors.As(err, &te) && fe.Path != "" {
		fe.Value = quote(ye.GetToken().Value)
		if ye.GetToken().Type != token.StringType && ye.GetToken().Type != token.DoubleQuoteType && ye.GetToken().Type != token.SingleQuoteType {
			fe.Value = ye.GetToken().Value
		}
		fe.Want = "must be " + kindName(te.DstType)
	}
	return fe
}

// pathAt finds the deepest recorded field path on a line.
func pathAt(positions map[string]position, line int) string {
	best := ""
	for p, pos := range positions {
		if pos.Line == line && len(p) > len(best) {
			best = p
		}
	}
	return best
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping (key: value)"
	default:
		return "a " + t.String()
	}
}
