package spec

import (
	"bytes"
	"encoding/json"
)

// SameSpec reports whether two services have the same schema content,
// ignoring where they were read from (File, Line and field positions), so
// a reload can tell a real change from a reformatted file.
func (s *Service) SameSpec(o *Service) bool {
	if s == nil || o == nil {
		return s == o
	}
	a, errA := json.Marshal(s)
	b, errB := json.Marshal(o)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}
