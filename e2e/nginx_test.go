package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/testenv"
)

// TestNginxModeCLI is nginx mode as a user runs it: a service file that
// names an include file of a running nginx, `switchyard validate`, `serve`,
// then `deploy --wait` for a blue-green switch and a canary rolled back by
// `abort`, every result checked by requests through nginx.
func TestNginxModeCLI(t *testing.T) {
	blue1, blue2, green := startBackend(t, "blue"), startBackend(t, "blue"), startBackend(t, "green")
	dir := t.TempDir()
	include := filepath.Join(dir, "web.conf")
	// The include file the user's nginx ran with before Switchyard.
	if err := os.WriteFile(include, []byte(fmt.Sprintf("upstream web { server %s; }\nmap $scheme $switchyard_web { default web; }\n", blue1.addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testenv.StartNginx(t, `
    include `+dir+`/*.conf;
    server {
        listen {{.Addr}};
        location / {
            proxy_pass http://$switchyard_web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
`)
	tj, _ := json.Marshal(n.Command("-t"))
	rj, _ := json.Marshal(n.Command("-s", "reload"))
	config := strings.Replace(serviceConfig("web", map[string][]string{
		"blue":  {blue1.addr, blue2.addr},
		"green": {green.addr},
	}, "blue", fmt.Sprintf(`  routing:
    rules:
      - header: {name: x-canary, value: "true"}
        to: canary
  trafficRouter:
    nginx: {includeFile: %s, testCommand: %s, reloadCommand: %s}
`, include, tj, rj)), "  listen: \"%LISTEN%\"\n", "", 1)
	d := newDaemon(t, config)
	d.mustRun(0, "validate", "-f", d.file)

	get := func(k int, header ...string) map[string]int {
		t.Helper()
		counts := map[string]int{}
		for range k {
			req, _ := http.NewRequest(http.MethodGet, "http://"+n.Addr+"/", nil)
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("GET through nginx: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			counts[fmt.Sprintf("%d %s", resp.StatusCode, b)]++
		}
		return counts
	}
	d.start()
	d.waitStatus("web", 10*time.Second, "blue healthy", func(st admin.ServiceStatus) bool { return healthy(st, "blue") == 2 })
	testenv.WaitFor(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(include)
		return strings.Contains(string(b), "upstream web__blue") && get(20)["200 blue"] == 20
	}, "nginx to serve blue from the include file Switchyard rendered")

	d.mustRun(0, "deploy", "web", "--version", "green", "--strategy", "blue-green", "--wait", "--timeout", "1m")
	testenv.WaitFor(t, 10*time.Second, func() bool { return get(50)["200 green"] == 50 }, "every request to green after the switch")
	if st := d.status("web"); st.StableVersion != "green" || st.Weights["green"] != 100 {
		t.Fatalf("after deploying green: stable %q, weights %v", st.StableVersion, st.Weights)
	}

	// A canary of blue, aborted: all traffic back to green.
	out, errOut, err := d.run("deploy", "web", "--version", "blue", "--strategy", "canary")
	if err != nil {
		t.Fatalf("deploy --strategy canary: %v\n%s%s", err, out, errOut)
	}
	d.waitStatus("web", 20*time.Second, "the canary taking traffic", func(st admin.ServiceStatus) bool { return st.Weights["blue"] > 0 })
	testenv.WaitFor(t, 10*time.Second, func() bool { return get(5, "X-Canary", "true")["200 blue"] == 5 }, "x-canary: true to reach the canary")
	d.mustRun(0, "abort", "web")
	testenv.WaitFor(t, 10*time.Second, func() bool { return get(50)["200 green"] == 50 }, "every request back to green after abort")

	// A file that would inject into nginx's syntax is refused: exit 2.
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(strings.Replace(config, "nginx: {", `nginx: {upstreamName: "web; } server { listen 8080", `, 1)), 0o600)
	msg := d.mustRun(2, "validate", "-f", bad)
	if !strings.Contains(msg, "spec.trafficRouter.nginx.upstreamName") {
		t.Errorf("validate of an injecting upstreamName says:\n%s", msg)
	}
}
