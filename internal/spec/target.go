package spec

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// TargetSchemes are the schemes a target may carry: none or http:// for
// HTTP/1.1, https:// for TLS, h2c:// for cleartext HTTP/2 (gRPC).
var TargetSchemes = []string{"http://", "https://", "h2c://"}

// Target is a version's target, parsed: where the proxy connects and how.
// Validate, the proxy and the daemon's checks all read targets through
// ParseTarget, so a target is valid in one place exactly when it is valid
// in the others.
type Target struct {
	// Host is the host:port to connect to.
	Host string
	// Scheme is "http" or "https": what is spoken to the target.
	Scheme string
	// H2C is set for an h2c:// target: cleartext HTTP/2 with prior
	// knowledge (gRPC); Scheme is then "http".
	H2C bool
}

// HTTPS reports whether the target is spoken to over TLS.
func (t Target) HTTPS() bool { return t.Scheme == "https" }

// TargetError says what is wrong with a target.
type TargetError struct {
	Target string // as given
	Want   string // what would be valid, like "must be host:port, ..."
}

// Error reads like `target "x:y" must be host:port, like "127.0.0.1:9001" ...`.
func (e *TargetError) Error() string { return fmt.Sprintf("target %q %s", e.Target, e.Want) }

// ParseTarget parses a target: host:port, or host:port prefixed with
// http://, https:// or h2c:// (see TargetSchemes). The host is an IP
// address or a host name and the port 1-65535; nothing may follow the
// port. Its errors are *TargetError.
func ParseTarget(s string) (Target, error) {
	t, rest := Target{Scheme: "http"}, s
	if i := strings.Index(s, "://"); i >= 0 {
		if !slices.Contains(TargetSchemes, s[:i+3]) {
			return Target{}, &TargetError{s, fmt.Sprintf("has scheme %q; use host:port, or prefix it with http://, https:// or h2c:// (cleartext HTTP/2, e.g. gRPC)", s[:i])}
		}
		switch s[:i] {
		case "https":
			t.Scheme = "https"
		case "h2c":
			t.H2C = true
		}
		rest = s[i+3:]
	}
	if want := checkHostPort(rest, false); want != "" {
		return Target{}, &TargetError{s, want}
	}
	t.Host = rest
	return t, nil
}

// CheckTarget says what is wrong with a target given outside a service
// file (e.g. `deploy --targets`), or returns nil. Its message is what
// would be valid, without the target (callers name it).
func CheckTarget(s string) error {
	if want := checkTarget(s); want != "" {
		return errors.New(want)
	}
	return nil
}

// checkTarget returns what is wrong with a target, or "".
func checkTarget(s string) string {
	if _, err := ParseTarget(s); err != nil {
		var te *TargetError
		if errors.As(err, &te) {
			return te.Want
		}
		return err.Error()
	}
	return ""
}
