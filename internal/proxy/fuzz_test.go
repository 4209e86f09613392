package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

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

// FuzzFastRequest feeds raw bytes to fasthttp's request parser as the fast
// path's server runs it (header, HeaderReceived's framing check and
// hand-off decision, then the body), writes what passed with
// writeFastRequest, and checks what a target would receive: exactly one
// HTTP/1.1 request that net/http parses, with the client's method, target
// and body; no hop-by-hop or framing field but the one Content-Length the
// proxy writes; no field name with an underscore or that is not a token; no CR, LF or NUL inside a
// name or value, and no folded line. Its seeds are the framing corpus.
func FuzzFastRequest(f *testing.F) {
	files, _ := filepath.Glob("testdata/framing/*.http")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}
	f.Fuzz(func(t *testing.T, raw []byte) {
		br := bufio.NewReader(bytes.NewReader(raw))
		var req fasthttp.Request
		if err := req.Header.Read(br); err != nil {
			return // fasthttp answers 400 or 431
		}
		if framingFault(&req.Header) != 0 || needsNetHTTP(&req.Header) {
			return // refused, or not the fast path's
		}
		if req.Header.ContentLength() > 0 {
			if err := req.ContinueReadBody(br, maxFastBody); err != nil {
				return
			}
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, peer, nil)
		fr := &fastReq{ctx: &ctx, newID: len(ctx.Request.Header.Peek("X-Request-Id")) == 0}
		fillRequestID(&fr.id)
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		writeFastRequest(bw, fr)
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		wire := out.Bytes()

		head, _, ok := bytes.Cut(wire, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("no end of header in %q", wire)
		}
		lines := strings.Split(string(head), "\r\n")
		if !strings.HasSuffix(lines[0], " HTTP/1.1") || strings.ContainsAny(lines[0], "\x00\r\n") {
			t.Fatalf("request line %q", lines[0])
		}
		lengths := 0
		for _, line := range lines[1:] {
			name, value, ok := strings.Cut(line, ":")
			if !ok || name == "" || line[0] == ' ' || line[0] == '\t' {
				t.Fatalf("field line %q is not name: value (from %q)", line, raw)
			}
			if strings.ContainsAny(line, "\x00\r\n") || strings.ContainsAny(name, " \t") {
				t.Fatalf("field line %q carries a control or a space in its name", line)
			}
			if dropFieldName(name) {
				t.Fatalf("field %q with an underscore or not a token forwarded", name)
			}
			switch http.CanonicalHeaderKey(name) {
			case "Content-Length":
				lengths++
			case "Transfer-Encoding", "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Trailer", "Proxy-Authorization", handoffHeader:
				t.Fatalf("hop-by-hop or framing field %q forwarded", line)
			case "Te":
				if !strings.EqualFold(strings.TrimSpace(value), "trailers") {
					t.Fatalf("hop-by-hop field %q forwarded", line)
				}
			}
		}
		if lengths > 1 {
			t.Fatalf("%d Content-Length fields in %q", lengths, head)
		}
		// The target is passed on as received (an absolute-form target
		// net/http may refuse, docs/architecture.md): the framing is
		// checked with an origin-form one in its place.
		method, target, _ := strings.Cut(strings.TrimSuffix(lines[0], " HTTP/1.1"), " ")
		if method != string(req.Header.Method()) || target != string(req.Header.RequestURI()) {
			t.Fatalf("request line %q; the client sent %s %s", lines[0], req.Header.Method(), req.Header.RequestURI())
		}
		wire = append([]byte(method+" / HTTP/1.1"), wire[len(lines[0]):]...)
		wbr := bufio.NewReader(bytes.NewReader(wire))
		r, err := http.ReadRequest(wbr)
		if err != nil {
			t.Fatalf("target cannot parse %q: %v", wire, err)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatalf("target cannot read the body of %q: %v", wire, err)
		}
		if rest, _ := io.ReadAll(wbr); len(rest) > 0 {
			t.Fatalf("%q left after the request: a second request in %q", rest, wire)
		}
		if !bytes.Equal(body, req.Body()) || r.Method != method {
			t.Fatalf("target got %s %q; the client sent %s %q", r.Method, body, req.Header.Method(), req.Body())
		}
	})
}
