package spec

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// What nginx mode lets reach nginx syntax. Every name and value Switchyard
// writes into the include file is checked against one of these first, so a
// service file can never smuggle a directive, a quote or a variable into
// nginx.conf (the lesson of ingress-nginx's annotation-injection CVEs).
var (
	// nginxName is an upstream name (and the tail of $switchyard_NAME).
	nginxName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	// nginxHeader is a header name nginx exposes as $http_NAME ('-' read as '_').
	nginxHeader = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	// nginxCookie is a cookie name nginx exposes as $cookie_NAME.
	nginxCookie = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	// nginxValue is a rule value, matched as an anchored regular expression.
	nginxValue = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
)

const nginxPathWant = "must be an absolute path without spaces, quotes, ';', '$', '{', '}', '#' or control characters"

// NginxVariable is the variable the include file of upstream sets to the
// upstream a request goes to, routing rules applied:
// `proxy_pass http://$switchyard_web;`.
func NginxVariable(upstream string) string { return "$switchyard_" + upstream }

// checkNginxPath returns what is wrong with a path written into (or read
// next to) nginx's configuration, or "".
func checkNginxPath(p string) string {
	if !filepath.IsAbs(p) || strings.ContainsAny(p, " \t\"';${}#\\") || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return nginxPathWant
	}
	return ""
}

// nginx checks spec.trafficRouter.nginx and the fields whose meaning
// changes in nginx mode: nginx listens (no spec.listen, no spec.tls), the
// scheme of a target is proxy_pass's, the load generator is the built-in
// proxy's, and routing rules become nginx maps, so their names and values
// must fit nginx's variables and a regular expression without escaping.
func (v *validator) nginx(n *NginxRouter) {
	const p = "spec.trafficRouter.nginx"
	sp := &v.s.Spec
	switch {
	case n.IncludeFile == "":
		v.add(p+".includeFile", "", `is required: the absolute path of the file Switchyard renders, like "/etc/nginx/switchyard/web.conf", included inside nginx.conf's http block`)
	case checkNginxPath(n.IncludeFile) != "":
		v.add(p+".includeFile", quote(n.IncludeFile), nginxPathWant)
	default:
		dir := filepath.Dir(n.IncludeFile)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			v.add(p+".includeFile", quote(n.IncludeFile), fmt.Sprintf("must be in a directory that exists; create %s", dir))
		}
	}
	if !nginxName.MatchString(n.UpstreamName) {
		v.add(p+".upstreamName", quote(n.UpstreamName), "must be 1-64 letters, digits and '_', starting with a letter or '_' (it becomes an nginx upstream and the variable $switchyard_NAME)")
	}
	if n.AccessLog != "" && checkNginxPath(n.AccessLog) != "" {
		v.add(p+".accessLog", quote(n.AccessLog), nginxPathWant)
	}
	for _, c := range []struct {
		field string
		argv  []string
		like  string
	}{{"testCommand", n.TestCommand, `["nginx", "-t"]`}, {"reloadCommand", n.ReloadCommand, `["nginx", "-s", "reload"]`}} {
		switch {
		case len(c.argv) == 0:
			v.add(p+"."+c.field, "", "is required: an argv list like "+c.like+" (spec.Default sets it)")
		case c.argv[0] == "":
			v.add(p+"."+c.field+"[0]", `""`, "must name the program to run, like "+c.like)
		default:
			argv0 := c.argv[0]
			if strings.ContainsRune(argv0, filepath.Separator) && !filepath.IsAbs(argv0) && v.s.Dir() != "" {
				argv0 = filepath.Join(v.s.Dir(), argv0)
			}
			if want := checkExecutable(argv0); want != "" {
				v.add(p+"."+c.field+"[0]", quote(c.argv[0]), want)
			}
		}
	}
	switch n.Mode {
	case NginxModeReload:
		if n.ControlAddress != "" {
			v.add(p+".controlAddress", quote(n.ControlAddress), `is only used with mode "lua"; remove it`)
		}
	case NginxModeLua:
		if n.ControlAddress == "" {
			v.add(p+".controlAddress", "", `is required with mode "lua": a loopback IP address and port for the control server, like "127.0.0.1:10246"`)
		} else if want := checkControlAddress(n.ControlAddress); want != "" {
			v.add(p+".controlAddress", quote(n.ControlAddress), want)
		}
		for i, ver := range sp.Versions {
			for j, t := range ver.Targets {
				if host, _, err := net.SplitHostPort(t); err == nil {
					if _, err := netip.ParseAddr(host); err != nil {
						v.add(fmt.Sprintf("spec.versions[%d].targets[%d]", i, j), quote(t), `must be an IP address and port with mode "lua" (balancer_by_lua connects to addresses, it does not resolve names), like "10.0.0.5:8080"`)
					}
				}
			}
		}
	default:
		v.add(p+".mode", quote(n.Mode), `must be "reload" (weights in the file, nginx reloads) or "lua" (weights through balancer_by_lua, no reload; needs libnginx-mod-http-lua)`)
	}
	if sp.Listen != "" {
		v.add("spec.listen", quote(sp.Listen), "must be empty with spec.trafficRouter.nginx: nginx listens (its server blocks), Switchyard does not; remove spec.listen")
	}
	if sp.TLS != nil {
		v.add("spec.tls", "", "must not be set with spec.trafficRouter.nginx: nginx terminates TLS (ssl_certificate in its server block); remove spec.tls")
	}
	for i, ver := range sp.Versions {
		for j, t := range ver.Targets {
			if strings.Contains(t, "://") {
				v.add(fmt.Sprintf("spec.versions[%d].targets[%d]", i, j), quote(t), "must be host:port with spec.trafficRouter.nginx: the scheme is proxy_pass's (http:// or https:// in nginx.conf), not a target's")
			}
		}
	}
	if a := sp.Analysis; a != nil {
		if a.Load != nil {
			v.add("spec.analysis.load", "", "is not available with spec.trafficRouter.nginx (the load generator is the built-in proxy's); use a rollout webhook that runs a load test, or remove it")
		}
		if n.AccessLog == "" {
			for i, m := range a.Metrics {
				if m.Provider == ProviderBuiltin {
					v.add(fmt.Sprintf("spec.analysis.metrics[%d].provider", i), quote(m.Provider),
						"reads nginx's access log in nginx mode; set spec.trafficRouter.nginx.accessLog (docs/nginx.md has the log_format), or measure with a prometheus block")
					break
				}
			}
			if a.Breaker != nil {
				v.add("spec.analysis.breaker", "", "reads nginx's access log in nginx mode; set spec.trafficRouter.nginx.accessLog, or remove the breaker")
			}
			if a.Judge == JudgeSequential {
				v.add("spec.analysis.judge", quote(a.Judge), "reads nginx's access log in nginx mode; set spec.trafficRouter.nginx.accessLog, or use judge: thresholds with prometheus checks")
			}
		}
	}
	r := &sp.Routing
	for i, rule := range r.Rules {
		rp := fmt.Sprintf("spec.routing.rules[%d]", i)
		var m *Match
		switch {
		case rule.Header != nil && rule.Cookie == nil:
			m = rule.Header
			if isToken(m.Name) && !nginxHeader.MatchString(m.Name) {
				v.add(rp+".header.name", quote(m.Name), "must be 1-64 letters, digits and '-' with spec.trafficRouter.nginx (nginx reads it as $http_NAME)")
			}
		case rule.Cookie != nil && rule.Header == nil:
			m = rule.Cookie
			if isToken(m.Name) && !nginxCookie.MatchString(m.Name) {
				v.add(rp+".cookie.name", quote(m.Name), "must be 1-64 letters, digits and '_' with spec.trafficRouter.nginx (nginx reads it as $cookie_NAME)")
			}
		default:
			continue // reported by routing()
		}
		if m.Value != "" && !nginxValue.MatchString(m.Value) {
			w := "header"
			if rule.Cookie != nil {
				w = "cookie"
			}
			v.add(rp+"."+w+".value", quote(m.Value), "must be 1-128 letters, digits and '.', '_', '~', '-' with spec.trafficRouter.nginx (it is matched exactly by an nginx map)")
		}
	}
	if st := r.StickySessions; st != nil && isToken(st.Cookie) && !nginxCookie.MatchString(st.Cookie) {
		v.add("spec.routing.stickySessions.cookie", quote(st.Cookie), "must be 1-64 letters, digits and '_' with spec.trafficRouter.nginx (nginx reads it as $cookie_NAME)")
	}
}

// checkControlAddress returns what is wrong with a lua-mode control
// address, or "": a loopback IP and a port, so the control server that
// changes weights is never reachable from another host.
func checkControlAddress(s string) string {
	const want = `must be a loopback IP address and port, like "127.0.0.1:10246"`
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return want
	}
	ip, err := netip.ParseAddr(host)
	if n, perr := strconv.Atoi(port); err != nil || !ip.IsLoopback() || perr != nil || n < 1 || n > 65535 {
		return want
	}
	return ""
}

// validateNginxAcross checks what nginx-mode services must not share: an
// include file (each is rendered whole by its service) and an upstream
// name (nginx refuses duplicate upstreams; the variables would collide).
func validateNginxAcross(svcs []*Service) []error {
	var errs []error
	files := map[string]*Service{}
	names := map[string]*Service{}
	controls := map[string]*Service{}
	for _, s := range svcs {
		n := s.Spec.TrafficRouter.Nginx
		if n == nil {
			continue
		}
		if prev, ok := files[n.IncludeFile]; ok && n.IncludeFile != "" {
			errs = append(errs, s.fieldError("spec.trafficRouter.nginx.includeFile", quote(n.IncludeFile),
				fmt.Sprintf("must differ from service %q's (%s): each service renders its own include file", prev.Metadata.Name, prev.where())))
		} else {
			files[n.IncludeFile] = s
		}
		if prev, ok := controls[n.ControlAddress]; ok && n.ControlAddress != "" {
			errs = append(errs, s.fieldError("spec.trafficRouter.nginx.controlAddress", quote(n.ControlAddress),
				fmt.Sprintf("must differ from service %q's (%s): each service's include file opens its own control server", prev.Metadata.Name, prev.where())))
		} else if n.ControlAddress != "" {
			controls[n.ControlAddress] = s
		}
		if prev, ok := names[n.UpstreamName]; ok && n.UpstreamName != "" {
			errs = append(errs, s.fieldError("spec.trafficRouter.nginx.upstreamName", quote(n.UpstreamName),
				fmt.Sprintf("must differ from service %q's (%s): nginx refuses two upstreams of one name", prev.Metadata.Name, prev.where())))
		} else {
			names[n.UpstreamName] = s
		}
	}
	return errs
}
