package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.uber.org/zap"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
)

// ProblemBase prefixes every problem type; the README lists the types.
const ProblemBase = "https://eventcrm.dev/problems/"

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
}

// apiError is an error that already knows its problem; handlers return it for transport-level
// problems (bad JSON, bad headers) found before the command layer.
type apiError struct {
	status int
	slug   string
	title  string
	detail string
	field  string
}

func (e *apiError) Error() string { return e.detail }

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, slug: "bad-request", title: "Bad request", detail: fmt.Sprintf(format, args...)}
}

func badField(field, format string, args ...any) *apiError {
	e := badRequest(format, args...)
	e.field = field
	return e
}

// problemFor translates an error into its problem: the one place where errors meet HTTP.
// internal is true when the error is not the client's doing and must be logged.
func problemFor(err error) (p Problem, internal bool) {
	var (
		ae *apiError
		de *domain.Error
		mb *http.MaxBytesError
		be *bodyError
	)
	switch {
	case errors.As(err, &ae):
		return Problem{Type: ProblemBase + ae.slug, Title: ae.title, Status: ae.status, Detail: ae.detail, Field: ae.field}, false
	case errors.As(err, &mb):
		return Problem{Type: ProblemBase + "payload-too-large", Title: "Payload too large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the request body exceeds %d bytes", mb.Limit)}, false
	case errors.As(err, &be):
		return bodyProblem(be), false
	case errors.As(err, &de):
		switch de.Code {
		case domain.CodeInvalid:
			return Problem{Type: ProblemBase + "validation", Title: "Invalid field value", Status: http.StatusUnprocessableEntity, Detail: de.Error(), Field: de.Field}, false
		case domain.CodeRefused:
			return Problem{Type: ProblemBase + "refused", Title: "Refused by the business rules", Status: http.StatusUnprocessableEntity, Detail: de.Error()}, false
		case domain.CodeNotFound:
			return Problem{Type: ProblemBase + "not-found", Title: "Not found", Status: http.StatusNotFound, Detail: de.Error()}, false
		case domain.CodeConflict:
			return Problem{Type: ProblemBase + "conflict", Title: "Conflict", Status: http.StatusConflict, Detail: de.Error()}, false
		}
	case errors.Is(err, commands.ErrPreconditionFailed):
		return Problem{Type: ProblemBase + "precondition-failed", Title: "Precondition failed", Status: http.StatusPreconditionFailed,
			Detail: err.Error() + "; read the resource again and retry with its new ETag"}, false
	case errors.Is(err, commands.ErrIdempotencyConflict):
		return Problem{Type: ProblemBase + "idempotency-conflict", Title: "Idempotency key reused", Status: http.StatusConflict,
			Detail: "this Idempotency-Key was already used for a different request"}, false
	case errors.Is(err, commands.ErrContention), errors.Is(err, eventstore.ErrWrongExpectedVersion):
		return Problem{Type: ProblemBase + "conflict", Title: "Conflict", Status: http.StatusConflict, Detail: err.Error()}, false
	}
	return Problem{Type: ProblemBase + "internal", Title: "Internal server error", Status: http.StatusInternalServerError,
		Detail: "the server could not complete the request; see the server log for this request id"}, true
}

// bodyProblem is 408 for a body slower than the read timeout, else 400.
func bodyProblem(be *bodyError) Problem {
	if be.timedOut() {
		return Problem{Type: ProblemBase + "request-timeout", Title: "Request timeout", Status: http.StatusRequestTimeout,
			Detail: "the request body did not arrive within the server's read timeout"}
	}
	return Problem{Type: ProblemBase + "bad-request", Title: "Bad request", Status: http.StatusBadRequest,
		Detail: "the request body could not be read: it ended before its announced length, or its chunked encoding is malformed"}
}

// writeError answers with the problem of err, logging it at error level only when it is
// internal; a client's error is logged at debug level, so a flood of bad requests cannot
// flood the log.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p, internal := problemFor(err)
	level, msg := zap.DebugLevel, "request refused"
	if internal {
		level, msg = zap.ErrorLevel, "request failed"
	}
	if ce := s.log.Check(level, msg); ce != nil {
		ce.Write(zap.String("request_id", requestID(r.Context())), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.Int("status", p.Status), zap.Error(err))
	}
	writeProblem(w, r, p)
}

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.Instance = r.URL.Path
	p.RequestID = requestID(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client may be gone; nothing to do about it
}
