// Package egress makes the HTTP clients of Switchyard's outbound calls to
// addresses users configure (Prometheus servers, webhooks, notifications).
// Such a call must not become a way into the host or its network (SSRF,
// flagger#1914): loopback, private, link-local (cloud metadata at
// 169.254.169.254), unspecified and multicast destinations are refused at
// dial time — after DNS, so a name that resolves (or re-resolves) to one
// fails too — unless an allowlist names them. Redirects are followed at
// most three times, each to a dial that is checked the same way.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrRefused is returned (wrapped) for a destination the policy refuses.
var ErrRefused = errors.New("destination refused")

// MaxRedirects is how many redirects a client follows.
const MaxRedirects = 3

// Policy decides which destinations outbound calls may reach.
type Policy struct {
	// Allow lists prefixes that may be reached even though they are
	// internal (e.g. 10.0.0.0/8 for a Prometheus inside the network, or
	// 127.0.0.0/8 in tests).
	Allow []netip.Prefix
}

// Check reports whether ip may be dialled.
func (p Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	switch {
	case ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(),
		ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: %s is an internal address (loopback, private or link-local); add it to the egress allowlist (serve --egress-allow CIDR) to reach it", ErrRefused, ip)
	}
	return nil
}

// Client returns an HTTP client whose every dial passes p, with a timeout
// for the whole call.
func (p Policy) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{
		Timeout: 5 * time.Second,
		// Control runs for the address actually dialled, after DNS.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %q is not an IP address and port", ErrRefused, address)
			}
			return p.Check(ap.Addr())
		},
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		Proxy:               nil, // an environment proxy would dial for us, unchecked
		TLSHandshakeTimeout: 5 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > MaxRedirects {
				return fmt.Errorf("%w: more than %d redirects", ErrRefused, MaxRedirects)
			}
			return nil
		},
	}
}

// ParseAllow parses CIDRs or single addresses for Policy.Allow.
func ParseAllow(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("egress allowlist entry %q is not a CIDR (10.0.0.0/8) or an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
