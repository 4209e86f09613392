package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/health"
	"github.com/switchyard/switchyard/internal/rollout"
	nginxrouter "github.com/switchyard/switchyard/internal/router/nginx"
	"github.com/switchyard/switchyard/internal/spec"
	"github.com/switchyard/switchyard/internal/testenv"
)

var (
	switches      = flag.Int("switches", 100, "TestNginxSwitchCost: blue-green switches per mode")
	switchClients = flag.Int("switch-clients", 20, "TestNginxSwitchCost: keep-alive clients of each kind (retrying, non-retrying)")
	switchGap     = flag.Duration("switch-gap", 100*time.Millisecond, "TestNginxSwitchCost: pause between two switches")
	// The suite runs packages in parallel on few cores: clients that send
	// back to back would starve other packages' timing-sensitive tests.
	switchThink = flag.Duration("switch-think", 10*time.Millisecond, "TestNginxSwitchCost: each client's pause between requests (0: back to back)")
)

// TestNginxSwitchCost makes blue-green switches through Switchyard's nginx
// router under a keep-alive load of retrying and non-retrying clients, in
// each mode, and reports what the clients saw. Retrying clients must see
// no failure in any mode, and nobody in lua mode (no reload). Run longer:
//
//	go test ./bench -run TestNginxSwitchCost -v -switches 500 -switch-clients 50
func TestNginxSwitchCost(t *testing.T) {
	testenv.Integration(t)
	testenv.RequireBinary(t, "nginx")
	var rows []string
	for _, mode := range []string{spec.NginxModeReload, spec.NginxModeLua} {
		t.Run(mode, func(t *testing.T) {
			res, reloads := switchRun(t, mode)
			t.Logf("%s: %d switches in %v; retrying: %v; non-retrying: %v", mode, res.Switches, res.Elapsed.Round(time.Millisecond), res.Retrying, res.NonRetrying)
			if res.Retrying.Failed != 0 {
				t.Errorf("%s: retrying clients saw %d failed requests, want 0: %v", mode, res.Retrying.Failed, res.Retrying)
			}
			if mode == spec.NginxModeLua && res.NonRetrying.Failed != 0 {
				t.Errorf("lua mode: non-retrying clients saw %d failed requests, want 0 (no reload): %v", res.NonRetrying.Failed, res.NonRetrying)
			}
			// The switches moved traffic: both versions answered a good part.
			for _, v := range []string{"blue", "green"} {
				if got := res.Retrying.Served[v] + res.NonRetrying.Served[v]; got < int64(res.Switches) {
					t.Errorf("%s: %s answered %d requests during %d switches (%v, %v): the switches did not move traffic", mode, v, got, res.Switches, res.Retrying.Served, res.NonRetrying.Served)
				}
			}
			t.Logf("%s: nginx reloaded %d times during the run", mode, reloads)
			if mode == spec.NginxModeLua && reloads != 0 {
				t.Errorf("lua mode: nginx reloaded %d times for weight changes, want 0", reloads)
			}
			if mode == spec.NginxModeReload && reloads < res.Switches/2 {
				t.Errorf("reload mode: nginx reloaded %d times for %d switches", reloads, res.Switches)
			}
			rows = append(rows, fmt.Sprintf("| %s | %d | %d | %d | %d | %.2f | %d | %.2f |", mode, res.Switches, *switchClients,
				res.Retrying.Requests, res.Retrying.Failed, perSwitch(res.Retrying.Failed, res.Switches),
				res.NonRetrying.Failed, perSwitch(res.NonRetrying.Failed, res.Switches)))
		})
	}
	t.Logf("\n| mode | switches | clients of each kind | requests (retrying) | failed, retrying | per switch | failed, non-retrying | per switch |\n|---|---:|---:|---:|---:|---:|---:|---:|\n%s", strings.Join(rows, "\n"))
}

func perSwitch(n int64, switches int) float64 {
	if switches == 0 {
		return 0
	}
	return float64(n) / float64(switches)
}

// switchRun starts nginx in front of a blue and a green backend, driven by
// the nginx router in mode, and switches between them under load.
func switchRun(t *testing.T, mode string) (SwitchResult, int) {
	backend := func(name string) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, name)
		}))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	blue, green := backend("blue"), backend("green")
	dir := t.TempDir()
	include := filepath.Join(dir, "web.conf")
	// The file nginx starts with answers nothing (502), so that serving
	// blue means the first render is in force.
	initial := "upstream web { server 127.0.0.1:9; }\nmap $scheme $switchyard_web { default web; }\n"
	if err := os.WriteFile(include, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNginxWith(t, testenv.NginxOptions{Lua: mode == spec.NginxModeLua, WorkerProcesses: 2}, `
    include `+dir+`/*.conf;
    server {
        listen {{.Addr}};
        keepalive_requests 1000000;
        location / {
            proxy_pass http://$switchyard_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
`)
	svc := &spec.Service{APIVersion: spec.APIVersion, Kind: spec.KindService, Metadata: spec.Metadata{Name: "web"}, Spec: spec.ServiceSpec{
		Stable:   "blue",
		Versions: []spec.Version{{Name: "blue", Targets: []string{blue}}, {Name: "green", Targets: []string{green}}},
		TrafficRouter: spec.TrafficRouter{Nginx: &spec.NginxRouter{
			IncludeFile: include, TestCommand: n.Command("-t"), ReloadCommand: n.Command("-s", "reload"), Mode: mode,
		}},
	}}
	if mode == spec.NginxModeLua {
		svc.Spec.TrafficRouter.Nginx.ControlAddress = testenv.FreeAddr(t)
	}
	svc.Default()
	if err := svc.Validate(); err != nil {
		t.Fatal(err)
	}
	hc, err := health.New(health.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	r := nginxrouter.New(nginxrouter.Options{Health: hc})
	t.Cleanup(func() { r.Close() })
	if err := r.Configure([]*spec.Service{svc}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Both versions are in the file from the start; every switch changes
	// weights only.
	route := func(v string) error {
		return r.Route(ctx, "web", rollout.Routing{Stable: v, Weights: rollout.Weights{"blue": 0, "green": 0, v: 100}})
	}
	if err := route("blue"); err != nil {
		t.Fatalf("first route: %v\n%s", err, n.Output())
	}
	// New connections may reach old workers until they exit.
	n.WaitReloaded(t, 2)
	c := &http.Client{Timeout: 5 * time.Second}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		res, err := c.Get("http://" + n.Addr + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return string(b) == "blue"
	}, "nginx to serve blue")
	logBefore := len(n.Output())
	before := strings.Count(n.Output(), "(SIGHUP) received")
	res, err := SwitchUnderLoad(ctx, SwitchLoad{
		URL: "http://" + n.Addr + "/", Clients: *switchClients, Switches: *switches, Gap: *switchGap, Think: *switchThink,
		Switch: func(ctx context.Context, i int) error {
			if i%2 == 0 {
				return route("green")
			}
			return route("blue")
		},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Output())
	}
	if res.NonRetrying.Failed > 0 || res.Retrying.Failed > 0 {
		var lines []string
		for _, l := range strings.Split(n.Output()[logBefore:], "\n") {
			if strings.Contains(l, "[error]") || strings.Contains(l, "[crit]") || strings.Contains(l, "[alert]") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 10 {
			lines = lines[:10]
		}
		t.Logf("nginx's errors:\n%s", strings.Join(lines, "\n"))
	}
	return res, strings.Count(n.Output(), "(SIGHUP) received") - before
}
