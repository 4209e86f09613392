package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/internal/rollout"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeController records what the server asks and answers from its fields.
type fakeController struct {
	mu       sync.Mutex
	commands []command
	err      error // returned by every method when set
	applied  []byte
	limit    int

	// events is what Subscribe streams; subscribed receives each
	// subscription's context so tests can see it end.
	events     chan StreamEvent
	subscribed chan context.Context
	canceled   chan struct{}
}

type command struct {
	service string
	event   rollout.Event
}

func newFake() *fakeController {
	return &fakeController{
		events:     make(chan StreamEvent),
		subscribed: make(chan context.Context, 1),
		canceled:   make(chan struct{}, 1),
	}
}

func (f *fakeController) Services(context.Context) ([]ServiceStatus, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []ServiceStatus{
		{Name: "api", Phase: rollout.PhaseStable, StableVersion: "v1", Weights: rollout.Weights{"v1": 100}},
		{Name: "web", Phase: rollout.PhaseProgressing, StableVersion: "blue", CanaryVersion: "green",
			Weights: rollout.Weights{"blue": 90, "green": 10}},
	}, nil
}

func (f *fakeController) Service(_ context.Context, name string) (ServiceStatus, error) {
	if f.err != nil {
		return ServiceStatus{}, f.err
	}
	if name != "web" {
		return ServiceStatus{}, fmt.Errorf("service %q: %w", name, ErrNotFound)
	}
	return ServiceStatus{
		Name: "web", Phase: rollout.PhaseProgressing, StableVersion: "blue", CanaryVersion: "green",
		Weights: rollout.Weights{"blue": 90, "green": 10}, Step: StepStatus{Index: 1, Total: 6, Kind: "Pause"},
		Targets: []TargetStatus{{Version: "blue", Address: "127.0.0.1:9001", Healthy: true}},
	}, nil
}

func (f *fakeController) Command(_ context.Context, name string, cmd rollout.Event) (ServiceStatus, error) {
	f.mu.Lock()
	f.commands = append(f.commands, command{name, cmd})
	f.mu.Unlock()
	if f.err != nil {
		return ServiceStatus{}, f.err
	}
	return ServiceStatus{Name: name, Phase: rollout.PhaseProgressing, Message: rollout.EventName(cmd)}, nil
}

func (f *fakeController) lastCommand() (command, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.commands) == 0 {
		return command{}, false
	}
	return f.commands[len(f.commands)-1], true
}

func (f *fakeController) History(_ context.Context, name string, limit int) ([]rollout.HistoryEntry, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	f.limit = limit
	f.mu.Unlock()
	return []rollout.HistoryEntry{
		{Rollout: 1, Kind: "deploy", By: "ann@ci"},
		{Rollout: 1, Kind: "promoted"},
	}, nil
}

func (f *fakeController) Apply(_ context.Context, yaml []byte) ([]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	f.applied = yaml
	f.mu.Unlock()
	return []string{"web"}, nil
}

func (f *fakeController) Subscribe(ctx context.Context) (<-chan StreamEvent, func()) {
	f.subscribed <- ctx
	return f.events, func() {
		select {
		case f.canceled <- struct{}{}:
		default:
		}
	}
}

func newTestServer(t testing.TB, f *fakeController, opts ServerOptions) *httptest.Server {
	t.Helper()
	if opts.Token == "" {
		opts.Token = testToken
	}
	srv := httptest.NewServer(NewServer(f, opts).Handler())
	t.Cleanup(srv.Close)
	return srv
}

type reqSpec struct {
	method, path, body string
	header             map[string]string
}

func do(t *testing.T, srv *httptest.Server, r reqSpec) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.header["Authorization"]; !ok {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	for k, v := range r.header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func decodeErr(t *testing.T, body string) ErrorResponse {
	t.Helper()
	var er ErrorResponse
	if err := json.Unmarshal([]byte(body), &er); err != nil {
		t.Fatalf("error body %q is not an ErrorResponse: %v", body, err)
	}
	return er
}

func TestAuth(t *testing.T) {
	f := newFake()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_total", Help: "A test counter."}))
	srv := newTestServer(t, f, ServerOptions{Gatherer: reg})
	tests := []struct {
		name   string
		path   string
		auth   string
		status int
	}{
		{"no header", "/api/v1/services", "", http.StatusUnauthorized},
		{"wrong token", "/api/v1/services", "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized},
		{"last character differs", "/api/v1/services", "Bearer " + testToken[:63] + "0", http.StatusUnauthorized},
		{"prefix of the token", "/api/v1/services", "Bearer " + testToken[:32], http.StatusUnauthorized},
		{"token with extra", "/api/v1/services", "Bearer " + testToken + "00", http.StatusUnauthorized},
		{"empty bearer", "/api/v1/services", "Bearer ", http.StatusUnauthorized},
		{"basic scheme", "/api/v1/services", "Basic " + testToken, http.StatusUnauthorized},
		{"token without scheme", "/api/v1/services", testToken, http.StatusUnauthorized},
		{"right token", "/api/v1/services", "Bearer " + testToken, http.StatusOK},
		{"scheme is case-insensitive", "/api/v1/services", "bearer " + testToken, http.StatusOK},
		{"unknown api route needs the token too", "/api/v1/nope", "", http.StatusUnauthorized},
		{"unknown api route with token", "/api/v1/nope", "Bearer " + testToken, http.StatusNotFound},
		{"healthz is open", "/healthz", "", http.StatusOK},
		{"readyz is open", "/readyz", "", http.StatusOK},
		{"metrics is open", "/metrics", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv, reqSpec{method: "GET", path: tt.path, header: map[string]string{"Authorization": tt.auth}})
			if resp.StatusCode != tt.status {
				t.Fatalf("GET %s with %q = %d %s, want %d", tt.path, tt.auth, resp.StatusCode, body, tt.status)
			}
			if tt.status == http.StatusUnauthorized {
				if er := decodeErr(t, body); er.Code != CodeUnauthorized || !strings.Contains(er.Error, "token") {
					t.Errorf("401 body = %+v, want code %q and a message about the token", er, CodeUnauthorized)
				}
			}
		})
	}

	t.Run("empty server token refuses everything", func(t *testing.T) {
		s := NewServer(f, ServerOptions{})
		req := httptest.NewRequest("GET", "/api/v1/services", nil)
		req.Header.Set("Authorization", "Bearer ")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("GET with empty token on a token-less server = %d, want 401", rec.Code)
		}
	})
}

// TestTokenCompareIsConstantTime checks the source: timing cannot be
// asserted reliably, but the comparison that guards the API can.
func TestTokenCompareIsConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "server.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range file.Decls {
		if f, ok := d.(*ast.FuncDecl); ok && f.Name.Name == "tokenMatches" {
			fn = f
		}
	}
	if fn == nil {
		t.Fatal("tokenMatches not found in server.go")
	}
	constantTime, equality := false, false
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok && id.Name == "subtle" && n.Sel.Name == "ConstantTimeCompare" {
				constantTime = true
			}
		case *ast.BinaryExpr:
			// "== 1" on ConstantTimeCompare's result is the only
			// comparison allowed.
			if lit, ok := n.Y.(*ast.BasicLit); n.Op == token.EQL && !(ok && lit.Value == "1") {
				equality = true
			}
		}
		return true
	})
	if !constantTime {
		t.Error("tokenMatches does not call subtle.ConstantTimeCompare")
	}
	if equality {
		t.Error("tokenMatches compares with ==, which leaks timing")
	}
}

func TestCrossOrigin(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{})
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name   string
		method string
		header map[string]string
		status int
	}{
		{"cross-site POST", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site POST (other port or subdomain)", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"same-origin POST", "POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"user-typed navigation POST", "POST", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		{"old browser, foreign Origin", "POST", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"old browser, Origin matching Host", "POST", map[string]string{"Origin": "http://" + host}, http.StatusOK},
		{"non-browser client (curl, CLI)", "POST", nil, http.StatusOK},
		{"cross-site POST without token is still refused", "POST", map[string]string{"Sec-Fetch-Site": "cross-site", "Authorization": ""}, http.StatusForbidden},
		{"cross-site GET is a safe read", "GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/v1/services/web/pause"
			if tt.method == "GET" {
				path = "/api/v1/services/web"
			}
			f.mu.Lock()
			before := len(f.commands)
			f.mu.Unlock()
			resp, body := do(t, srv, reqSpec{method: tt.method, path: path, header: tt.header})
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s with %v = %d %s, want %d", tt.method, path, tt.header, resp.StatusCode, body, tt.status)
			}
			f.mu.Lock()
			after := len(f.commands)
			f.mu.Unlock()
			if tt.status == http.StatusForbidden {
				if er := decodeErr(t, body); er.Code != CodeForbidden {
					t.Errorf("403 code = %q, want %q", er.Code, CodeForbidden)
				}
				if after != before {
					t.Error("a refused request reached the controller")
				}
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{})
	user := map[string]string{UserHeader: "ann@ci-runner"}
	tests := []struct {
		name     string
		req      reqSpec
		want     rollout.Event // the command the controller must receive
		wantBody string        // a substring of the answer
	}{
		{"list", reqSpec{method: "GET", path: "/api/v1/services"}, nil, `"name":"api"`},
		{"get", reqSpec{method: "GET", path: "/api/v1/services/web"}, nil, `"canaryVersion":"green"`},
		{"deploy", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", header: user,
			body: `{"version":"green","targets":["127.0.0.1:9101"],"strategy":"blue-green","force":true}`},
			rollout.Deploy{Version: "green", Targets: []string{"127.0.0.1:9101"}, Strategy: rollout.StrategyBlueGreen, Force: true, By: "ann@ci-runner"},
			`"message":"deploy"`},
		{"deploy without user header", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", body: `{"version":"v2"}`},
			rollout.Deploy{Version: "v2", By: DefaultUser}, `"name":"web"`},
		{"promote", reqSpec{method: "POST", path: "/api/v1/services/web/promote", header: user},
			rollout.Promote{By: "ann@ci-runner"}, `"message":"promote"`},
		{"promote full", reqSpec{method: "POST", path: "/api/v1/services/web/promote", body: `{"full":true}`},
			rollout.Promote{Full: true, By: DefaultUser}, `"message":"promote"`},
		{"pause", reqSpec{method: "POST", path: "/api/v1/services/web/pause", header: user},
			rollout.Pause{By: "ann@ci-runner"}, `"message":"pause"`},
		{"resume with empty object", reqSpec{method: "POST", path: "/api/v1/services/web/resume", body: `{}`},
			rollout.Resume{By: DefaultUser}, `"message":"resume"`},
		{"abort", reqSpec{method: "POST", path: "/api/v1/services/web/abort", body: `{"reason":"error budget"}`, header: user},
			rollout.Abort{Reason: "error budget", By: "ann@ci-runner"}, `"message":"abort"`},
		{"retry", reqSpec{method: "POST", path: "/api/v1/services/web/retry"},
			rollout.Retry{By: DefaultUser}, `"message":"retry"`},
		{"rollback", reqSpec{method: "POST", path: "/api/v1/services/web/rollback"},
			rollout.Rollback{By: DefaultUser}, `"message":"rollback"`},
		{"escaped name", reqSpec{method: "POST", path: "/api/v1/services/my%20svc/pause"},
			rollout.Pause{By: DefaultUser}, `"name":"my svc"`},
		{"history", reqSpec{method: "GET", path: "/api/v1/services/web/history?limit=2"}, nil, `"by":"ann@ci"`},
		{"apply", reqSpec{method: "POST", path: "/api/v1/apply", body: "apiVersion: switchyard.dev/v1alpha1\nkind: Service\n"},
			nil, `{"applied":["web"]}`},
		{"healthz", reqSpec{method: "GET", path: "/healthz"}, nil, "ok"},
		{"readyz", reqSpec{method: "GET", path: "/readyz"}, nil, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.commands = nil
			f.mu.Unlock()
			resp, body := do(t, srv, tt.req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s = %d %s, want 200", tt.req.method, tt.req.path, resp.StatusCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s body = %s, want it to contain %s", tt.req.method, tt.req.path, body, tt.wantBody)
			}
			got, ok := f.lastCommand()
			switch {
			case tt.want == nil && ok:
				t.Errorf("%s %s sent command %#v, want none", tt.req.method, tt.req.path, got.event)
			case tt.want != nil && !ok:
				t.Errorf("%s %s sent no command, want %#v", tt.req.method, tt.req.path, tt.want)
			case tt.want != nil && !reflect.DeepEqual(got.event, tt.want):
				t.Errorf("%s %s sent %#v, want %#v", tt.req.method, tt.req.path, got.event, tt.want)
			}
		})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.limit != 2 {
		t.Errorf("history limit passed = %d, want 2", f.limit)
	}
	if !strings.HasPrefix(string(f.applied), "apiVersion:") {
		t.Errorf("apply passed %q, want the YAML body", f.applied)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"not found", fmt.Errorf("service %q: %w", "nope", ErrNotFound), 404, CodeNotFound},
		{"conflict", fmt.Errorf("service %q: %w: %w", "web", ErrConflict, rollout.ErrRolloutRunning), 409, CodeConflict},
		{"invalid", fmt.Errorf("%w: service \"web\", line 14: strategy.canary.steps[2].setWeight is 120; must be 0-100", ErrInvalid), 400, CodeInvalid},
		{"other", errors.New("disk full"), 500, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.err = tt.err
			srv := newTestServer(t, f, ServerOptions{})
			for _, r := range []reqSpec{
				{method: "GET", path: "/api/v1/services/web"},
				{method: "POST", path: "/api/v1/services/web/promote"},
				{method: "POST", path: "/api/v1/apply", body: "x: y"},
			} {
				resp, body := do(t, srv, r)
				if resp.StatusCode != tt.status {
					t.Errorf("%s %s = %d, want %d", r.method, r.path, resp.StatusCode, tt.status)
				}
				er := decodeErr(t, body)
				if er.Code != tt.code || er.Error != tt.err.Error() {
					t.Errorf("%s %s body = %+v, want code %q and message %q", r.method, r.path, er, tt.code, tt.err)
				}
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{})
	tests := []struct {
		name   string
		req    reqSpec
		status int
		want   string // in the error message
	}{
		{"unknown field", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", body: `{"version":"v2","verison":"v3"}`},
			400, `unknown field "verison"; valid fields: version, targets, strategy, force`},
		{"wrong type", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", body: `{"version":2}`},
			400, `field "version" is number; must be a string`},
		{"wrong element type", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", body: `{"version":"v2","targets":[1]}`},
			400, `field "targets`},
		{"wrong bool", reqSpec{method: "POST", path: "/api/v1/services/web/promote", body: `{"full":"yes"}`},
			400, `field "full" is string; must be true or false`},
		{"not an object", reqSpec{method: "POST", path: "/api/v1/services/web/promote", body: `[]`},
			400, "must be a JSON object"},
		{"syntax error", reqSpec{method: "POST", path: "/api/v1/services/web/abort", body: `{"reason":}`},
			400, "invalid JSON at byte"},
		{"truncated JSON", reqSpec{method: "POST", path: "/api/v1/services/web/abort", body: `{"reason":"x"`},
			400, "JSON ends early"},
		{"trailing data", reqSpec{method: "POST", path: "/api/v1/services/web/abort", body: `{} {}`},
			400, "unexpected data after the JSON object"},
		{"field on a command without fields", reqSpec{method: "POST", path: "/api/v1/services/web/pause", body: `{"force":true}`},
			400, `unknown field "force"; this request takes no fields`},
		{"missing version", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", body: `{}`},
			400, "version is required"},
		{"unknown strategy", reqSpec{method: "POST", path: "/api/v1/services/web/deploy", body: `{"version":"v2","strategy":"rolling"}`},
			400, `strategy is "rolling"; must be "canary" or "blue-green"`},
		{"body too large", reqSpec{method: "POST", path: "/api/v1/services/web/abort",
			body: `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`}, 413, "larger than 1048576 bytes"},
		{"apply too large", reqSpec{method: "POST", path: "/api/v1/apply", body: strings.Repeat("x", MaxBodyBytes+1)},
			413, "larger than"},
		{"apply empty", reqSpec{method: "POST", path: "/api/v1/apply"}, 400, "empty"},
		{"bad limit", reqSpec{method: "GET", path: "/api/v1/services/web/history?limit=ten"}, 400, `limit is "ten"`},
		{"negative limit", reqSpec{method: "GET", path: "/api/v1/services/web/history?limit=-1"}, 400, "must be a whole number"},
		{"unknown action", reqSpec{method: "POST", path: "/api/v1/services/web/explode"}, 404, "no API route"},
		{"wrong method", reqSpec{method: "DELETE", path: "/api/v1/services/web"}, 404, "no API route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.mu.Lock()
			f.commands = nil
			f.mu.Unlock()
			resp, body := do(t, srv, tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.req.method, tt.req.path, resp.StatusCode, body, tt.status)
			}
			er := decodeErr(t, body)
			t.Logf("%d %s", resp.StatusCode, er.Error)
			if !strings.Contains(er.Error, tt.want) {
				t.Errorf("error = %q, want it to contain %q", er.Error, tt.want)
			}
			if _, ok := f.lastCommand(); ok {
				t.Error("a refused request reached the controller")
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	ready := errors.New("restoring state")
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{Ready: func() error { return ready }})
	resp, body := do(t, srv, reqSpec{method: "GET", path: "/readyz"})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "restoring state") {
		t.Errorf("/readyz while not ready = %d %q, want 503 naming the reason", resp.StatusCode, body)
	}
	ready = nil
	if resp, _ := do(t, srv, reqSpec{method: "GET", path: "/readyz"}); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz when ready = %d, want 200", resp.StatusCode)
	}
}

func TestMetricsOpenMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_total", Help: "A test counter."}))
	srv := newTestServer(t, newFake(), ServerOptions{Gatherer: reg})
	resp, body := do(t, srv, reqSpec{method: "GET", path: "/metrics",
		header: map[string]string{"Accept": "application/openmetrics-text; version=1.0.0"}})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") {
		t.Errorf("/metrics = %d %s, want OpenMetrics", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "switchyard_test_total 0") || !strings.Contains(body, "# EOF") {
		t.Errorf("/metrics body = %q, want the registered counter", body)
	}
	noMetrics := newTestServer(t, newFake(), ServerOptions{})
	if resp, _ := do(t, noMetrics, reqSpec{method: "GET", path: "/metrics"}); resp.StatusCode != 404 {
		t.Errorf("/metrics without a Gatherer = %d, want 404", resp.StatusCode)
	}
}

// sseEvent is one parsed server-sent event.
type sseEvent struct{ id, kind, data string }

func TestEventStream(t *testing.T) {
	f := newFake()
	// No heartbeat during the test: the disconnect must be noticed
	// without a write failing.
	srv := newTestServer(t, f, ServerOptions{Heartbeat: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/v1/events?service=web", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /api/v1/events = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var subCtx context.Context
	select {
	case subCtx = <-f.subscribed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not subscribe")
	}

	sent := []StreamEvent{
		{Seq: 1, Service: "web", Kind: "deploy", Message: "deploying green", Rollout: 1},
		{Seq: 2, Service: "api", Kind: "deploy"}, // filtered out
		{Seq: 3, Service: "web", Kind: "weights", Weights: rollout.Weights{"blue": 90, "green": 10}},
		{Seq: 4, Service: "web", Kind: "promoted", Result: rollout.ResultPromoted, Phase: rollout.PhaseStable},
	}
	go func() {
		for _, ev := range sent {
			select {
			case f.events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()

	// Read events as they arrive.
	rd := bufio.NewReader(resp.Body)
	var got []sseEvent
	var cur sseEvent
	for len(got) < 3 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended early: %v (got %v)", err, got)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		case line == "" && cur.data != "":
			got = append(got, cur)
			cur = sseEvent{}
		}
	}
	wantIDs := []string{"1", "3", "4"}
	for i, ev := range got {
		var se StreamEvent
		if err := json.Unmarshal([]byte(ev.data), &se); err != nil {
			t.Fatalf("event %d data %q: %v", i, ev.data, err)
		}
		if ev.id != wantIDs[i] || ev.id != fmt.Sprint(se.Seq) || ev.kind != se.Kind || se.Service != "web" {
			t.Errorf("event %d = id %s, event %s, data %s; want id %s, kind and seq matching data, service web",
				i, ev.id, ev.kind, ev.data, wantIDs[i])
		}
	}
	if got[1].kind != "weights" || !strings.Contains(got[1].data, `"green":10`) {
		t.Errorf("second event = %+v, want the weights event", got[1])
	}

	// The client going away ends the subscription.
	cancel()
	select {
	case <-subCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("subscription context not canceled after the client disconnected")
	}
	select {
	case <-f.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("subscription cancel not called after the client disconnected")
	}
}

func TestEventStreamHeartbeat(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{Heartbeat: 5 * time.Millisecond})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for heartbeats := 0; heartbeats < 2; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before two heartbeats: %v", err)
		}
		if line == ": heartbeat\n" {
			heartbeats++
		}
	}
}

func TestEventStreamEndsWhenControllerCloses(t *testing.T) {
	f := newFake()
	srv := newTestServer(t, f, ServerOptions{})
	c := NewClient(srv.URL, testToken)
	done := make(chan error, 1)
	var got []uint64
	go func() {
		done <- c.Events(t.Context(), "", func(ev StreamEvent) error {
			got = append(got, ev.Seq)
			return nil
		})
	}()
	<-f.subscribed
	f.events <- StreamEvent{Seq: 7, Service: "web", Kind: "step"}
	close(f.events)
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Errorf("Events after the server closed = %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Events did not return after the stream closed")
	}
	if fmt.Sprint(got) != "[7]" {
		t.Errorf("events = %v, want [7]", got)
	}
}

func BenchmarkGetService(b *testing.B) {
	h := NewServer(newFake(), ServerOptions{Token: testToken}).Handler()
	req := httptest.NewRequest("GET", "/api/v1/services/web", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
