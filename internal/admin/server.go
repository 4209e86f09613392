package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/internal/rollout"
)

// MaxBodyBytes is the largest request body the API reads: a service file
// at most (spec.MaxDocumentBytes), which spec.Parse bounds in nesting too.
const MaxBodyBytes = 1 << 20

// DefaultHeartbeat is how often the event stream sends a comment line to
// keep idle connections (and proxies between) open.
const DefaultHeartbeat = 15 * time.Second

// UserHeader names who issued a command; the CLI sends user@host. Requests
// without it are recorded as DefaultUser.
const UserHeader = "X-Switchyard-User"

// DefaultUser is the By of commands sent without UserHeader.
const DefaultUser = "api"

// maxUserLen bounds UserHeader, which ends up in the persisted history.
const maxUserLen = 128

// Error codes of ErrorResponse.
const (
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeInternal     = "internal"
	CodeTooLarge     = "too_large"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Token is the bearer token every /api/ request must carry. An empty
	// token refuses every /api/ request (fail closed).
	Token string
	// Logger receives request failures; nil discards them.
	Logger *slog.Logger
	// Gatherer is served on /metrics (OpenMetrics when asked for); nil
	// leaves /metrics unrouted (404).
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() error
	// Heartbeat is the event stream's keep-alive interval; zero means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// MetricsNeedToken makes /metrics require the bearer token like /api/
	// (Exposure.MetricsNeedToken: the listener is reachable from other
	// hosts).
	MetricsNeedToken bool
}

// Server is the admin HTTP API. Build it with NewServer and serve Handler.
//
// Authentication: every /api/ route needs "Authorization: Bearer TOKEN".
// /healthz and /readyz never do: they change nothing, say nothing but
// "ok" or "not ready", and load balancers' probes carry no token. /metrics
// needs one when MetricsNeedToken is set (a listener other hosts can reach,
// see ListenConfig): it lists every service, version and target, and
// Prometheus can send a bearer token (a scrape config's authorization).
//
// Cross-origin browser requests that could change something (any method
// but GET, HEAD and OPTIONS) are refused with 403, whatever the token, so a
// web page cannot drive the API through a browser that holds credentials.
type Server struct {
	ctrl      Controller
	token     [sha256.Size]byte
	hasToken  bool
	log       *slog.Logger
	ready     func() error
	heartbeat time.Duration
	csrf      *http.CrossOriginProtection
	handler   http.Handler
}

// NewServer returns the admin API over ctrl.
func NewServer(ctrl Controller, opts ServerOptions) *Server {
	s := &Server{
		ctrl:      ctrl,
		token:     sha256.Sum256([]byte(opts.Token)),
		hasToken:  opts.Token != "",
		log:       opts.Logger,
		ready:     opts.Ready,
		heartbeat: opts.Heartbeat,
		csrf:      http.NewCrossOriginProtection(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.heartbeat <= 0 {
		s.heartbeat = DefaultHeartbeat
	}

	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/services", s.listServices)
	api.HandleFunc("GET /api/v1/services/{name}", s.getService)
	api.HandleFunc("POST /api/v1/services/{name}/deploy", s.deploy)
	api.HandleFunc("POST /api/v1/services/{name}/promote", s.promote)
	api.HandleFunc("POST /api/v1/services/{name}/pause", s.simple(func(by string) rollout.Event { return rollout.Pause{By: by} }))
	api.HandleFunc("POST /api/v1/services/{name}/resume", s.simple(func(by string) rollout.Event { return rollout.Resume{By: by} }))
	api.HandleFunc("POST /api/v1/services/{name}/abort", s.abort)
	api.HandleFunc("POST /api/v1/services/{name}/retry", s.simple(func(by string) rollout.Event { return rollout.Retry{By: by} }))
	api.HandleFunc("POST /api/v1/services/{name}/rollback", s.simple(func(by string) rollout.Event { return rollout.Rollback{By: by} }))
	api.HandleFunc("DELETE /api/v1/services/{name}/versions/{version}", func(w http.ResponseWriter, r *http.Request) {
		s.command(w, r, rollout.RemoveVersion{Version: r.PathValue("version"), By: by(r)})
	})
	api.HandleFunc("GET /api/v1/services/{name}/history", s.history)
	api.HandleFunc("POST /api/v1/apply", s.apply)
	api.HandleFunc("GET /api/v1/events", s.events)
	api.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path))
	})

	root := http.NewServeMux()
	root.Handle("/api/", s.authenticate(api))
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok\n")
	})
	root.HandleFunc("GET /readyz", s.readyz)
	if opts.Gatherer != nil {
		var metrics http.Handler = promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			EnableOpenMetrics: true,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		})
		if opts.MetricsNeedToken {
			metrics = s.authenticate(metrics)
		}
		root.Handle("GET /metrics", metrics)
	}
	s.handler = s.refuseCrossOrigin(root)
	return s
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) refuseCrossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.csrf.Check(r); err != nil {
			writeError(w, http.StatusForbidden, CodeForbidden,
				"cross-origin request refused: the admin API does not accept changes from web pages of other origins ("+err.Error()+")")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.tokenMatches(r.Header.Get("Authorization")) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchyard"`)
			writeError(w, http.StatusUnauthorized, CodeUnauthorized,
				"missing or wrong bearer token: pass the token `switchyard serve` wrote into its --state-dir (--token or SWITCHYARD_TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenMatches compares the Authorization header with the token in
// constant time. Both sides are hashed first so that neither the content
// nor the length of the token leaks through timing.
func (s *Server) tokenMatches(header string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || !s.hasToken {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.ready != nil {
		if err := s.ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
			return
		}
	}
	writeText(w, http.StatusOK, "ok\n")
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	svcs, err := s.ctrl.Services(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if svcs == nil {
		svcs = []ServiceStatus{}
	}
	writeJSON(w, http.StatusOK, svcs)
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	st, err := s.ctrl.Service(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	if !s.decode(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Version) == "" {
		writeError(w, http.StatusBadRequest, CodeInvalid, "body: version is required (the name of the version to deploy)")
		return
	}
	switch req.Strategy {
	case "", rollout.StrategyCanary, rollout.StrategyBlueGreen:
	default:
		writeError(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("body: strategy is %q; must be %q or %q",
			req.Strategy, rollout.StrategyCanary, rollout.StrategyBlueGreen))
		return
	}
	s.command(w, r, rollout.Deploy{
		Version:  req.Version,
		Targets:  req.Targets,
		Strategy: req.Strategy,
		Force:    req.Force,
		By:       by(r),
	})
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	var req PromoteRequest
	if !s.decode(w, r, &req) {
		return
	}
	s.command(w, r, rollout.Promote{Full: req.Full, By: by(r)})
}

func (s *Server) abort(w http.ResponseWriter, r *http.Request) {
	var req AbortRequest
	if !s.decode(w, r, &req) {
		return
	}
	s.command(w, r, rollout.Abort{Reason: req.Reason, By: by(r)})
}

// simple serves a command without a body (an empty JSON object is accepted
// too, so clients can always send one).
func (s *Server) simple(event func(by string) rollout.Event) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var none struct{}
		if !s.decode(w, r, &none) {
			return
		}
		s.command(w, r, event(by(r)))
	}
}

func (s *Server) command(w http.ResponseWriter, r *http.Request, cmd rollout.Event) {
	st, err := s.ctrl.Command(r.Context(), r.PathValue("name"), cmd)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("query: limit is %q; must be a whole number >= 0 (0 means all)", v))
			return
		}
		limit = n
	}
	hs, err := s.ctrl.History(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if hs == nil {
		hs = []rollout.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, hs)
}

func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		s.bodyError(w, err)
		return
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		writeError(w, http.StatusBadRequest, CodeInvalid, "body: empty; send one or more YAML service documents")
		return
	}
	names, err := s.ctrl.Apply(r.Context(), body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if names == nil {
		names = []string{}
	}
	writeJSON(w, http.StatusOK, ApplyResponse{Applied: names})
}

// events streams StreamEvents as server-sent events until the client goes
// away or the controller closes the stream.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("service")
	rc := http.NewResponseController(w)
	// The daemon's server may have a WriteTimeout for ordinary requests;
	// a stream must outlive it. Not every ResponseWriter supports this.
	_ = rc.SetWriteDeadline(time.Time{})

	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	ch, cancel := s.ctrl.Subscribe(ctx)
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx in front: do not buffer
	w.WriteHeader(http.StatusOK)
	// Send the headers now, so the client knows it is subscribed.
	if _, err := io.WriteString(w, ": subscribed\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		s.log.Error("event stream cannot flush", "err", err)
		return
	}

	heartbeat := time.NewTicker(s.heartbeat)
	defer heartbeat.Stop()
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if filter != "" && ev.Service != filter {
				continue
			}
			data, err := json.Marshal(ev)
			if err != nil {
				s.log.Error("event not encodable", "err", err)
				continue
			}
			buf = fmt.Appendf(buf[:0], "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, sseField(ev.Kind), data)
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// sseField keeps a value on one SSE line.
func sseField(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// by is who issued the request: UserHeader, or DefaultUser.
func by(r *http.Request) string {
	u := strings.TrimSpace(r.Header.Get(UserHeader))
	u = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, u)
	if u == "" {
		return DefaultUser
	}
	if len(u) > maxUserLen {
		u = u[:maxUserLen]
	}
	return u
}

// decode reads a JSON body strictly into v; an empty body leaves v zero.
// On failure it answers 400 (or 413) naming the field and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return true // no body: all defaults
	}
	if err == nil {
		// One JSON value only.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			writeError(w, http.StatusBadRequest, CodeInvalid, "body: unexpected data after the JSON object")
			return false
		}
		return true
	}
	s.bodyError(w, describeJSONError(err, v))
	return false
}

func (s *Server) bodyError(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("body: larger than %d bytes", tooLarge.Limit))
		return
	}
	writeError(w, http.StatusBadRequest, CodeInvalid, err.Error())
}

// describeJSONError turns encoding/json errors into messages that name the
// field and what would be valid.
func describeJSONError(err error, v any) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
		tooLarge  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return err
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Errorf("body: must be a JSON object, not %s", typeErr.Value)
		}
		return fmt.Errorf("body: field %q is %s; must be %s", field, typeErr.Value, jsonKind(typeErr.Type))
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("body: invalid JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body: JSON ends early")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if fields := jsonFields(v); fields != "" {
			return fmt.Errorf("body: unknown field %s; valid fields: %s", field, fields)
		}
		return fmt.Errorf("body: unknown field %s; this request takes no fields", field)
	default:
		return fmt.Errorf("body: %w", err)
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list (" + jsonKind(t.Elem()) + " each)"
	case reflect.Map, reflect.Struct:
		return "an object"
	default:
		return t.String()
	}
}

func jsonFields(v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	var names []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

// fail answers a Controller error with its status and code; the message is
// the full error text, which names the service, field or line.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, CodeInternal
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, CodeNotFound
	case errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, CodeConflict
	case errors.Is(err, ErrInvalid):
		status, code = http.StatusBadRequest, CodeInvalid
	case r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		return
	default:
		s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, code, err.Error())
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(ErrorResponse{Error: "encode response: " + err.Error(), Code: CodeInternal})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}
