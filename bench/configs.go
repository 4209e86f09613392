package bench

import (
	"fmt"
	"os"
	"strings"
)

// NginxConf is the benchmark's nginx.conf: upstream keep-alive as nginx's
// documentation recommends for a reverse proxy, one worker per core, no
// access log. keepalive_requests is raised on both sides so that neither
// nginx nor the others close busy connections (HAProxy and Go don't).
func NginxConf(dir, listen, backend string, root bool) string {
	user := ""
	if root {
		// Workers stay root so they can use the private 0700 directory.
		user = "user root;\n"
	}
	return fmt.Sprintf(`%sworker_processes auto;
worker_rlimit_nofile 16384;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream backend {
        server %[4]s;
        keepalive 256;
        keepalive_requests 1000000;
    }
    server {
        listen %[3]s;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, user, dir, listen, backend)
}

// HAProxyConf is the benchmark's haproxy.cfg: two threads (one per core),
// idle server connections shared between clients (http-reuse always).
func HAProxyConf(listen, backend string) string {
	return fmt.Sprintf(`global
    nbthread 2
    maxconn 8000

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind %s
    default_backend app

backend app
    http-reuse always
    server s1 %s
`, listen, backend)
}

// Placeholder addresses in bench/switchyard.yaml, replaced by the real ones.
const (
	SwitchyardListenPlaceholder  = "127.0.0.1:18080"
	SwitchyardBackendPlaceholder = "127.0.0.1:18081"
)

// SwitchyardConf reads the service file template at path and puts in the
// listen and backend addresses.
func SwitchyardConf(path, listen, backend string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read switchyard service file: %w", err)
	}
	s := string(b)
	for _, ph := range []string{SwitchyardListenPlaceholder, SwitchyardBackendPlaceholder} {
		if !strings.Contains(s, ph) {
			return "", fmt.Errorf("%s: placeholder address %s not found", path, ph)
		}
	}
	s = strings.ReplaceAll(s, SwitchyardListenPlaceholder, listen)
	s = strings.ReplaceAll(s, SwitchyardBackendPlaceholder, backend)
	return s, nil
}
