package admin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/rollout"
)

// DefaultClientTimeout bounds each API call of a Client (not the event
// stream, which lasts as long as its context).
const DefaultClientTimeout = 30 * time.Second

// APIError is a non-2xx answer of the admin API. Error returns Message,
// which already names the service, field or line; errors.Is matches
// ErrNotFound, ErrConflict and ErrInvalid by Code.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Is reports whether the API error corresponds to target.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrConflict:
		return e.Code == CodeConflict
	case ErrInvalid:
		return e.Code == CodeInvalid
	}
	return false
}

// Client calls the admin API. It is safe for concurrent use.
type Client struct {
	base    string
	token   string
	user    string
	timeout time.Duration
	rootCAs *x509.CertPool
	// transport is shared by calls (with timeout) and the event stream
	// (bounded by its context only).
	transport http.RoundTripper
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// WithUser sets who the commands are recorded as (X-Switchyard-User); the
// CLI passes user@host.
func WithUser(user string) ClientOption { return func(c *Client) { c.user = user } }

// WithTimeout bounds each API call; zero or less keeps DefaultClientTimeout.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithTransport replaces the HTTP transport (tests, TLS, proxies).
func WithTransport(rt http.RoundTripper) ClientOption {
	return func(c *Client) {
		if rt != nil {
			c.transport = rt
		}
	}
}

// WithRootCAs makes the client trust the certificates in pool (and only
// them) for an https:// server: a self-signed certificate of `serve
// --admin-tls-cert`, or the private CA that signed it. Without it the
// system's roots are used. It applies to the default transport only.
func WithRootCAs(pool *x509.CertPool) ClientOption { return func(c *Client) { c.rootCAs = pool } }

// LoadCACert reads PEM certificates from path for WithRootCAs. Errors name
// the file and the flag that gave it (--ca-cert, SWITCHYARD_CA_CERT).
func LoadCACert(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate (--ca-cert or %s): %w", EnvCACert, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s (--ca-cert or %s) holds no PEM certificate: "+
			"pass the certificate file `serve --admin-tls-cert` uses, or the CA that signed it", path, EnvCACert)
	}
	return pool, nil
}

// NewClient returns a client of the admin API at baseURL ("http://host:port",
// "https://host:port" or "host:port") authenticating with token.
func NewClient(baseURL, token string, opts ...ClientOption) *Client {
	c := &Client{
		base:    normalizeURL(baseURL),
		token:   token,
		timeout: DefaultClientTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.transport == nil {
		c.transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{RootCAs: c.rootCAs, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: DefaultClientTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ForceAttemptHTTP2:     true,
		}
	}
	return c
}

// BaseURL is the API address the client talks to.
func (c *Client) BaseURL() string { return c.base }

// Services lists every service's status.
func (c *Client) Services(ctx context.Context) ([]ServiceStatus, error) {
	var out []ServiceStatus
	err := c.do(ctx, http.MethodGet, "/api/v1/services", nil, "", &out)
	return out, err
}

// Service returns one service's status.
func (c *Client) Service(ctx context.Context, name string) (ServiceStatus, error) {
	var out ServiceStatus
	err := c.do(ctx, http.MethodGet, servicePath(name, ""), nil, "", &out)
	return out, err
}

// Deploy starts a rollout and returns the status after it was persisted.
func (c *Client) Deploy(ctx context.Context, name string, req DeployRequest) (ServiceStatus, error) {
	return c.command(ctx, name, "deploy", req)
}

// Promote advances the rollout one step, or to the end when full.
func (c *Client) Promote(ctx context.Context, name string, full bool) (ServiceStatus, error) {
	return c.command(ctx, name, "promote", PromoteRequest{Full: full})
}

// Pause stops the rollout where it is.
func (c *Client) Pause(ctx context.Context, name string) (ServiceStatus, error) {
	return c.command(ctx, name, "pause", nil)
}

// Resume continues a paused rollout.
func (c *Client) Resume(ctx context.Context, name string) (ServiceStatus, error) {
	return c.command(ctx, name, "resume", nil)
}

// Abort sends all traffic back to stable and ends the rollout.
func (c *Client) Abort(ctx context.Context, name, reason string) (ServiceStatus, error) {
	return c.command(ctx, name, "abort", AbortRequest{Reason: reason})
}

// Retry restarts the last aborted or rolled-back rollout.
func (c *Client) Retry(ctx context.Context, name string) (ServiceStatus, error) {
	return c.command(ctx, name, "retry", nil)
}

// Rollback returns to the previous version after a finished rollout.
func (c *Client) Rollback(ctx context.Context, name string) (ServiceStatus, error) {
	return c.command(ctx, name, "rollback", nil)
}

// RemoveVersion forgets a version added by a deploy that nothing uses.
func (c *Client) RemoveVersion(ctx context.Context, name, version string) (ServiceStatus, error) {
	var out ServiceStatus
	err := c.do(ctx, http.MethodDelete, servicePath(name, "versions/"+url.PathEscape(version)), nil, "", &out)
	return out, err
}

// History returns the service's timeline, oldest first; limit > 0 keeps
// the newest limit entries.
func (c *Client) History(ctx context.Context, name string, limit int) ([]rollout.HistoryEntry, error) {
	p := servicePath(name, "history")
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out []rollout.HistoryEntry
	err := c.do(ctx, http.MethodGet, p, nil, "", &out)
	return out, err
}

// Apply sends YAML service documents and returns the names applied.
func (c *Client) Apply(ctx context.Context, yaml []byte) ([]string, error) {
	var out ApplyResponse
	err := c.do(ctx, http.MethodPost, "/api/v1/apply", bytes.NewReader(yaml), "application/yaml", &out)
	return out.Applied, err
}

// Healthz checks that the server answers /healthz.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, "", nil)
}

// Events subscribes to the event stream (of one service, or all when
// service is empty) and calls fn for each event in order, until ctx ends
// (returning ctx's error), fn returns an error (returned as is), or the
// server ends the stream (an error wrapping io.EOF). It does not reconnect.
func (c *Client) Events(ctx context.Context, service string, fn func(StreamEvent) error) error {
	p := "/api/v1/events"
	if service != "" {
		p += "?service=" + url.QueryEscape(service)
	}
	req, err := c.newRequest(ctx, http.MethodGet, p, nil, "")
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	// No overall timeout: the stream lasts as long as ctx. The transport
	// still bounds dialing and waiting for the response headers.
	resp, err := (&http.Client{Transport: c.transport}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return decodeError(resp)
	}
	err = readSSE(resp.Body, func(kind, data string) error {
		var ev StreamEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("event stream: event %q does not decode: %w", kind, err)
		}
		return fn(ev)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readSSE parses a text/event-stream, calling fn for every event with data.
func readSSE(r io.Reader, fn func(kind, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), MaxBodyBytes)
	var (
		kind string
		data []string
	)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 {
				if err := fn(kind, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			kind, data = "", data[:0]
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // comment: heartbeat
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			kind = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return fmt.Errorf("event stream ended: %w", io.EOF)
}

func servicePath(name, action string) string {
	p := "/api/v1/services/" + url.PathEscape(name)
	if action != "" {
		p += "/" + action
	}
	return p
}

func (c *Client) command(ctx context.Context, name, action string, body any) (ServiceStatus, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return ServiceStatus{}, fmt.Errorf("%s %s: %w", action, name, err)
		}
		rd = bytes.NewReader(b)
	}
	var out ServiceStatus
	err := c.do(ctx, http.MethodPost, servicePath(name, action), rd, "application/json", &out)
	return out, err
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("admin API request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.user != "" {
		req.Header.Set(UserHeader, c.user)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := c.newRequest(ctx, method, path, body, contentType)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	hc := &http.Client{Transport: c.transport, Timeout: c.timeout}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBodyBytes))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin API %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) transportError(err error) error {
	var (
		ue        *url.Error
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		tlsRecord tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &ue) && ue.Timeout():
		return fmt.Errorf("switchyard server at %s did not answer in time: %w", c.base, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("the certificate of the switchyard server at %s is not trusted: pass --ca-cert FILE (or set %s) "+
			"with the certificate `serve --admin-tls-cert` uses, or the CA that signed it: %w", c.base, EnvCACert, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("the certificate of the switchyard server at %s is not made for that host: "+
			"use --server with a name or address the certificate lists: %w", c.base, err)
	case errors.As(err, &tlsRecord), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// net/http replaces the TLS record error with a plain one when
		// the answer looks like HTTP.
		return fmt.Errorf("the switchyard server at %s does not speak TLS: use --server http://…: %w", c.base, err)
	}
	return fmt.Errorf("cannot reach the switchyard server at %s (is `switchyard serve` running?): %w", c.base, err)
}

// decodeError turns a non-2xx answer into an *APIError. Answers that are
// not the API's JSON (a proxy in between, a wrong URL) keep their status
// and the start of their body.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	var er ErrorResponse
	if err := json.Unmarshal(body, &er); err == nil && er.Error != "" {
		return &APIError{Status: resp.StatusCode, Code: er.Code, Message: er.Error}
	}
	code := CodeInternal
	switch resp.StatusCode {
	case http.StatusNotFound:
		code = CodeNotFound
	case http.StatusUnauthorized:
		code = CodeUnauthorized
	case http.StatusForbidden:
		code = CodeForbidden
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = "no body"
	}
	return &APIError{
		Status:  resp.StatusCode,
		Code:    code,
		Message: fmt.Sprintf("%s %s answered %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, msg),
	}
}
