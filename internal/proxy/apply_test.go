package proxy

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/spec"
)

// TestApplyReadsDefaultedSpec checks that Apply takes the server settings
// spec.Default set, and refuses a spec whose defaulting was skipped rather
// than defaulting it again.
func TestApplyReadsDefaultedSpec(t *testing.T) {
	be := newBackend(t, "v1")
	undefaulted := func() *spec.Service {
		s := testService("web", "v1", ver("v1", be))
		s.Spec.Proxy = spec.ProxyOptions{}
		return s
	}
	p := newTestProxy(t, nil)
	err := p.Apply(t.Context(), []*spec.Service{undefaulted()})
	if err == nil {
		t.Fatal("Apply(undefaulted spec) = nil, want an error")
	}
	for _, field := range []string{"readHeaderTimeout", "idleTimeout", "drainTimeout", "maxHeaderBytes", "retries"} {
		if !strings.Contains(err.Error(), "spec.proxy."+field) {
			t.Errorf("Apply(undefaulted spec) = %v, want it to name spec.proxy.%s", err, field)
		}
	}
	s := undefaulted()
	s.Default()
	mustApply(t, p, s)
	l := p.services["web"].lis
	want := serverConfig{
		readHeaderTimeout: spec.DefaultReadHeaderTimeout, idleTimeout: spec.DefaultIdleTimeout,
		readTimeout: spec.DefaultReadTimeout, maxHeaderBytes: spec.DefaultMaxHeaderBytes,
	}
	if l.cfg != want {
		t.Errorf("listener settings = %+v, want %+v", l.cfg, want)
	}
	if code, _, err := get(newClient(1), proxyURL(t, p, "web"), nil); err != nil || code != 200 {
		t.Errorf("GET = %d, %v; want 200", code, err)
	}
}
