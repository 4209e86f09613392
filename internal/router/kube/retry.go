// Package kube holds what the Kubernetes routers (gatewayapi, istio) share:
// writing an object conditionally on the resourceVersion read, and
// reading and changing it again when someone else wrote in between.
package kube

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Attempts bounds how often one change reads and writes an object when
// its writes meet conflicts.
const Attempts = 8

// Write reports a write's error to Update (so that a conflict is retried).
type Write struct{ Err error }

func (w Write) Error() string { return "write: " + w.Err.Error() }
func (w Write) Unwrap() error { return w.Err }

// Update runs attempt (read, change, conditional write) until it returns
// anything but a conflicting Write, at most Attempts times, waiting
// attempt × 20 ms between two (so that a client whose reads come from a
// cache can catch up). attempt returns nil when the write succeeded or
// nothing needed writing, a Write{err} for the write's error (what then
// names the object in Update's error), and any other error, returned as
// it is, to stop at once.
func Update(ctx context.Context, what string, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		w, isWrite := err.(Write)
		switch {
		case err == nil:
			return nil
		case !isWrite:
			return err
		case !apierrors.IsConflict(w.Err):
			return fmt.Errorf("%s: %w", what, w)
		case n >= Attempts:
			return fmt.Errorf("%s: still conflicting after %d attempts: %w", what, n, w.Err)
		}
		t := time.NewTimer(time.Duration(n) * 20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
	}
}
