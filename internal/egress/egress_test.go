package egress

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	p := Policy{}
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fe80::1", "fd00::1", "0.0.0.0", "::ffff:127.0.0.1", "224.0.0.1"} {
		if err := p.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("Check(%s) = %v, want refused", s, err)
		}
	}
	for _, s := range []string{"8.8.8.8", "2001:4860:4860::8888"} {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", s, err)
		}
	}
	allow, err := ParseAllow([]string{"127.0.0.0/8", "10.9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	p = Policy{Allow: allow}
	for _, s := range []string{"127.0.0.1", "10.9.9.9"} {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("allowlisted Check(%s) = %v, want allowed", s, err)
		}
	}
	if err := p.Check(netip.MustParseAddr("10.9.9.8")); err == nil {
		t.Error("10.9.9.8 allowed by an allowlist of 10.9.9.9 only")
	}
	if _, err := ParseAllow([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParseAllow accepted 10.0.0.0/33")
	}
}

// TestClientRefusesInternalDestinations dials real loopback servers: refused
// without an allowlist, by IP, by a name resolving to loopback, and through
// a redirect from an allowed server to a refused one.
func TestClientRefusesInternalDestinations(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer target.Close()
	v6 := strings.Replace(target.URL, "127.0.0.1", "[::1]", 1)
	for _, u := range []string{target.URL, strings.Replace(target.URL, "127.0.0.1", "localhost", 1), v6} {
		res, err := Policy{}.Client(5 * time.Second).Get(u)
		if err == nil {
			res.Body.Close()
			t.Errorf("GET %s: %s, want refused", u, res.Status)
			continue
		}
		if !errors.Is(err, ErrRefused) && !strings.Contains(err.Error(), "refused") {
			t.Errorf("GET %s: %v, want the refusal", u, err)
		}
	}
	// Allowed 127.0.0.2 redirects to 127.0.0.1, which is not allowed.
	redirect := httptest.NewUnstartedServer(http.RedirectHandler(target.URL, http.StatusFound))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2 (all of 127.0.0.0/8 is loopback): %v", err)
	}
	redirect.Listener = ln
	redirect.Start()
	defer redirect.Close()
	c := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}.Client(5 * time.Second)
	if res, err := c.Get(redirect.URL); err == nil {
		res.Body.Close()
		t.Fatalf("redirect to a refused address: %s, want refused", res.Status)
	} else if !errors.Is(err, ErrRefused) {
		t.Fatalf("redirect to a refused address: %v, want ErrRefused", err)
	}
	// With both allowed, the call works.
	c = Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}.Client(5 * time.Second)
	res, err := c.Get(redirect.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
}
