package admin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
)

// ListenConfig says where the admin API listens and how it may be reached
// there. The flags of `switchyard serve` fill it.
//
// A loopback address (127.0.0.0/8, ::1, localhost) is the default and
// needs nothing else. Any other address, the wildcard ones (":9901",
// "0.0.0.0:9901", "[::]:9901") included, is refused unless the API is
// served over TLS (CertFile and KeyFile) or InsecureRemote says plain HTTP
// on the network is meant: the bearer token would otherwise be one
// sniffed packet away from full control of every deployment.
type ListenConfig struct {
	// Addr is host:port (--admin). "https://host:port" is accepted and
	// requires CertFile and KeyFile; "http://host:port" refuses them.
	Addr string
	// CertFile and KeyFile are a PEM certificate (chain) and its key
	// (--admin-tls-cert, --admin-tls-key); set, the API is served over
	// HTTPS on any address.
	CertFile, KeyFile string
	// InsecureRemote allows plain HTTP on a non-loopback address
	// (--admin-insecure-remote); the start logs a warning naming what is
	// exposed.
	InsecureRemote bool
	// OpenMetrics keeps /metrics open without a token on a non-loopback
	// address (--admin-open-metrics), for scrapers that cannot send one.
	OpenMetrics bool
}

// Exposure is what a ListenConfig exposes, decided before anything binds.
type Exposure struct {
	// Remote means the address is not loopback.
	Remote bool
	// TLS means the API is served over HTTPS.
	TLS bool
	// MetricsNeedToken means /metrics requires the bearer token: on a
	// remote address unless OpenMetrics.
	MetricsNeedToken bool
}

// Open lists the paths reachable without a token.
func (e Exposure) Open() []string {
	open := []string{"/healthz", "/readyz"}
	if !e.MetricsNeedToken {
		open = append(open, "/metrics")
	}
	return open
}

// ErrExposed means the admin address is not loopback and nothing allows it.
var ErrExposed = errors.New("admin API address is not loopback")

// Check validates c without binding anything: the flags that go together,
// the address's class, and the certificate and key. Errors name the flag,
// the value and the fix.
func (c ListenConfig) Check() (Exposure, error) {
	_, _, exp, err := c.prepare()
	return exp, err
}

// prepare is Check, returning the address to bind and the TLS
// configuration (nil for plain HTTP) as well.
func (c ListenConfig) prepare() (addr string, tlsCfg *tls.Config, exp Exposure, err error) {
	addr, scheme := c.Addr, ""
	if before, after, ok := strings.Cut(addr, "://"); ok {
		scheme, addr = before, strings.TrimRight(after, "/")
	}
	useTLS := c.CertFile != "" || c.KeyFile != ""
	switch {
	case scheme != "" && scheme != "http" && scheme != "https":
		return "", nil, exp, fmt.Errorf("--admin %q: scheme %q is not http or https; pass HOST:PORT", c.Addr, scheme)
	case (c.CertFile == "") != (c.KeyFile == ""):
		return "", nil, exp, errors.New("--admin-tls-cert and --admin-tls-key go together: pass both (a PEM certificate and its key), or neither")
	case scheme == "https" && !useTLS:
		return "", nil, exp, fmt.Errorf("--admin %q asks for https: pass --admin-tls-cert FILE and --admin-tls-key FILE", c.Addr)
	case scheme == "http" && useTLS:
		return "", nil, exp, fmt.Errorf("--admin %q asks for plain http, but --admin-tls-cert is set: use https://, or drop the TLS flags", c.Addr)
	case useTLS && c.InsecureRemote:
		return "", nil, exp, errors.New("--admin-insecure-remote allows plain HTTP, but --admin-tls-cert serves HTTPS: pass one of them")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, exp, fmt.Errorf("--admin %q is not HOST:PORT: %v", c.Addr, err)
	}
	exp.Remote = !isLoopbackHost(host)
	exp.TLS = useTLS
	exp.MetricsNeedToken = exp.Remote && !c.OpenMetrics
	if exp.Remote && !useTLS && !c.InsecureRemote {
		return "", nil, exp, fmt.Errorf("%w: --admin %s would accept connections from other hosts, and the admin token "+
			"would cross the network in clear text: serve it over TLS with --admin-tls-cert FILE --admin-tls-key FILE, "+
			"pass --admin-insecure-remote if the network is trusted, or listen on 127.0.0.1", ErrExposed, addr)
	}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return "", nil, exp, fmt.Errorf("--admin-tls-cert %s, --admin-tls-key %s: %v (want a PEM certificate and its PEM private key)",
				c.CertFile, c.KeyFile, err)
		}
		tlsCfg = &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		}
	}
	return addr, tlsCfg, exp, nil
}

// isLoopbackHost reports whether host names a loopback address. It decides
// from the text alone, before anything binds: a name other than localhost
// is not resolved, and counts as remote (it may resolve elsewhere tomorrow).
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Listener is the admin API's bound listener.
type Listener struct {
	net.Listener
	// URL is the base URL a CLI on this host uses (the one written for
	// Discover): https when served over TLS, and a loopback host when
	// bound to a wildcard address.
	URL string
	// Exposure is what the address exposes.
	Exposure Exposure
}

// Listen checks c as Check does, then binds it, wrapping the listener in
// TLS when configured. Nothing binds when the check fails.
func Listen(c ListenConfig) (*Listener, error) {
	addr, tlsCfg, exp, err := c.prepare()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (pass --admin ADDR to use another address)", addr, err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		// Every interface: a local CLI reaches it on loopback.
		host = "127.0.0.1"
		if h, _, _ := net.SplitHostPort(addr); h == "::" {
			host = "::1"
		}
	} else if h, _, _ := net.SplitHostPort(addr); h != "" && net.ParseIP(h) == nil {
		// A name (the one the certificate is likely made for).
		host = h
	}
	l := &Listener{Listener: ln, URL: scheme + "://" + net.JoinHostPort(host, port), Exposure: exp}
	if tlsCfg != nil {
		l.Listener = tls.NewListener(ln, tlsCfg)
	}
	return l, nil
}

// Announce logs where the API listens and what it exposes there: one INFO
// line on loopback or over TLS, a WARN for plain HTTP on the network.
func (l *Listener) Announce(log *slog.Logger) {
	attrs := []any{"address", l.Addr().String(), "url", l.URL, "open without token", strings.Join(l.Exposure.Open(), " ")}
	switch {
	case l.Exposure.Remote && !l.Exposure.TLS:
		log.Warn("admin API reachable from other hosts over plain HTTP (--admin-insecure-remote): "+
			"the token and every command cross the network unencrypted; anyone who sees one request controls every deployment",
			attrs...)
	case l.Exposure.Remote:
		log.Info("admin API reachable from other hosts over TLS", attrs...)
	default:
		log.Info("admin API listening on loopback", attrs...)
	}
	if l.Exposure.Remote && !l.Exposure.MetricsNeedToken {
		log.Warn("/metrics is open to other hosts without a token (--admin-open-metrics): it lists every service, version and target",
			"address", l.Addr().String())
	}
}
