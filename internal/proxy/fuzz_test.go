package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/spec"
)

func FuzzRuleMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"true", ""}, {"always", ""}, {"never", "canary=always"}, {"", "canary=always"},
		{"", "a=b; canary=never"}, {"", `canary="always"`}, {"TRUE", "canary"}, {"", ";;=;canary=;"},
	} {
		f.Add(s[0], s[1])
	}
	rules, err := compileRules([]spec.Rule{
		{Header: &spec.Match{Name: "x-canary", Value: "true"}, To: "canary"},
		{Cookie: &spec.Match{Name: "canary"}, To: "canary"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, header, cookie string) {
		h := http.Header{}
		if header != "" {
			h.Set("X-Canary", header)
		}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		got := matchRules(rules, h, true)
		untrusted := matchRules(rules, h, false)
		var want role
		switch header {
		case "true", "always":
			want = roleCanary
		case "never":
			want = roleStable
		}
		if want != roleNone && got != want {
			t.Fatalf("header %q: role %v, want %v", header, got, want)
		}
		cv, found := cookieValue(h, "canary")
		var cookieRole role
		if found {
			switch cv {
			case "always":
				cookieRole = roleCanary
			case "never":
				cookieRole = roleStable
			}
			if !strings.Contains(cookie, "canary=") {
				t.Fatalf("cookieValue found canary in %q", cookie)
			}
		}
		if want == roleNone && got != cookieRole {
			t.Fatalf("header %q cookie %q: role %v, want cookie's %v", header, cookie, got, cookieRole)
		}
		if untrusted != cookieRole {
			t.Fatalf("untrusted client: role %v, want cookie's %v (header rules ignored)", untrusted, cookieRole)
		}
	})
}

func FuzzStickyCookie(f *testing.F) {
	sc := newStickyConfig("sy", 0, "web", []byte("key"))
	var id [stickyIDLen]byte
	valid := sc.encode(id, 1<<40)
	f.Add(valid, int64(0))
	f.Add(valid[:len(valid)-1]+"A", int64(0))
	f.Add(valid, int64(1)<<41) // expired
	f.Add("", int64(0))
	f.Add("!!!!", int64(0))
	f.Add(strings.Repeat("A", len(valid)), int64(0))
	f.Fuzz(func(t *testing.T, v string, now int64) {
		gotID, exp, ok := sc.decode(v, now)
		if !ok {
			return
		}
		if exp <= now {
			t.Fatalf("decode(%q) accepted a cookie expired at %d at %d", v, exp, now)
		}
		// Only what encode produces verifies, byte for byte.
		if re := sc.encode(gotID, exp); re != v {
			t.Fatalf("decode accepted %q but encode gives %q", v, re)
		}
		other := newStickyConfig("sy", 0, "other-service", []byte("key"))
		if _, _, ok := other.decode(v, now); ok {
			t.Fatalf("cookie %q verified for another service", v)
		}
	})
}
