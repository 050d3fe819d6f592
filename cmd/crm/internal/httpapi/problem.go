package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/rebuild"
)

// This file is the one place where errors meet HTTP: handlers return errors (sentinels of
// the layers below, or the small typed errors made here) and writeError answers each with
// the problem problemFor maps it to. No other file builds a Problem or an apiError; a test
// keeps it so.

// ProblemBase prefixes every problem type; the README lists the types.
const ProblemBase = "https://eventcrm.dev/problems/"

// RetryAfter is the Retry-After of a 503 for a component that is closed (the process is
// stopping) or was too busy: long enough for a restart or a load balancer to move on.
const RetryAfter = 5

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the offending request field, for validation problems.
	Field string `json:"field,omitempty"`
	// RequestID correlates the answer with the server log.
	RequestID string `json:"request_id,omitempty"`
	// MergedInto names the record a merged one now lives on, for the problem `merged`.
	MergedInto string `json:"merged_into,omitempty"`

	// Headers of the answer that go with the problem, when set.
	retryAfter int    // Retry-After, in seconds
	challenge  string // WWW-Authenticate
}

// problem is the problem of type slug.
func problem(status int, slug, title, detail string) Problem {
	return Problem{Type: ProblemBase + slug, Title: title, Status: status, Detail: detail}
}

// apiError is an error that already knows its problem: what the edge itself refuses (bad
// JSON, bad headers, no token, an unknown endpoint) before any layer below is asked.
type apiError struct{ p Problem }

func (e *apiError) Error() string { return e.p.Detail }

func badRequest(format string, args ...any) *apiError {
	return &apiError{problem(http.StatusBadRequest, "bad-request", "Bad request", fmt.Sprintf(format, args...))}
}

func badField(field, format string, args ...any) *apiError {
	e := badRequest(format, args...)
	e.p.Field = field
	return e
}

func notFound(format string, args ...any) *apiError {
	return &apiError{problem(http.StatusNotFound, "not-found", "Not found", fmt.Sprintf(format, args...))}
}

// conflict is a request the resource's state refuses (409).
func conflict(format string, args ...any) *apiError {
	return &apiError{problem(http.StatusConflict, "conflict", "Conflict", fmt.Sprintf(format, args...))}
}

func methodNotAllowed(method, path string) *apiError {
	return &apiError{problem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed", method+" is not allowed on "+path)}
}

// unauthorized is a request without a valid bearer token; challenge is its WWW-Authenticate.
func unauthorized(detail, challenge string) *apiError {
	e := &apiError{problem(http.StatusUnauthorized, "unauthorized", "Unauthorized", detail)}
	e.p.challenge = challenge
	return e
}

func forbidden(role auth.Role, what string) *apiError {
	return &apiError{problem(http.StatusForbidden, "forbidden", "Forbidden", "role "+string(role)+" may not "+what)}
}

func unsupportedMediaType(contentType string) *apiError {
	return &apiError{problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
		fmt.Sprintf("Content-Type %q: send application/json", contentType))}
}

// unsupportedUpload is a file upload of a media type other than the ones named.
func unsupportedUpload(contentType, want string) *apiError {
	return &apiError{problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
		fmt.Sprintf("Content-Type %q: send %s", contentType, want))}
}

// headerTooLarge is the problem of one header over its limit.
func headerTooLarge(name string, limit int) *apiError {
	e := &apiError{problem(http.StatusRequestHeaderFieldsTooLarge, "header-too-large", "Request header too large",
		fmt.Sprintf("%s is longer than %d characters", name, limit))}
	e.p.Field = name
	return e
}

// headerBlockTooLarge is the problem of a header block over MaxHeaderBytes.
func headerBlockTooLarge() *apiError {
	return &apiError{problem(http.StatusRequestHeaderFieldsTooLarge, "header-too-large", "Request header too large",
		fmt.Sprintf("the request's header block is longer than %d bytes", MaxHeaderBytes))}
}

// unparsable is net/http's own refusal of a request it could not parse, with its status.
func unparsable(status int, slug, detail string) *apiError {
	return &apiError{problem(status, slug, http.StatusText(status), detail)}
}

// unavailable is a server that cannot answer now (health); no Retry-After, since the state,
// not one request, is what it reports.
func unavailable(detail string) *apiError {
	return &apiError{problem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)}
}

// problemFor translates an error into its problem. logged is true when the error is news
// for the operator, logged at error level: an internal error (its detail hidden from the
// client) or a log that no longer matches its audit tree.
func problemFor(err error) (p Problem, logged bool) {
	for _, m := range []func(error) (Problem, bool){edgeProblem, domainProblem, commandProblem, storeProblem,
		projectionProblem, unavailableProblem} {
		if p, ok := m(err); ok {
			return p, false
		}
	}
	if p, ok := alteredProblem(err); ok {
		return p, true
	}
	return problem(http.StatusInternalServerError, "internal", "Internal server error",
		"the server could not complete the request; see the server log for this request id"), true
}

// edgeProblem maps what the edge refuses itself: its own errors and unreadable bodies.
func edgeProblem(err error) (Problem, bool) {
	var (
		ae *apiError
		mb *http.MaxBytesError
		be *bodyError
	)
	switch {
	case errors.As(err, &ae):
		return ae.p, true
	case errors.As(err, &mb):
		return problem(http.StatusRequestEntityTooLarge, "payload-too-large", "Payload too large",
			fmt.Sprintf("the request body exceeds %d bytes", mb.Limit)), true
	case errors.As(err, &be) && be.timedOut():
		return problem(http.StatusRequestTimeout, "request-timeout", "Request timeout",
			"the request body did not arrive within the server's read timeout"), true
	case errors.As(err, &be):
		return problem(http.StatusBadRequest, "bad-request", "Bad request",
			"the request body could not be read: it ended before its announced length, or its chunked encoding is malformed"), true
	}
	return Problem{}, false
}

// domainProblem maps each code of *domain.Error to its problem.
func domainProblem(err error) (Problem, bool) {
	var de *domain.Error
	if !errors.As(err, &de) {
		return Problem{}, false
	}
	switch de.Code {
	case domain.CodeInvalid:
		p := problem(http.StatusUnprocessableEntity, "validation", "Invalid field value", de.Error())
		p.Field = de.Field
		return p, true
	case domain.CodeRefused:
		return problem(http.StatusUnprocessableEntity, "refused", "Refused by the business rules", de.Error()), true
	case domain.CodeNotFound:
		return problem(http.StatusNotFound, "not-found", "Not found", de.Error()), true
	case domain.CodeConflict:
		return problem(http.StatusConflict, "conflict", "Conflict", de.Error()), true
	case domain.CodeMerged:
		p := problem(http.StatusConflict, "merged", "Merged into another record", de.Error())
		p.MergedInto = de.MergedInto
		return p, true
	}
	return Problem{}, false
}

// commandProblem maps the errors of the command layer.
func commandProblem(err error) (Problem, bool) {
	switch {
	case errors.Is(err, commands.ErrPreconditionFailed):
		return problem(http.StatusPreconditionFailed, "precondition-failed", "Precondition failed",
			err.Error()+"; read the resource again and retry with its new ETag"), true
	case errors.Is(err, commands.ErrIdempotencyConflict):
		return problem(http.StatusConflict, "idempotency-conflict", "Idempotency key reused",
			"this Idempotency-Key was already used for a different request"), true
	case errors.Is(err, commands.ErrContention):
		return problem(http.StatusConflict, "conflict", "Conflict", err.Error()), true
	}
	return Problem{}, false
}

// storeProblem maps the event store's errors a client can cause. ErrInvalidAppend is the
// server's own mistake and stays internal; ErrClosed is unavailableProblem's.
func storeProblem(err error) (Problem, bool) {
	switch {
	case errors.Is(err, eventstore.ErrWrongExpectedVersion), errors.Is(err, eventstore.ErrDuplicateEventID):
		return problem(http.StatusConflict, "conflict", "Conflict", err.Error()), true
	case errors.Is(err, eventstore.ErrStreamNotFound), errors.Is(err, eventstore.ErrEventNotFound):
		return problem(http.StatusNotFound, "not-found", "Not found", err.Error()), true
	case errors.Is(err, audit.ErrOutOfRange):
		return problem(http.StatusUnprocessableEntity, "out-of-range", "Out of range", err.Error()), true
	}
	return Problem{}, false
}

// projectionProblem maps the errors of read models, rebuilds and the poison queue.
func projectionProblem(err error) (Problem, bool) {
	var running *rebuild.RebuildRunningError
	switch {
	case errors.Is(err, projections.ErrUnknownProjection), errors.Is(err, rebuild.ErrNoRebuild),
		errors.Is(err, projections.ErrParkedNotFound):
		return problem(http.StatusNotFound, "not-found", "Not found", err.Error()), true
	case errors.As(err, &running):
		return problem(http.StatusConflict, "conflict", "Conflict", running.Error()+"; follow it with GET"), true
	case errors.Is(err, rebuild.ErrRebuildRunning), errors.Is(err, rebuild.ErrRebuildLost),
		errors.Is(err, projections.ErrNotFirstParked):
		return problem(http.StatusConflict, "conflict", "Conflict", err.Error()), true
	}
	return Problem{}, false
}

// unavailableProblem maps a component that is closed, or a wait for a resource (a
// connection, a lock) that ran out of time: the same request may succeed later, so the
// answer is 503 with a Retry-After, not 500.
func unavailableProblem(err error) (Problem, bool) {
	var detail string
	switch {
	case errors.Is(err, eventstore.ErrClosed), errors.Is(err, wmstore.ErrSubscriberClosed),
		errors.Is(err, wmstore.ErrPublisherClosed), errors.Is(err, projections.ErrClosed):
		detail = "the server is stopping (" + err.Error() + "); try again"
	case errors.Is(err, context.DeadlineExceeded):
		detail = "the server is too busy to answer in time; try again"
	case databaseOverloaded(err):
		// Not its error: pgx names the host, database and user of the connection, and
		// PostgreSQL the role.
		detail = "the database refuses new connections for now; try again"
	default:
		return Problem{}, false
	}
	p := problem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)
	p.retryAfter = RetryAfter
	return p, true
}

// databaseOverloaded tells whether PostgreSQL refused a connection or a statement for want of
// capacity (too many clients, out of resources, starting up or shutting down): the same
// request may succeed later.
func databaseOverloaded(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "53300", // too_many_connections
		"53000", // insufficient_resources
		"57P03": // cannot_connect_now
		return true
	}
	return false
}

// alteredProblem maps a stored log that no longer verifies: news for the auditor, who is
// told what changed, and for the operator.
func alteredProblem(err error) (Problem, bool) {
	if errors.Is(err, audit.ErrLogAltered) || errors.Is(err, eventstore.ErrBrokenChain) {
		return problem(http.StatusConflict, "log-altered", "The stored log does not match its audit tree", err.Error()), true
	}
	return Problem{}, false
}

// writeError answers with the problem of err: the only writer of problems. It logs the error
// at error level when the map says so; a client's error is logged at debug level, so a flood
// of bad requests cannot flood the log.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p, logged := problemFor(err)
	level, msg := zap.DebugLevel, "request refused"
	if logged {
		level, msg = zap.ErrorLevel, "request failed"
	}
	if ce := s.log.Check(level, msg); ce != nil {
		ce.Write(zap.String("request_id", requestID(r.Context())), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Int("status", p.Status), zap.Error(err))
	}
	p.Instance = r.URL.Path
	p.RequestID = requestID(r.Context())
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	if p.challenge != "" {
		h.Set("WWW-Authenticate", p.challenge)
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client may be gone; nothing to do about it
}
