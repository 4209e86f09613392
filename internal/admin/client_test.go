package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

func TestClientRoundTrip(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{})
	c := NewClient(strings.TrimPrefix(srv.URL, "http://")+"/", testToken, WithUser("ann@laptop"), WithTimeout(5*time.Second))
	ctx := t.Context()

	svcs, err := c.Services(ctx)
	if err != nil || len(svcs) != 2 || svcs[1].Weights["green"] != 10 {
		t.Fatalf("Services = %+v, %v", svcs, err)
	}
	st, err := c.Service(ctx, "web")
	if err != nil || st.Step.Total != 6 || st.Targets[0].Address != "127.0.0.1:9001" {
		t.Fatalf("Service = %+v, %v", st, err)
	}
	if err := c.Healthz(ctx); err != nil {
		t.Fatalf("Healthz = %v", err)
	}

	commands := []struct {
		name string
		call func() (ServiceStatus, error)
		want rollout.Event
	}{
		{"deploy", func() (ServiceStatus, error) {
			return c.Deploy(ctx, "web", DeployRequest{Version: "green", Targets: []string{"10.0.0.1:80"}, Strategy: rollout.StrategyCanary})
		}, rollout.Deploy{Version: "green", Targets: []string{"10.0.0.1:80"}, Strategy: rollout.StrategyCanary, By: "ann@laptop"}},
		{"promote", func() (ServiceStatus, error) { return c.Promote(ctx, "web", false) }, rollout.Promote{By: "ann@laptop"}},
		{"promote full", func() (ServiceStatus, error) { return c.Promote(ctx, "web", true) }, rollout.Promote{Full: true, By: "ann@laptop"}},
		{"pause", func() (ServiceStatus, error) { return c.Pause(ctx, "web") }, rollout.Pause{By: "ann@laptop"}},
		{"resume", func() (ServiceStatus, error) { return c.Resume(ctx, "web") }, rollout.Resume{By: "ann@laptop"}},
		{"abort", func() (ServiceStatus, error) { return c.Abort(ctx, "web", "p99 too high") }, rollout.Abort{Reason: "p99 too high", By: "ann@laptop"}},
		{"retry", func() (ServiceStatus, error) { return c.Retry(ctx, "web") }, rollout.Retry{By: "ann@laptop"}},
		{"rollback", func() (ServiceStatus, error) { return c.Rollback(ctx, "web") }, rollout.Rollback{By: "ann@laptop"}},
		{"name needing escapes", func() (ServiceStatus, error) { return c.Pause(ctx, "a/b c") }, rollout.Pause{By: "ann@laptop"}},
	}
	for _, tt := range commands {
		t.Run(tt.name, func(t *testing.T) {
			st, err := tt.call()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := f.lastCommand()
			if !reflect.DeepEqual(got.event, tt.want) {
				t.Errorf("controller got %#v, want %#v", got.event, tt.want)
			}
			if st.Message != rollout.EventName(tt.want) || st.Name != got.service {
				t.Errorf("status = %+v, want the controller's answer for %s", st, got.service)
			}
		})
	}
	if got, _ := f.lastCommand(); got.service != "a/b c" {
		t.Errorf("escaped service name arrived as %q", got.service)
	}

	hs, err := c.History(ctx, "web", 5)
	if err != nil || len(hs) != 2 || hs[0].By != "ann@ci" {
		t.Errorf("History = %+v, %v", hs, err)
	}
	f.mu.Lock()
	limit := f.limit
	f.mu.Unlock()
	if limit != 5 {
		t.Errorf("History sent limit %d, want 5", limit)
	}
	names, err := c.Apply(ctx, []byte("kind: Service\n"))
	if err != nil || fmt.Sprint(names) != "[web]" {
		t.Errorf("Apply = %v, %v", names, err)
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		target  error
		status  int
		message string
	}{
		{"not found", fmt.Errorf("service %q: %w", "nope", ErrNotFound), ErrNotFound, 404, `service "nope": not found`},
		{"conflict", fmt.Errorf("service %q: %w: a rollout is already in progress", "web", ErrConflict), ErrConflict, 409,
			`service "web": conflict: a rollout is already in progress`},
		{"invalid", fmt.Errorf("%w: line 14: strategy.canary.steps[2].setWeight is 120; must be 0-100", ErrInvalid), ErrInvalid, 400,
			"invalid: line 14: strategy.canary.steps[2].setWeight is 120; must be 0-100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.err = tt.err
			srv := newTestServer(t, f, ServerOptions{})
			_, err := NewClient(srv.URL, testToken).Promote(t.Context(), "web", false)
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("Promote error = %T %v, want *APIError", err, err)
			}
			if apiErr.Status != tt.status || err.Error() != tt.message {
				t.Errorf("error = %d %q, want %d %q", apiErr.Status, err, tt.status, tt.message)
			}
			for _, sentinel := range []error{ErrNotFound, ErrConflict, ErrInvalid} {
				if got, want := errors.Is(err, sentinel), sentinel == tt.target; got != want {
					t.Errorf("errors.Is(err, %v) = %v, want %v", sentinel, got, want)
				}
			}
		})
	}

	t.Run("wrong token", func(t *testing.T) {
		srv := newTestServer(t, newFake(), ServerOptions{})
		_, err := NewClient(srv.URL, "wrong").Services(t.Context())
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != CodeUnauthorized {
			t.Errorf("Services with a wrong token = %v, want a 401 APIError", err)
		}
	})
	t.Run("not the API", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}))
		defer srv.Close()
		_, err := NewClient(srv.URL, testToken).Service(t.Context(), "web")
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 502 || !strings.Contains(err.Error(), "bad gateway") {
			t.Errorf("Service through a broken proxy = %v, want a 502 APIError quoting the body", err)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		err := NewClient(url, testToken).Healthz(t.Context())
		if err == nil || !strings.Contains(err.Error(), "is `switchyard serve` running?") {
			t.Errorf("Healthz with no server = %v, want a hint to start serve", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		err := NewClient(srv.URL, testToken, WithTimeout(50*time.Millisecond)).Healthz(t.Context())
		if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
			t.Errorf("Healthz against a hung server = %v, want a timeout", err)
		}
	})
}

func TestClientEvents(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{})
	c := NewClient(srv.URL, testToken)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stop := errors.New("seen enough")
	done := make(chan error, 1)
	var got []StreamEvent
	go func() {
		done <- c.Events(ctx, "web", func(ev StreamEvent) error {
			got = append(got, ev)
			if len(got) == 3 {
				return stop
			}
			return nil
		})
	}()
	subCtx := <-f.subscribed
	for i := uint64(1); i <= 4; i++ {
		svc := "web"
		if i == 2 {
			svc = "api"
		}
		select {
		case f.events <- StreamEvent{Seq: i, Service: svc, Kind: fmt.Sprintf("kind-%d", i), Weights: rollout.Weights{"v": int(i)}}:
		case err := <-done:
			t.Fatalf("Events returned early: %v", err)
		}
	}
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Errorf("Events = %v, want fn's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return after fn's error")
	}
	var seqs []uint64
	for _, ev := range got {
		seqs = append(seqs, ev.Seq)
	}
	if fmt.Sprint(seqs) != "[1 3 4]" || got[2].Kind != "kind-4" || got[1].Weights["v"] != 3 {
		t.Errorf("events = %+v, want seq 1, 3, 4 of service web in order", got)
	}
	// Returning closed the connection: the server's subscription ends.
	select {
	case <-subCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server subscription still open after the client stopped reading")
	}

	t.Run("canceled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Events(ctx, "", func(StreamEvent) error { return nil }) }()
		<-f.subscribed
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Events after cancel = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Events did not return after cancel")
		}
	})
}
