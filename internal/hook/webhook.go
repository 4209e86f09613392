package hook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/runner"
	"github.com/switchyard/switchyard/internal/spec"
)

// Namespace is the payload's namespace: Switchyard has none, and receivers
// written for Flagger expect one.
const Namespace = "default"

// Flagger's phase names, as its receivers know them.
const (
	PhaseWaiting          = "Waiting"
	PhaseProgressing      = "Progressing"
	PhaseWaitingPromotion = "WaitingPromotion"
	PhasePromoting        = "Promoting"
	PhaseFinalising       = "Finalising"
	PhaseSucceeded        = "Succeeded"
	PhaseFailed           = "Failed"
)

// maxResponse is how much of a webhook's answer is kept for the history.
const maxResponse = 512

// Payload is the body of every webhook call: Flagger's
// CanaryWebhookPayload, so flagger-loadtester and gates written for Flagger
// work unchanged.
type Payload struct {
	// Name is the service's name.
	Name string `json:"name"`
	// Namespace is always Namespace.
	Namespace string `json:"namespace"`
	// Phase is Flagger's name of the rollout's phase for this call.
	Phase string `json:"phase"`
	// Checksum identifies the revision being rolled out (the service and
	// the new version), the same for every call about it.
	Checksum string `json:"checksum,omitempty"`
	// Metadata is the webhook's metadata (and, for event webhooks,
	// eventMessage, eventType and timestamp).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Checksum is the payload checksum of version of service.
func Checksum(service, version string) string {
	sum := sha256.Sum256([]byte(service + "\x00" + version))
	return hex.EncodeToString(sum[:8])
}

// phaseOf is the phase a webhook type is called in (post-rollout and event
// webhooks say theirs when called).
func phaseOf(typ string) string {
	switch typ {
	case spec.WebhookConfirmRollout:
		return PhaseWaiting
	case spec.WebhookConfirmPromotion:
		return PhaseWaitingPromotion
	}
	return PhaseProgressing
}

// Webhooks calls the webhooks of spec.webhooks through an HTTP client that
// enforces the egress policy (internal/egress). Calls carry Flagger's
// payload and, when the webhook has a secret, the Standard Webhooks
// signature headers. Secrets and response bodies are never logged.
type Webhooks struct {
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	// wait sleeps between tries and polls; tests may shorten it.
	wait func(ctx context.Context, d time.Duration) error

	fired sync.WaitGroup // fire-and-forget calls in flight
}

var _ runner.WebhookCaller = (*Webhooks)(nil)

// NewWebhooks returns a caller using client (egress.Policy.Client; each
// call is bounded by its webhook's timeout through its context) and log.
func NewWebhooks(client *http.Client, log *slog.Logger) *Webhooks {
	return &Webhooks{client: client, log: log, now: time.Now, wait: sleep}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// payload builds the payload of w about version of svc.
func payload(svc *spec.Service, w *spec.Webhook, version, phase string) Payload {
	p := Payload{Name: svc.Metadata.Name, Namespace: Namespace, Phase: phase, Checksum: Checksum(svc.Metadata.Name, version)}
	if len(w.Metadata) > 0 {
		p.Metadata = make(map[string]string, len(w.Metadata))
		for k, v := range w.Metadata {
			p.Metadata[k] = v
		}
	}
	return p
}

// Call implements runner.WebhookCaller: it calls w about version, retrying
// a failure (a transport error or a status other than 2xx) w.Retries times
// with spec.WebhookBackoff between tries, and returns the last failure.
func (c *Webhooks) Call(ctx context.Context, svc *spec.Service, w *spec.Webhook, version string) (string, error) {
	return c.call(ctx, svc, w, payload(svc, w, version, phaseOf(w.Type)))
}

func (c *Webhooks) call(ctx context.Context, svc *spec.Service, w *spec.Webhook, p Payload) (string, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	id := newID()
	retries := 0
	if w.Retries != nil {
		retries = *w.Retries
	}
	var answer string
	for try := 0; ; try++ {
		var status int
		status, answer, err = c.post(ctx, svc, w, id, body)
		if err == nil && status/100 != 2 {
			err = fmt.Errorf("answered HTTP %d", status)
			if answer != "" {
				err = fmt.Errorf("answered HTTP %d: %s", status, answer)
			}
		}
		if err == nil || try >= retries || ctx.Err() != nil {
			break
		}
		c.log.Info("webhook failed, retrying", "service", svc.Metadata.Name, "webhook", w.Name, "type", w.Type, "try", try+1, "err", err)
		if c.wait(ctx, spec.WebhookBackoff(try+1)) != nil {
			break
		}
	}
	if err != nil {
		return answer, fmt.Errorf("webhook %s (%s): %w", w.Name, w.Type, err)
	}
	return answer, nil
}

// Ask implements runner.WebhookCaller: it calls w once about version and
// reports whether it answered 200 (a rollback webhook asking to roll back,
// a gate opening).
func (c *Webhooks) Ask(ctx context.Context, svc *spec.Service, w *spec.Webhook, version string) (bool, string, error) {
	return c.ask(ctx, svc, w, payload(svc, w, version, phaseOf(w.Type)))
}

func (c *Webhooks) ask(ctx context.Context, svc *spec.Service, w *spec.Webhook, p Payload) (bool, string, error) {
	body, err := json.Marshal(p)
	if err != nil {
		return false, "", err
	}
	status, answer, err := c.post(ctx, svc, w, newID(), body)
	if err != nil {
		return false, "", err
	}
	return status == http.StatusOK, fmt.Sprintf("HTTP %d %s", status, answer), nil
}

// Gate asks confirm-* webhook w about version every poll until it answers
// 200, and returns nil then; otherwise it returns ctx's error when ctx is
// done (the progress deadline, or the rollout moved on).
func (c *Webhooks) Gate(ctx context.Context, svc *spec.Service, w *spec.Webhook, version string, poll time.Duration) error {
	for {
		ok, answer, err := c.Ask(ctx, svc, w, version)
		switch {
		case ok:
			return nil
		case err != nil:
			c.log.Info("gate not reached", "service", svc.Metadata.Name, "webhook", w.Name, "err", err)
		default:
			c.log.Info("gate closed", "service", svc.Metadata.Name, "webhook", w.Name, "answer", firstWords(answer))
		}
		if err := c.wait(ctx, poll); err != nil {
			return err
		}
	}
}

// Fire calls w on a goroutine of its own (post-rollout, event): the
// runner never waits for it. Close waits for every call fired.
func (c *Webhooks) Fire(svc *spec.Service, w spec.Webhook, p Payload) {
	c.fired.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), w.Budget())
		defer cancel()
		if _, err := c.call(ctx, svc, &w, p); err != nil {
			c.log.Warn("webhook failed", "service", svc.Metadata.Name, "webhook", w.Name, "type", w.Type, "err", err)
		}
	})
}

// Close waits for the fired calls to end (each is bounded by its budget).
func (c *Webhooks) Close() { c.fired.Wait() }

// Finished fires svc's post-rollout webhooks for a rollout's end.
func (c *Webhooks) Finished(svc *spec.Service, f rollout.Finished) {
	phase := PhaseSucceeded
	if f.Result != rollout.ResultPromoted {
		phase = PhaseFailed
	}
	for _, w := range svc.Spec.WebhooksOf(spec.WebhookPostRollout) {
		c.Fire(svc, w, payload(svc, &w, f.Version, phase))
	}
}

// Event fires svc's event webhooks for a notification, with Flagger's
// eventMessage, eventType and timestamp (Unix milliseconds) in metadata.
func (c *Webhooks) Event(svc *spec.Service, version string, phase rollout.Phase, kind, message string) {
	for _, w := range svc.Spec.WebhooksOf(spec.WebhookEvent) {
		p := payload(svc, &w, version, flaggerPhase(phase))
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		typ := "Normal"
		if strings.Contains(kind, "fail") || strings.Contains(kind, "roll") || kind == "aborted" || kind == "paused" {
			typ = "Warning"
		}
		p.Metadata["eventMessage"] = message
		p.Metadata["eventType"] = typ
		p.Metadata["timestamp"] = strconv.FormatInt(c.now().UnixMilli(), 10)
		c.Fire(svc, w, p)
	}
}

// flaggerPhase names a service's phase as Flagger would.
func flaggerPhase(p rollout.Phase) string {
	switch p {
	case rollout.PhaseStable:
		return PhaseSucceeded
	case rollout.PhaseRollingBack:
		return PhaseFailed
	}
	return PhaseProgressing
}

// post makes one signed call and returns the status and the start of the
// answer.
func (c *Webhooks) post(ctx context.Context, svc *spec.Service, w *spec.Webhook, id string, body []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", fmt.Errorf("url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "switchyard")
	secret, err := w.Secret(svc.Dir())
	if err != nil {
		return 0, "", err
	}
	if secret != nil {
		ts := c.now().Unix()
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", Sign(secret, id, ts, body))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// *url.Error repeats the URL; the caller names the webhook
			// instead (a URL may carry a token in its query).
			err = uerr.Err
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// Sign is the Standard Webhooks signature of a message: "v1," and the
// base64 HMAC-SHA256 of "id.timestamp.body". A secret written as
// "whsec_<base64>" (as the spec's libraries generate) is the decoded bytes;
// any other is used as it is.
func Sign(secret []byte, id string, ts int64, body []byte) string {
	key := secret
	if rest, ok := bytes.CutPrefix(secret, []byte("whsec_")); ok {
		if k, err := base64.StdEncoding.DecodeString(string(rest)); err == nil {
			key = k
		}
	}
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", id, ts)
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// newID is a message id for webhook-id: the same across the retries of one
// call, so a receiver can drop a duplicate.
func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return "msg_" + hex.EncodeToString(b[:])
}

func firstWords(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
