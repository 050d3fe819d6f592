// Package httpapi is the HTTP edge of the CRM: JSON commands and queries under /v1, errors as
// RFC 9457 problem details, bearer-token authentication, ETag/If-Match concurrency and
// Idempotency-Key deduplication.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
)

// DefaultMaxBody is the largest accepted request body.
const DefaultMaxBody = 1 << 20

// Config is what the server needs.
type Config struct {
	Store    eventstore.Store
	Commands *commands.Handler
	Tokens   *auth.Tokens
	Log      *zap.Logger
	// MaxBody limits request bodies (default DefaultMaxBody).
	MaxBody int64
	// Appends, when set, is the store Commands appends through: health then also reports
	// appends that fail.
	Appends *AppendWatch
}

// Server serves the HTTP API.
type Server struct {
	store   eventstore.Store
	cmds    *commands.Handler
	tokens  *auth.Tokens
	log     *zap.Logger
	maxBody int64
	appends *AppendWatch
	router  *mux.Router
	// answerBuffers holds the buffers read-model answers are written into: a board of 250
	// cards is about 60 KB, and allocating that per request shows at 100 clients.
	answerBuffers sync.Pool
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	s := &Server{store: cfg.Store, cmds: cfg.Commands, tokens: cfg.Tokens, log: cfg.Log, maxBody: cfg.MaxBody, appends: cfg.Appends}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.routes()
	return s
}

// ServeHTTP makes the server an http.Handler. A path that is not canonical is refused before
// routing (see canonicalPath).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := canonicalPath(r); err != nil {
		// Refused before the router, whose middleware gives every answer its request id.
		s.withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.writeError(w, r, err)
		})).ServeHTTP(w, r)
		return
	}
	s.router.ServeHTTP(w, r)
}

// Router exposes the router so later read-model endpoints can be mounted beside the core ones.
func (s *Server) Router() *mux.Router { return s.router }

func (s *Server) routes() {
	// No cleaning: it redirects before authentication; ServeHTTP refuses such paths instead.
	r := mux.NewRouter().SkipClean(true)
	r.Use(s.withRequestID, s.withRecovery, s.withAccessLog)
	noRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, notFound("no such endpoint"))
	})
	notAllowed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, methodNotAllowed(r.Method, r.URL.Path))
	})
	// The router's middleware runs for matched routes only: these get their request id here.
	r.NotFoundHandler, r.MethodNotAllowedHandler = s.withRequestID(noRoute), s.withRequestID(notAllowed)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)

	// Routes hang off the root router: a gorilla/mux subrouter answers 404 where 405 is right.
	v1 := prefixed{r, "/v1"}
	s.mountCommands(v1)

	v1.Handle("/contacts/{id}", s.authorize(auth.PermRead, s.query(s.getContact))).Methods(http.MethodGet)
	v1.Handle("/accounts/{id}", s.authorize(auth.PermRead, s.query(s.getAccount))).Methods(http.MethodGet)
	v1.Handle("/deals/{id}", s.authorize(auth.PermRead, s.query(s.getDeal))).Methods(http.MethodGet)
	v1.Handle("/contacts/{id}/history", s.authorize(auth.PermHistory, s.query(s.contactHistory))).Methods(http.MethodGet)
	v1.Handle("/deals/{id}/history", s.authorize(auth.PermHistory, s.query(s.dealHistory))).Methods(http.MethodGet)
	s.router = r
}

// prefixed registers routes under a path prefix on the root router.
type prefixed struct {
	r      *mux.Router
	prefix string
}

func (p prefixed) Handle(path string, h http.Handler) *mux.Route { return p.r.Handle(p.prefix+path, h) }

// healthz answers 200 when the store answers a read and no append failed recently (see
// AppendWatch), else 503.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.ReadAll(ctx, 0, 1); err != nil {
		s.log.Warn("health check: store unreachable", zap.Error(err))
		s.writeError(w, r, unavailable("the event store does not answer"))
		return
	}
	if s.appends != nil {
		if age, err := s.appends.recentFailure(); err != nil {
			s.log.Warn("health check: appends fail", zap.Error(err), zap.Duration("age", age))
			s.writeError(w, r, unavailable(fmt.Sprintf("the event store answers reads, but the last append, %s ago, failed and none succeeded since", age.Round(time.Second))))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type ctxKey struct{}

// requestInfo travels in the request context; authorize fills in the principal, so the access
// log, which wraps it, can name the actor.
type requestInfo struct {
	id        string
	principal auth.Principal
}

func info(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(ctxKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

func requestID(ctx context.Context) string { return info(ctx).id }

func principal(ctx context.Context) auth.Principal { return info(ctx).principal }

func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if id == "" || len(id) > 128 {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &requestInfo{id: id})))
	})
}

func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// writeError logs it, once, with the stack of the panic.
				s.writeError(w, r, fmt.Errorf("panic serving request: %v\n%s", v, debug.Stack()))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (deadlines, flushes) through it.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *Server) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
			ce.Write(zap.String("request_id", requestID(r.Context())), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Int("status", rec.status), zap.Duration("duration", time.Since(start)),
				zap.String("correlation_id", r.Header.Get("X-Correlation-ID")), zap.String("actor", principal(r.Context()).Name))
		}
	})
}

func (s *Server) authorize(perm auth.Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			s.writeError(w, r, unauthorized("send Authorization: Bearer <token>", `Bearer realm="crm"`))
			return
		}
		p, ok := s.tokens.Authenticate(token)
		if !ok {
			s.writeError(w, r, unauthorized("the bearer token is not valid", `Bearer realm="crm", error="invalid_token"`))
			return
		}
		if !p.Role.Can(perm) {
			s.writeError(w, r, forbidden(p.Role, string(perm)))
			return
		}
		info(r.Context()).principal = p
		// After authentication: a caller without a token learns nothing from its request.
		if err := checkRequestText(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) (string, bool) {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}
