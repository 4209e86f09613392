package nginx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/rollout"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

// httpConf is the user's part of nginx.conf in these tests: the include
// Switchyard owns, and a server that sends everything to $switchyard_web.
const httpConf = `
    include {{.Dir}}/switchyard/*.conf;
    server {
        listen {{.Addr}};
        location / {
            proxy_pass http://$switchyard_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
`

// backend is a toy target answering its name; /health answers health.
type backend struct {
	name   string
	srv    *httptest.Server
	health atomic.Int32 // status of /health (200 unless set)
}

func newBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.health.Store(200)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(int(b.health.Load()))
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

// fixture is a real nginx in front of 3 blue targets and 1 green, driven
// by a Router.
type fixture struct {
	nginx  *testenv.Nginx
	router *Router
	svc    *spec.Service
	file   string
	blue   []*backend
	green  *backend
	client *http.Client
}

// newFixture starts nginx with an include file rendered for blue 100%
// (the file a user's nginx already runs with), then a Router configured
// with cfg's commands (nil: the instance's nginx -t and -s reload).
func newFixture(t *testing.T, edit func(f *fixture, n *spec.NginxRouter)) *fixture {
	return newModeFixture(t, spec.NginxModeReload, edit)
}

// newModeFixture is newFixture in a mode (reload or lua).
func newModeFixture(t *testing.T, mode string, edit func(f *fixture, n *spec.NginxRouter)) *fixture {
	t.Helper()
	testenv.Integration(t)
	f := &fixture{client: &http.Client{Timeout: 5 * time.Second}}
	for i := range 3 {
		f.blue = append(f.blue, newBackend(t, fmt.Sprintf("blue-%d", i)))
	}
	f.green = newBackend(t, "green")
	var blueAddrs []string
	var blueServers []server
	for _, b := range f.blue {
		blueAddrs = append(blueAddrs, b.addr())
		blueServers = append(blueServers, server{b.addr(), true})
	}
	// nginx needs the include (and $switchyard_web) to start at all.
	dir := t.TempDir()
	f.file = filepath.Join(dir, "web.conf")
	initial := render(view{Service: "web", Upstream: "web", Routing: rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100}},
		Versions: map[string][]server{"blue": blueServers}})
	conf := strings.ReplaceAll(httpConf, "{{.Dir}}/switchyard", dir)
	if err := os.WriteFile(f.file, initial, 0o644); err != nil {
		t.Fatal(err)
	}
	f.nginx = testenv.StartNginxWith(t, testenv.NginxOptions{Lua: mode == spec.NginxModeLua}, conf)
	f.svc = &spec.Service{APIVersion: spec.APIVersion, Kind: spec.KindService, Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable: "blue",
		Versions: []spec.Version{
			{Name: "blue", Targets: blueAddrs},
			{Name: "green", Targets: []string{f.green.addr()}},
		},
		HealthCheck: spec.HealthCheck{Path: "/health", Interval: spec.D(50 * time.Millisecond), Timeout: spec.D(40 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 1},
		Routing:     spec.Routing{Rules: []spec.Rule{{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: spec.RoleCanary}}},
		TrafficRouter: spec.TrafficRouter{Nginx: &spec.NginxRouter{
			IncludeFile: f.file, TestCommand: f.nginx.Command("-t"), ReloadCommand: f.nginx.Command("-s", "reload"), Mode: mode,
		}},
	}}
	if mode == spec.NginxModeLua {
		f.svc.Spec.TrafficRouter.Nginx.ControlAddress = testenv.FreeAddr(t)
	}
	if edit != nil {
		edit(f, f.svc.Spec.TrafficRouter.Nginx)
	}
	f.svc.Default()
	if err := f.svc.Validate(); err != nil {
		t.Fatal(err)
	}
	hc, err := health.New(health.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	f.router = New(Options{Health: hc})
	t.Cleanup(func() { f.router.Close() })
	if err := f.router.Configure([]*spec.Service{f.svc}); err != nil {
		t.Fatal(err)
	}
	return f
}

// get sends one request through nginx and returns the body (the version
// and target that answered).
func (f *fixture) get(t testing.TB, header ...string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+f.nginx.Addr+"/", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("GET through nginx: %v\n%s", err, f.nginx.Output())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET through nginx: %d %s", res.StatusCode, b)
	}
	return string(b)
}

// counts sends n requests and counts the answers by version (the part of
// the body before '-').
func (f *fixture) counts(t testing.TB, n int, header ...string) map[string]int {
	out := map[string]int{}
	for range n {
		v, _, _ := strings.Cut(f.get(t, header...), "-")
		out[v]++
	}
	return out
}

// route routes and waits until nginx serves rt, which it knows by the
// probe (a request that only the new routing answers).
func (f *fixture) route(t *testing.T, rt rollout.Routing) {
	t.Helper()
	if err := f.router.Route(context.Background(), "web", rt); err != nil {
		t.Fatalf("Route(%v): %v", rt.Weights, err)
	}
}

// waitServing waits until the old nginx workers are gone, so the next
// requests see only the new configuration (a reload is asynchronous).
func (f *fixture) waitServing(t *testing.T, version string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for range 20 {
			if v, _, _ := strings.Cut(f.get(t), "-"); v != version {
				return false
			}
		}
		return true
	}, "nginx to serve "+version)
}

// TestSplitThroughNginx checks, by requests through a real nginx, that a
// blue-green switch and canary steps change what nginx serves, and that
// the split matches the weights with 3 blue targets and 1 green.
func TestSplitThroughNginx(t *testing.T) {
	for _, mode := range []string{spec.NginxModeReload, spec.NginxModeLua} {
		t.Run(mode, func(t *testing.T) { testSplit(t, mode) })
	}
}

func testSplit(t *testing.T, mode string) {
	f := newModeFixture(t, mode, nil)
	testenv.WaitFor(t, 5*time.Second, func() bool {
		return len(f.router.health.Status("web")) == 4 && allHealthy(f.router.health.Status("web"))
	}, "every target healthy")
	f.route(t, rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100}})
	if got := f.counts(t, 30); got["blue"] != 30 {
		t.Fatalf("blue 100%%: answers %v, want all blue", got)
	}
	// The header rule reaches the canary whatever its weight.
	f.route(t, rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 100, "green": 0}})
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.get(t, "X-Canary", "true") == "green" }, "x-canary: true to reach green")
	if got := f.counts(t, 20, "X-Canary", "true"); got["green"] != 20 {
		t.Errorf("x-canary: true at weight 0: answers %v, want all green", got)
	}
	for _, w := range []int{5, 25, 50} {
		f.route(t, rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 100 - w, "green": w}})
		// Old workers finish their keep-alive connections; new requests
		// on new connections see the new weights. Wait until the split is
		// the new one (nginx's smooth weighted round robin is exact over
		// a cycle of 100×scale requests on one worker).
		const n = 600
		var got map[string]int
		ok := testenv.Poll(10*time.Second, func() bool {
			got = f.counts(t, n)
			return abs(got["green"]-n*w/100) <= n/100
		})
		if !ok {
			t.Errorf("canary %d%%: %d of %d requests reached green (%v), want %d±%d", w, got["green"], n, got, n*w/100, n/100)
		}
		t.Logf("canary %d%%: %v of %d", w, got, n)
	}
	if mode == spec.NginxModeLua {
		if n := strings.Count(f.nginx.Output(), "(SIGHUP) received"); n != reloadsAfterRules {
			t.Errorf("lua mode: nginx reloaded %d times, want %d (the first render and the canary's rule); weight changes must not reload", n, reloadsAfterRules)
		}
	}
	// The switch: every request to green.
	f.route(t, rollout.Routing{Stable: "green", Weights: rollout.Weights{"green": 100}})
	f.waitServing(t, "green")
	if got := f.counts(t, 30); got["green"] != 30 {
		t.Errorf("after the switch: answers %v, want all green", got)
	}
}

// reloadsAfterRules is how many reloads lua mode makes up to the canary
// steps of testSplit: the first render, and the canary's role (the header
// rule's map names its upstream).
const reloadsAfterRules = 2

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func allHealthy(ts []health.TargetHealth) bool {
	for _, t := range ts {
		if !t.Healthy {
			return false
		}
	}
	return true
}

// TestUnhealthyTargetDown checks that a target failing Switchyard's active
// checks is rendered down: nginx stops sending it requests although it
// still answers them.
func TestUnhealthyTargetDown(t *testing.T) {
	for _, mode := range []string{spec.NginxModeReload, spec.NginxModeLua} {
		t.Run(mode, func(t *testing.T) { testUnhealthyTargetDown(t, mode) })
	}
}

func testUnhealthyTargetDown(t *testing.T, mode string) {
	f := newModeFixture(t, mode, nil)
	f.route(t, rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100}})
	sick := f.blue[1]
	sick.health.Store(500)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for range 30 {
			if f.get(t) == sick.name {
				return false
			}
		}
		return true
	}, "nginx to stop sending requests to "+sick.name)
	if b, _ := os.ReadFile(f.file); mode == spec.NginxModeReload && !strings.Contains(string(b), "server "+sick.addr()+" down;") {
		t.Errorf("include file does not mark %s down:\n%s", sick.addr(), b)
	}
	sick.health.Store(200)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for range 30 {
			if f.get(t) == sick.name {
				return true
			}
		}
		return false
	}, sick.name+" to take requests again once healthy")
}

// TestRejectedRender: a render the test command rejects leaves the old
// file in place and nginx serving as before, and the error quotes the
// test command's output verbatim.
func TestRejectedRender(t *testing.T) {
	const nginxSays = `nginx: [emerg] invalid number of arguments in "server" directive in /etc/nginx/switchyard/web.conf:7`
	// The instance's real nginx -t, failing with nginx's own words while
	// the flag file exists.
	flag := filepath.Join(t.TempDir(), "reject")
	rejectOn := func(on bool) {
		if on {
			os.WriteFile(flag, nil, 0o644)
		} else {
			os.Remove(flag)
		}
	}
	f := newFixture(t, func(f *fixture, n *spec.NginxRouter) {
		n.TestCommand = append([]string{"sh", "-c", `if [ -e "$0" ]; then echo "$1" >&2; exit 1; fi; shift; exec "$@"`, flag, nginxSays}, f.nginx.Command("-t")...)
	})
	f.route(t, rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100}})
	before, _ := os.ReadFile(f.file)
	rejectOn(true)
	err := f.router.Route(context.Background(), "web", rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 50, "green": 50}})
	if err == nil {
		t.Fatal("Route succeeded with a test command that fails")
	}
	if !strings.Contains(err.Error(), nginxSays) {
		t.Errorf("error does not quote nginx:\n%v\nwant it to contain\n%s", err, nginxSays)
	}
	after, _ := os.ReadFile(f.file)
	if string(after) != string(before) {
		t.Errorf("include file changed after a rejected render:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := f.counts(t, 60); got["blue"] != 60 {
		t.Errorf("after a rejected render nginx answers %v, want all blue as before", got)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(f.file), ".*tmp*"))
	if len(matches) > 0 {
		t.Errorf("temporary files left behind: %v", matches)
	}
	// Once nginx accepts again, the same routing applies.
	rejectOn(false)
	f.route(t, rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 50, "green": 50}})
	testenv.WaitFor(t, 10*time.Second, func() bool { return f.counts(t, 40)["green"] > 0 }, "green to take traffic after the test passes again")
}

// TestNginxNotRunning: a reload with no nginx running is ErrNotRunning,
// and the previous file is back.
func TestNginxNotRunning(t *testing.T) {
	for _, mode := range []string{spec.NginxModeReload, spec.NginxModeLua} {
		t.Run(mode, func(t *testing.T) { testNginxNotRunning(t, mode) })
	}
}

// testNginxNotRunning: in reload mode the reload fails; in lua mode a
// weight change needs no reload, and the post to the control server fails.
func testNginxNotRunning(t *testing.T, mode string) {
	f := newModeFixture(t, mode, nil)
	f.route(t, rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100, "green": 0}})
	before, _ := os.ReadFile(f.file)
	f.nginx.Stop(syscall.SIGTERM)
	err := f.router.Route(context.Background(), "web", rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 50, "green": 50}})
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Route with nginx stopped: %v, want ErrNotRunning", err)
	}
	t.Logf("error: %v", err)
	if after, _ := os.ReadFile(f.file); string(after) != string(before) {
		t.Errorf("include file changed although the reload failed:\n%s", after)
	}
}

// TestCoalesce: a burst of changes costs one or two reloads, not one each.
func TestCoalesce(t *testing.T) {
	count := filepath.Join(t.TempDir(), "reloads")
	f := newFixture(t, func(f *fixture, n *spec.NginxRouter) {
		// Each reload is counted; the test command is slowed so that the
		// burst arrives while the first apply runs.
		n.ReloadCommand = append([]string{"sh", "-c", `echo >> "$0"; exec "$@"`, count}, f.nginx.Command("-s", "reload")...)
		n.TestCommand = append([]string{"sh", "-c", `sleep 0.3; exec "$@"`, "sh"}, f.nginx.Command("-t")...)
	})
	const burst = 10
	var wg sync.WaitGroup
	errs := make(chan error, burst)
	for i := range burst {
		wg.Go(func() {
			errs <- f.router.Route(context.Background(), "web", rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 100 - i, "green": i}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Route: %v", err)
		}
	}
	b, _ := os.ReadFile(count)
	reloads := strings.Count(string(b), "\n")
	t.Logf("%d Route calls, %d reloads", burst, reloads)
	if reloads < 1 || reloads > 2 {
		t.Errorf("%d concurrent Route calls caused %d reloads, want 1 or 2", burst, reloads)
	}
}

// TestRenderedFilesLoad has nginx read every golden file: what the
// renderer writes is valid nginx configuration.
func TestRenderedFilesLoad(t *testing.T) {
	f := newModeFixture(t, spec.NginxModeLua, nil) // loads the lua module
	for name := range goldenViews() {
		b, err := os.ReadFile(filepath.Join("testdata", name+".conf"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := f.nginx.Test(); err != nil {
			t.Errorf("%s.conf: %v", name, err)
		}
	}
}

// TestIncludeFileMoved: a service whose includeFile changes writes the new
// file and removes the old one in one transaction (both in nginx's glob
// would be two upstreams of one name, which nginx -t refuses).
func TestIncludeFileMoved(t *testing.T) {
	f := newFixture(t, nil)
	f.route(t, rollout.Routing{Stable: "blue", Weights: rollout.Weights{"blue": 100}})
	moved := *f.svc
	n := *f.svc.Spec.TrafficRouter.Nginx
	n.IncludeFile = filepath.Join(filepath.Dir(f.file), "web-moved.conf")
	moved.Spec.TrafficRouter.Nginx = &n
	if err := f.router.Configure([]*spec.Service{&moved}); err != nil {
		t.Fatal(err)
	}
	f.route(t, rollout.Routing{Stable: "green", Weights: rollout.Weights{"green": 100}})
	if _, err := os.Stat(f.file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old include file %s is still there (%v)", f.file, err)
	}
	if b, err := os.ReadFile(n.IncludeFile); err != nil || !strings.Contains(string(b), "upstream web__green") {
		t.Errorf("new include file: %v\n%s", err, b)
	}
	f.waitServing(t, "green")
}

// TestRulesThroughNginx checks the routing maps by requests through nginx:
// a header rule for trusted sources only, a cookie rule with always and
// never, and sticky sessions that keep a session on one version while the
// split spreads sessions over both.
func TestRulesThroughNginx(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		want    string // what x-canary: true reaches
	}{
		{"trusted client", []string{"127.0.0.0/8"}, "green"},
		{"untrusted client", []string{"10.0.0.0/8"}, ""}, // ignored: the session's version
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(f *fixture, n *spec.NginxRouter) {
				f.svc.Spec.Routing = spec.Routing{
					Rules: []spec.Rule{
						{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: spec.RoleCanary},
						{Cookie: &spec.Match{Name: "canary", Value: "v1.2"}, To: spec.RoleCanary},
					},
					TrustedSources: tc.trusted,
					StickySessions: &spec.StickySessions{Cookie: "session"},
				}
			})
			f.route(t, rollout.Routing{Stable: "blue", Canary: "green", Weights: rollout.Weights{"blue": 50, "green": 50}})
			testenv.WaitFor(t, 10*time.Second, func() bool {
				b, _ := os.ReadFile(f.file)
				return strings.Contains(string(b), "split_clients") && f.counts(t, 1, "Cookie", "canary=always")["green"] == 1
			}, "the rendered routing in force")
			version := func(header ...string) string {
				v, _, _ := strings.Cut(f.get(t, header...), "-")
				return v
			}
			// A session the split sends to blue, so that the header rule
			// (green) and the split (blue) disagree.
			blueSession := ""
			for i := 0; blueSession == "" && i < 100; i++ {
				if c := fmt.Sprintf("session=b%d", i); version("Cookie", c) == "blue" {
					blueSession = c
				}
			}
			want := tc.want
			if want == "" {
				want = "blue"
			}
			for _, c := range []struct {
				header []string
				want   string
			}{
				{[]string{"X-Canary", "true", "Cookie", blueSession}, want},
				{[]string{"Cookie", "canary=v1.2"}, "green"},
				{[]string{"Cookie", "canary=v1.3; session=s1"}, ""}, // not a match: sticky decides
				{[]string{"Cookie", "canary=always"}, "green"},
				{[]string{"Cookie", "canary=never"}, "blue"},
			} {
				for range 10 {
					got := version(c.header...)
					if c.want == "" {
						c.want = got
					}
					if got != c.want {
						t.Errorf("request with %q reached %s, want %s", c.header, got, c.want)
						break
					}
				}
			}
			// Sticky: a session stays on its version; sessions spread.
			seen := map[string]int{}
			for i := range 40 {
				cookie := fmt.Sprintf("session=s%d", i)
				first := version("Cookie", cookie)
				for range 5 {
					if got := version("Cookie", cookie); got != first {
						t.Fatalf("session s%d moved from %s to %s at constant weights", i, first, got)
					}
				}
				seen[first]++
			}
			if seen["blue"] < 8 || seen["green"] < 8 {
				t.Errorf("40 sessions at 50/50 went %v; want both versions to get a fair part", seen)
			}
		})
	}
}
