// Package notify sends a service's rollout events to its notification
// channels (spec.notifications): Slack incoming webhooks and generic JSON
// webhooks. The outbox is the store's history: the machine's entries are
// persisted with the state before any action runs, and each channel's
// cursor is advanced only after a delivery, so a crash loses no
// notification and sends each at most twice.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/store"
)

// Store is what the notifier reads and writes: the history and the
// channels' cursors.
type Store interface {
	HistoryAfter(ctx context.Context, service string, after uint64, max int) ([]store.Record, error)
	LastSeq(ctx context.Context, service string) (uint64, error)
	Cursor(ctx context.Context, name string) (uint64, bool, error)
	SetCursor(ctx context.Context, name string, seq uint64) error
}

// Notifier delivers notifications; Run does the work.
type Notifier struct {
	log    *slog.Logger
	st     Store
	client *http.Client
	wake   chan struct{}

	mu       sync.Mutex
	channels map[string][]spec.Notification // by service
}

// New returns a notifier sending with client (an egress-checked client).
func New(log *slog.Logger, st Store, client *http.Client) *Notifier {
	return &Notifier{log: log, st: st, client: client, wake: make(chan struct{}, 1), channels: map[string][]spec.Notification{}}
}

// Configure sets the channels of every service (the configuration in force).
func (n *Notifier) Configure(svcs []*spec.Service) {
	m := map[string][]spec.Notification{}
	for _, s := range svcs {
		if len(s.Spec.Notifications) > 0 {
			m[s.Metadata.Name] = slices.Clone(s.Spec.Notifications)
		}
	}
	n.mu.Lock()
	n.channels = m
	n.mu.Unlock()
	n.Wake()
}

// Wake asks for a delivery round now (a rollout event happened). It never
// blocks.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: on every Wake, and every few seconds to
// retry channels that failed.
func (n *Notifier) Run(ctx context.Context) {
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		n.deliver(ctx)
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-t.C:
		}
	}
}

func (n *Notifier) deliver(ctx context.Context) {
	n.mu.Lock()
	channels := maps.Clone(n.channels)
	n.mu.Unlock()
	for _, svc := range slices.Sorted(maps.Keys(channels)) {
		for _, ch := range channels[svc] {
			if err := n.deliverChannel(ctx, svc, ch); err != nil && ctx.Err() == nil {
				n.log.Warn("notification not delivered; will retry", "service", svc, "channel", ch.Name, "err", err)
			}
		}
	}
}

// deliverChannel sends what channel ch has not had yet, in order, stopping
// at the first failure (it is retried, so nothing is skipped).
func (n *Notifier) deliverChannel(ctx context.Context, svc string, ch spec.Notification) error {
	key := svc + "/" + ch.Name
	cursor, found, err := n.st.Cursor(ctx, key)
	if err != nil {
		return err
	}
	if !found {
		// A new channel starts with what happens from now on, not with
		// the whole past.
		last, err := n.st.LastSeq(ctx, svc)
		if err != nil {
			return err
		}
		return n.st.SetCursor(ctx, key, last)
	}
	for {
		recs, err := n.st.HistoryAfter(ctx, svc, cursor, 100)
		if err != nil || len(recs) == 0 {
			return err
		}
		for _, rec := range recs {
			if kind, ok := wanted(ch, rec.Entry); ok {
				if err := n.send(ctx, svc, ch, kind, rec.Entry); err != nil {
					return err
				}
			}
			cursor = rec.Seq
			if err := n.st.SetCursor(ctx, key, cursor); err != nil {
				return err
			}
		}
	}
}

// wanted reports whether ch takes entry e, and as which event kind (a
// failed verdict is "analysis-failed").
func wanted(ch spec.Notification, e rollout.HistoryEntry) (string, bool) {
	kind := e.Kind
	if kind == "verdict" {
		if e.Verdict == nil || e.Verdict.Result != rollout.VerdictFailed {
			return "", false
		}
		kind = "analysis-failed"
	}
	events := ch.Events
	if len(events) == 0 {
		events = spec.NotificationEvents
	}
	return kind, slices.Contains(events, kind)
}

// Event is the body of a generic webhook notification.
type Event struct {
	Service string          `json:"service"`
	Rollout uint64          `json:"rollout"`
	Kind    string          `json:"kind"`
	Message string          `json:"message"`
	Step    int             `json:"step"`
	Weights rollout.Weights `json:"weights,omitempty"`
	By      string          `json:"by,omitempty"`
	At      time.Time       `json:"at"`
}

// maxAttempts bounds the tries of one delivery within a round; the round
// after retries again.
const maxAttempts = 3

func (n *Notifier) send(ctx context.Context, svc string, ch spec.Notification, kind string, e rollout.HistoryEntry) error {
	target, err := channelURL(ch)
	if err != nil {
		return err
	}
	body, err := json.Marshal(payload(ch, svc, kind, e))
	if err != nil {
		return err
	}
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		err = n.post(ctx, ch, target, body)
		if err == nil || attempt == maxAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 8*time.Second)
	}
}

// post sends one request; its errors never carry the URL (a Slack URL is a
// token).
func (n *Notifier) post(ctx context.Context, ch spec.Notification, target string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("channel %s: the URL is not valid", ch.Name)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL
		}
		return fmt.Errorf("channel %s: %w", ch.Name, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("channel %s: the receiver answered %s", ch.Name, res.Status)
	}
	return nil
}

// channelURL reads a channel's URL from its file or environment variable.
func channelURL(ch spec.Notification) (string, error) {
	var raw string
	switch {
	case ch.URLFile != "":
		b, err := os.ReadFile(ch.URLFile)
		if err != nil {
			return "", fmt.Errorf("channel %s: read urlFile: %w", ch.Name, err)
		}
		raw = string(b)
	default:
		raw = os.Getenv(ch.URLEnv)
		if raw == "" {
			return "", fmt.Errorf("channel %s: environment variable %s is empty", ch.Name, ch.URLEnv)
		}
	}
	raw = strings.TrimSpace(raw)
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("channel %s: the URL in its urlFile/urlEnv is not an http(s) URL", ch.Name)
	}
	return raw, nil
}

func payload(ch spec.Notification, svc, kind string, e rollout.HistoryEntry) any {
	if ch.Type != spec.NotifySlack {
		return Event{Service: svc, Rollout: e.Rollout, Kind: kind, Message: e.Message, Step: e.Step, Weights: e.Weights, By: e.By, At: e.At}
	}
	text := fmt.Sprintf("%s %s: %s", svc, kind, e.Message)
	context := "weights " + rollout.FormatWeights(e.Weights)
	if e.By != "" {
		context += " · by " + e.By
	}
	if e.Rollout != 0 {
		context += fmt.Sprintf(" · rollout #%d", e.Rollout)
	}
	type textObj struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type block struct {
		Type     string    `json:"type"`
		Text     *textObj  `json:"text,omitempty"`
		Elements []textObj `json:"elements,omitempty"`
	}
	return struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}{
		Text: text,
		Blocks: []block{
			{Type: "section", Text: &textObj{Type: "mrkdwn", Text: fmt.Sprintf("*%s* %s\n%s", svc, kind, e.Message)}},
			{Type: "context", Elements: []textObj{{Type: "mrkdwn", Text: context}}},
		},
	}
}
