package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// nginxService writes a service file in nginx mode with extra appended
// under spec (indented two spaces) and returns its path and the include
// directory.
func nginxService(t *testing.T, trafficRouter, extra string) string {
	t.Helper()
	dir := t.TempDir()
	doc := `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: web-app
spec:
  versions:
    - name: blue
      targets: ["127.0.0.1:9001", "127.0.0.1:9002"]
  stable: blue
  trafficRouter:
    nginx:
` + strings.ReplaceAll(trafficRouter, "DIR", dir) + extra
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestNginxDefaults(t *testing.T) {
	file := nginxService(t, "      includeFile: DIR/web.conf\n", "")
	svcs, err := LoadFiles(file)
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	n := svcs[0].Spec.TrafficRouter.Nginx
	if n.Mode != NginxModeReload {
		t.Errorf("mode = %q, want %q", n.Mode, NginxModeReload)
	}
	if n.UpstreamName != "web_app" {
		t.Errorf("upstreamName = %q, want web_app (metadata.name with '-' as '_')", n.UpstreamName)
	}
	if !slices.Equal(n.TestCommand, DefaultNginxTestCommand) || !slices.Equal(n.ReloadCommand, DefaultNginxReloadCommand) {
		t.Errorf("commands = %q, %q; want the defaults", n.TestCommand, n.ReloadCommand)
	}
	if svcs[0].Spec.TrafficRouter.Proxy != nil {
		t.Errorf("trafficRouter.proxy was defaulted beside nginx")
	}
}

// TestNginxRefused checks that every value that would reach nginx syntax
// (or make no sense without Switchyard's listener) is refused with the
// field, the value and the fix.
func TestNginxRefused(t *testing.T) {
	const good = "      includeFile: DIR/web.conf\n"
	for _, tc := range []struct {
		name, router, extra string
		want                []string // substrings of the error
	}{
		{"no include file", "      upstreamName: web\n", "", []string{"spec.trafficRouter.nginx.includeFile: is required"}},
		{"relative include file", "      includeFile: web.conf\n", "", []string{`includeFile is "web.conf"; must be an absolute path`}},
		{"include file injection", "      includeFile: \"DIR/x.conf; include /etc/passwd\"\n", "", []string{"includeFile is", "must be an absolute path without spaces"}},
		{"missing directory", "      includeFile: DIR/nope/web.conf\n", "", []string{"must be in a directory that exists; create"}},
		{"upstream injection", good + "      upstreamName: \"web { server evil:80; }\"\n", "", []string{`upstreamName is "web { server evil:80; }"; must be 1-64 letters`}},
		{"upstream dash", good + "      upstreamName: web-app\n", "", []string{`upstreamName is "web-app"`}},
		{"access log variable", good + "      accessLog: /var/log/$host.log\n", "", []string{`accessLog is "/var/log/$host.log"`}},
		{"test command missing", good + "      testCommand: [\"/no/such/nginx\", \"-t\"]\n", "", []string{`testCommand[0] is "/no/such/nginx"; must be an executable file`}},
		{"reload command empty program", good + "      reloadCommand: [\"\"]\n", "", []string{`reloadCommand[0] is ""; must name the program`}},
		{"listen set", good, "  listen: 127.0.0.1:8080\n", []string{`spec.listen is "127.0.0.1:8080"; must be empty with spec.trafficRouter.nginx`}},
		{"both routers", good + "    proxy: {}\n", "", []string{"spec.trafficRouter: must set only one router"}},
		{"tls", good, "  tls: {certFile: a.pem, keyFile: a.key}\n", []string{"spec.tls: must not be set with spec.trafficRouter.nginx"}},
		{"header name", good, "  routing:\n    rules:\n      - header: {name: x_canary, value: \"true\"}\n        to: canary\n", []string{`header.name is "x_canary"; must be 1-64 letters, digits and '-'`}},
		{"header value injection", good, "  routing:\n    rules:\n      - header: {name: x-canary, value: \"a\\\"; }\"}\n        to: canary\n", []string{`header.value is "a\"; }"; must be 1-128 letters`}},
		{"cookie name", good, "  routing:\n    rules:\n      - cookie: {name: canary-user, value: \"yes\"}\n        to: canary\n", []string{`cookie.name is "canary-user"; must be 1-64 letters, digits and '_'`}},
		{"sticky cookie", good, "  routing:\n    stickySessions: {cookie: sess-id}\n", []string{`stickySessions.cookie is "sess-id"`}},
		{"target scheme", good, "", nil}, // replaced below
		{"unknown mode", good + "      mode: njs\n", "", []string{`mode is "njs"; must be "reload"`}},
		{"lua without control address", good + "      mode: lua\n", "", []string{`controlAddress: is required with mode "lua"`}},
		{"lua control address not loopback", good + "      mode: lua\n      controlAddress: 0.0.0.0:10246\n", "", []string{`controlAddress is "0.0.0.0:10246"; must be a loopback IP`}},
		{"control address without lua", good + "      controlAddress: 127.0.0.1:10246\n", "", []string{`controlAddress is "127.0.0.1:10246"; is only used with mode "lua"`}},
		{"builtin metric without access log", good, "  analysis:\n    metrics:\n      - name: request-success-rate\n        thresholdRange: {min: 99}\n", []string{`metrics[0].provider is "builtin"; reads nginx's access log in nginx mode; set spec.trafficRouter.nginx.accessLog`}},
		{"sequential judge without access log", good, "  analysis:\n    judge: sequential\n", []string{`spec.analysis.judge is "sequential"; reads nginx's access log in nginx mode`}},
		{"load generator", good + "      accessLog: /tmp/a.log\n", "  analysis:\n    load: {rate: 10}\n    metrics:\n      - name: request-success-rate\n        thresholdRange: {min: 99}\n", []string{"spec.analysis.load: is not available with spec.trafficRouter.nginx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := nginxService(t, tc.router, tc.extra)
			if tc.name == "target scheme" {
				b, _ := os.ReadFile(file)
				os.WriteFile(file, []byte(strings.Replace(string(b), `"127.0.0.1:9002"`, `"https://127.0.0.1:9002"`, 1)), 0o644)
				tc.want = []string{`targets[1] is "https://127.0.0.1:9002"; must be host:port with spec.trafficRouter.nginx`}
			}
			_, err := LoadFiles(file)
			if err == nil {
				t.Fatalf("LoadFiles accepted it, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nwant it to contain\n  %s", err, w)
				}
			}
		})
	}
}

func TestNginxAcrossServices(t *testing.T) {
	dir := t.TempDir()
	doc := func(name, upstream string) string {
		return `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: ` + name + `
spec:
  versions:
    - name: blue
      targets: ["127.0.0.1:` + map[string]string{"a": "9001", "b": "9002"}[name] + `"]
  stable: blue
  trafficRouter:
    nginx: {includeFile: ` + dir + `/same.conf, upstreamName: ` + upstream + `}
`
	}
	file := filepath.Join(dir, "two.yaml")
	os.WriteFile(file, []byte(doc("a", "up")+"---\n"+doc("b", "up")), 0o644)
	_, err := LoadFiles(file)
	for _, w := range []string{`includeFile is "` + dir + `/same.conf"; must differ from service "a"`, `upstreamName is "up"; must differ from service "a"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("LoadFiles: %v\nwant an error containing %s", err, w)
		}
	}
}
