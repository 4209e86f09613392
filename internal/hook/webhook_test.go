package hook

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/egress"
	"github.com/switchyard/switchyard/internal/spec"
)

// TestSignStandardWebhooksVector checks Sign against the example of the
// Standard Webhooks specification.
func TestSignStandardWebhooksVector(t *testing.T) {
	got := Sign([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func testWebhooks(allow bool) (*Webhooks, *[]time.Duration) {
	var p egress.Policy
	if allow {
		p.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
	w := NewWebhooks(p.Client(time.Minute), slog.New(slog.NewTextHandler(io.Discard, nil)))
	var waits []time.Duration
	w.wait = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return w, &waits
}

func webhookService() *spec.Service {
	return &spec.Service{Metadata: spec.Metadata{Name: "web"}}
}

func TestCallRetriesWithCappedBackoff(t *testing.T) {
	var n atomic.Int64
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids = append(ids, r.Header.Get("webhook-id"))
		if n.Add(1) < 7 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	t.Setenv("TEST_WEBHOOK_SECRET", "s3cret")
	retries := 6
	wh := &spec.Webhook{Name: "lt", Type: spec.WebhookRollout, URL: srv.URL, Timeout: spec.D(5 * time.Second), Retries: &retries, SecretEnv: "TEST_WEBHOOK_SECRET"}
	c, waits := testWebhooks(true)
	if _, err := c.Call(t.Context(), webhookService(), wh, "green"); err != nil {
		t.Fatalf("Call: %v, want success on the 7th try", err)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second}
	if len(*waits) != len(want) {
		t.Fatalf("waits %v, want %v", *waits, want)
	}
	for i := range want {
		if (*waits)[i] != want[i] {
			t.Errorf("wait %d = %v, want %v", i+1, (*waits)[i], want[i])
		}
	}
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Errorf("webhook-id %q differs across retries of one call (first %q)", id, ids[0])
		}
	}

	n.Store(-100)
	_, err := c.Call(t.Context(), webhookService(), wh, "green")
	if err == nil || !strings.Contains(err.Error(), "webhook lt (rollout): answered HTTP 503: not yet") {
		t.Errorf("Call = %v, want the last answer named", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the secret: %v", err)
	}
}

func TestLoopbackRefused(t *testing.T) {
	inner := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer inner.Close()
	wh := &spec.Webhook{Name: "g", Type: spec.WebhookConfirmPromotion, URL: inner.URL, Timeout: spec.D(time.Second)}
	c, _ := testWebhooks(false)
	_, _, err := c.Ask(t.Context(), webhookService(), wh, "green")
	if err == nil || !strings.Contains(err.Error(), "destination refused") {
		t.Errorf("Ask to %s = %v, want destination refused", inner.URL, err)
	}
	if strings.Contains(err.Error(), inner.URL) {
		t.Errorf("error repeats the URL: %v", err)
	}
}

func TestGatePollsUntil200(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	wh := &spec.Webhook{Name: "g", Type: spec.WebhookConfirmPromotion, URL: srv.URL, Timeout: spec.D(time.Second)}
	c, waits := testWebhooks(true)
	if err := c.Gate(t.Context(), webhookService(), wh, "green", 7*time.Second); err != nil {
		t.Fatalf("Gate: %v", err)
	}
	if n.Load() != 3 || len(*waits) != 2 || (*waits)[0] != 7*time.Second {
		t.Errorf("%d calls, waits %v; want 3 calls polled every 7s", n.Load(), *waits)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n.Store(-100)
	if err := c.Gate(ctx, webhookService(), wh, "green", time.Second); err == nil {
		t.Error("Gate with a done context returned nil, want its error")
	}
}
