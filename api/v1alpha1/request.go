package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Commands a Request may carry: the CLI's verbs for a running rollout.
const (
	CommandPromote  = "promote"
	CommandPause    = "pause"
	CommandResume   = "resume"
	CommandAbort    = "abort"
	CommandRetry    = "retry"
	CommandRollback = "rollback"
)

// Results of a request, in RequestStatus.
const (
	RequestDone    = "done"
	RequestRefused = "refused"
)

// Request is a command for a Rollout's rollout, as the JSON of the
// switchyard.dev/request annotation. ID makes it one command: the
// controller applies a request whose ID differs from
// status.lastRequest.id, exactly once, and records the answer there.
type Request struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	// Full is promote's --full: skip every remaining step.
	Full bool `json:"full,omitempty"`
	// Reason is abort's --reason.
	Reason string `json:"reason,omitempty"`
	// By is who asked (recorded in the history).
	By string `json:"by,omitempty"`
}

// ParseRequest decodes and checks the annotation's value.
func ParseRequest(s string) (Request, error) {
	var r Request
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Request{}, fmt.Errorf("annotation %s is not a request (%w); set it with the switchyard CLI", AnnotationRequest, err)
	}
	if strings.TrimSpace(r.ID) == "" {
		return Request{}, fmt.Errorf("annotation %s: id is empty; every request needs a new id", AnnotationRequest)
	}
	switch r.Command {
	case CommandPromote, CommandPause, CommandResume, CommandAbort, CommandRetry, CommandRollback:
	default:
		return Request{}, fmt.Errorf("annotation %s: command %q is not one of promote, pause, resume, abort, retry", AnnotationRequest, r.Command)
	}
	return r, nil
}

// String is the annotation's value.
func (r Request) String() string {
	b, _ := json.Marshal(r) // a Request always encodes
	return string(b)
}

// RequestStatus is the controller's answer to a Request.
type RequestStatus struct {
	// ID is the request's id.
	ID string `json:"id"`
	// Command is the request's command.
	Command string `json:"command"`
	// Result is done (applied and saved) or refused (see message).
	// +kubebuilder:validation:Enum=done;refused
	Result string `json:"result"`
	// Message says why a request was refused.
	// +optional
	Message string `json:"message,omitempty"`
	// At is when the controller answered.
	At metav1.Time `json:"at"`
}
