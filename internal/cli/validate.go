package cli

import (
	"errors"
	"fmt"

	"github.com/switchyard/switchyard/internal/admin"
)

// invalidConfig reports a configuration that does not load, for validate:
// in text on stderr, or with -o json|yaml on stdout in the admin API's
// error shape ({"error": ..., "code": "invalid"}), so a script reads one
// format whether it asked the API or the CLI. Either way the exit code is 2.
func (e *env) invalidConfig(err error) error {
	msg := fmt.Errorf("invalid configuration:\n%w", err)
	if e.output == "json" || e.output == "yaml" {
		if perr := e.print(admin.ErrorResponse{Error: msg.Error(), Code: admin.CodeInvalid}, nil); perr != nil {
			return perr
		}
		return &ExitError{Code: ExitUsage, Err: errors.New("")} // printed already
	}
	return &ExitError{Code: ExitUsage, Err: msg}
}
