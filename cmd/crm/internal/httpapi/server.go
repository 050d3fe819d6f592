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
	"github.com/eventcrm/crm/cmd/crm/internal/metrics"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
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
	// Metrics, when set, counts requests, commands and time-travel questions.
	Metrics *metrics.Metrics
}

// Server serves the HTTP API.
type Server struct {
	store   eventstore.Store
	cmds    *commands.Handler
	tokens  *auth.Tokens
	log     *zap.Logger
	maxBody int64
	appends *AppendWatch
	metrics *metrics.Metrics
	router  *mux.Router
	// docs describe the routes for the OpenAPI description, by routeKey.
	docs map[string]RouteDoc
	// description is the OpenAPI description, kept while the routes do not change.
	description description
	// ready tells GET /readyz when the read models have caught up (see readiness).
	ready *readiness
	// privacy serves erasures and exports (MountPrivacy); kept are the kept read-model
	// answers (MountReadModels), dropped after a purge.
	privacy *Privacy
	kept    *answers
	// answerBuffers holds the buffers read-model answers are written into: a board of 250
	// cards is about 60 KB, and allocating that per request shows at 100 clients.
	answerBuffers sync.Pool
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	s := &Server{store: cfg.Store, cmds: cfg.Commands, tokens: cfg.Tokens, log: cfg.Log, maxBody: cfg.MaxBody, appends: cfg.Appends,
		metrics: cfg.Metrics, ready: &readiness{}}
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
	r.Use(s.withRequestID, s.withRecovery, s.withAccessLog, s.withMetrics)
	noRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, notFound("no such endpoint"))
	})
	notAllowed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, methodNotAllowed(r.Method, r.URL.Path))
	})
	// The router's middleware runs for matched routes only: these get their request id here.
	r.NotFoundHandler = s.withRequestID(s.withMetrics(noRoute))
	r.MethodNotAllowedHandler = s.withRequestID(s.withMetrics(notAllowed))
	s.router = r
	get := http.MethodGet
	s.handle(get, "/healthz", http.HandlerFunc(s.healthz), RouteDoc{Tag: "operations", Summary: "Liveness",
		Description: "200 while the event store answers a read and no append failed recently; 503 otherwise.",
		Answer:      map[string]string{}})
	s.handle(get, "/readyz", http.HandlerFunc(s.readyz), RouteDoc{Tag: "operations", Summary: "Readiness",
		Description: "503 until the event store answers and every read model has caught up with the log as it was at start, " +
			"and while the feed is stalled (the problem's detail names what is missing or held back), 200 otherwise.", Answer: Readiness{}})
	s.mountDescription()

	// Routes hang off the root router: a gorilla/mux subrouter answers 404 where 405 is right.
	v1 := prefixed{r, "/v1"}
	s.mountCommands(v1)
	s.mountSettings(v1)

	pointInTimeDocs := []Param{timeParam("as_of", "the record as it stood at this business time (RFC 3339)"),
		intParamDoc("version", "the record as it stood at this stream version")}
	record := func(path, what string, h queryFunc, answer any) {
		s.handle(get, "/v1"+path, s.authorize(auth.PermRead, s.query(h)), RouteDoc{Summary: "One " + what + ", folded from its events",
			Description: "The answer's ETag is the record's version, for If-Match on the next command.", Perm: auth.PermRead,
			Params: pointInTimeDocs, Answer: answer, Problems: []int{http.StatusNotFound, http.StatusConflict}})
	}
	record("/contacts/{id}", "contact", s.getContact, contact.Contact{})
	record("/accounts/{id}", "account", s.getAccount, account.Account{})
	record("/deals/{id}", "deal", s.getDeal, deal.Deal{})
	history := func(path, what string, h queryFunc) {
		s.handle(get, "/v1"+path, s.authorize(auth.PermHistory, s.query(h)), RouteDoc{Summary: "The whole history of one " + what,
			Description: "Every event of the stream with its metadata and hash chain, and whether the chain verifies.",
			Perm:        auth.PermHistory, Answer: History{}, Problems: []int{http.StatusNotFound}})
	}
	history("/contacts/{id}/history", "contact", s.contactHistory)
	history("/deals/{id}/history", "deal", s.dealHistory)
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
