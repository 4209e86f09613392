package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/valyala/fasthttp"
)

// When a request may be sent again is one policy for both front ends:
// replayable decides a resend to the same target on a fresh connection
// (the reused one failed before any response byte), retryable a retry on
// another target of the same version (nginx's proxy_next_upstream error).
// Each reads the request through resendView, which both front ends
// implement over their own request type without copying it.

// resendView is what the resend rules see of a request.
type resendView interface {
	method() string
	hasBody() bool
	// hasField reports whether the named header field is present with a
	// non-empty value.
	hasField(name string) bool
}

// replayable is net/http.Transport's rule for resending a request on a
// fresh connection: no body to replay, and a method that is idempotent by
// definition or marked so by an Idempotency-Key or X-Idempotency-Key.
func replayable(r resendView) bool {
	if r.hasBody() {
		return false
	}
	if idempotentMethod(r.method()) {
		return true
	}
	return r.hasField("Idempotency-Key") || r.hasField("X-Idempotency-Key")
}

// retryable reports whether an attempt that failed with err before any
// response arrived may be repeated on another target: no request body (it
// was consumed), an idempotent method or an Idempotency-Key (not
// X-Idempotency-Key: moving a request to another target is the proxy's
// policy, and it honours only the standard-track name), and an error that
// is neither a timeout (the target may still be working on it, and the
// whole request has its one deadline) nor a cancellation (the client left).
func retryable(r resendView, err error) bool {
	if r.hasBody() || isTimeout(err) || errors.Is(err, context.Canceled) {
		return false
	}
	return idempotentMethod(r.method()) || r.hasField("Idempotency-Key")
}

// idempotentMethod reports whether a method is idempotent and safe to
// resend by definition; "" is net/http's GET.
func idempotentMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// httpResend is a net/http request as the resend rules see it.
type httpResend http.Request

func (r *httpResend) method() string { return r.Method }

func (r *httpResend) hasBody() bool { return r.Body != nil && r.Body != http.NoBody }

func (r *httpResend) hasField(name string) bool {
	vs := r.Header[name]
	return len(vs) > 0 && vs[0] != ""
}

// fastResend is a fasthttp request as the resend rules see it; its body
// has been read whole.
type fastResend fasthttp.Request

func (r *fastResend) method() string { return b2s(r.Header.Method()) }

func (r *fastResend) hasBody() bool { return len((*fasthttp.Request)(r).Body()) > 0 }

func (r *fastResend) hasField(name string) bool { return len(r.Header.Peek(name)) > 0 }
