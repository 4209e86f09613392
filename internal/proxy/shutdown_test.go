package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// slowBackend answers non-health requests once release is closed and
// reports on started when a request arrives.
func slowBackend(t *testing.T, started chan<- struct{}, release <-chan struct{}) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(s.Close)
	return s
}

func TestShutdownLetsInFlightFinish(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	s := slowBackend(t, started, release)
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", &backend{Server: s})))
	url := proxyURL(t, p, "web")
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := newClient(1).Get(url)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		done <- result{string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(context.Background()) }()
	eventually(t, 5*time.Second, "the listener to stop accepting", func() bool {
		_, err := (&http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
		return err != nil
	})
	close(release)
	if r := <-done; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight request = %q, %v; want it to finish", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close after Shutdown = %v", err)
	}
	if err := p.Route(t.Context(), "web", routingTo("v1")); err == nil {
		t.Error("Route after Shutdown succeeded")
	}
}

func TestRemovedTargetFinishesInFlight(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	old := slowBackend(t, started, release)
	next := newBackend(t, "v1")
	p := newTestProxy(t, nil)
	mustApply(t, p, testService("web", "v1", ver("v1", &backend{Server: old})))
	url := proxyURL(t, p, "web")
	done := make(chan error, 1)
	go func() {
		code, _, err := get(newClient(1), url, nil)
		if err == nil && code != 200 {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	<-started
	if err := p.SetVersion("web", "v1", []string{next.addr()}); err != nil {
		t.Fatal(err)
	}
	if code, v, err := get(newClient(1), url, nil); err != nil || code != 200 || v != "v1" {
		t.Fatalf("new request after target replacement: %d %q %v", code, v, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("in-flight request on the removed target failed: %v", err)
	}
	for _, h := range p.Health("web") {
		if h.Address != next.addr() {
			t.Errorf("Health lists removed target %s", h.Address)
		}
	}
}
