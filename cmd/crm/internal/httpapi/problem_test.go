package httpapi

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/rebuild"
)

// timeoutError is a network read that ran past its deadline.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// Every error a handler can meet, wrapped as the layers below wrap them, has one problem.
func TestProblemForMapsEveryError(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("load contact-7: %w", err) }
	for _, tc := range []struct {
		name   string
		err    error
		status int
		typ    string
		logged bool
	}{
		// The edge's own refusals.
		{"bad request", badRequest("the body is not valid JSON"), http.StatusBadRequest, "bad-request", false},
		{"bad field", badField("as_of", "as_of is not a time"), http.StatusBadRequest, "bad-request", false},
		{"unknown endpoint", notFound("no such endpoint"), http.StatusNotFound, "not-found", false},
		{"method not allowed", methodNotAllowed(http.MethodPut, "/v1/contacts"), http.StatusMethodNotAllowed, "method-not-allowed", false},
		{"no token", unauthorized("send a token", `Bearer realm="crm"`), http.StatusUnauthorized, "unauthorized", false},
		{"role may not", forbidden("app", "rebuild"), http.StatusForbidden, "forbidden", false},
		{"content type", unsupportedMediaType("text/plain"), http.StatusUnsupportedMediaType, "unsupported-media-type", false},
		{"header too large", headerTooLarge("X-Reason", MaxReasonHeader), http.StatusRequestHeaderFieldsTooLarge, "header-too-large", false},
		{"header block too large", headerBlockTooLarge(), http.StatusRequestHeaderFieldsTooLarge, "header-too-large", false},
		{"unparsable request", unparsable(http.StatusNotImplemented, "not-implemented", "unsupported transfer encoding"),
			http.StatusNotImplemented, "not-implemented", false},
		{"health", unavailable("the event store does not answer"), http.StatusServiceUnavailable, "unavailable", false},
		{"body too large", &bodyError{&http.MaxBytesError{Limit: 10}}, http.StatusRequestEntityTooLarge, "payload-too-large", false},
		{"body too slow", &bodyError{timeoutError{}}, http.StatusRequestTimeout, "request-timeout", false},
		{"body cut short", &bodyError{errors.New("unexpected EOF")}, http.StatusBadRequest, "bad-request", false},
		// The domain.
		{"domain invalid", domain.Invalid("email", "not an address"), http.StatusUnprocessableEntity, "validation", false},
		{"domain refused", wrap(&domain.Error{Code: domain.CodeRefused, Message: "no"}), http.StatusUnprocessableEntity, "refused", false},
		{"domain not found", wrap(&domain.Error{Code: domain.CodeNotFound, Message: "no task"}), http.StatusNotFound, "not-found", false},
		{"domain conflict", wrap(&domain.Error{Code: domain.CodeConflict, Message: "exists"}), http.StatusConflict, "conflict", false},
		{"domain unknown code", &domain.Error{Code: "other", Message: "?"}, http.StatusInternalServerError, "internal", true},
		// Commands.
		{"precondition", wrap(commands.ErrPreconditionFailed), http.StatusPreconditionFailed, "precondition-failed", false},
		{"idempotency", wrap(commands.ErrIdempotencyConflict), http.StatusConflict, "idempotency-conflict", false},
		{"contention", wrap(commands.ErrContention), http.StatusConflict, "conflict", false},
		// The event store.
		{"wrong version", &eventstore.VersionConflictError{Stream: "contact-7", Expected: 1, Actual: 2}, http.StatusConflict, "conflict", false},
		{"duplicate event", wrap(eventstore.ErrDuplicateEventID), http.StatusConflict, "conflict", false},
		{"stream not found", wrap(eventstore.ErrStreamNotFound), http.StatusNotFound, "not-found", false},
		{"event not found", wrap(eventstore.ErrEventNotFound), http.StatusNotFound, "not-found", false},
		{"invalid append", wrap(eventstore.ErrInvalidAppend), http.StatusInternalServerError, "internal", true},
		{"store closed", wrap(eventstore.ErrClosed), http.StatusServiceUnavailable, "unavailable", false},
		{"subscriber closed", wrap(wmstore.ErrSubscriberClosed), http.StatusServiceUnavailable, "unavailable", false},
		{"publisher closed", wrap(wmstore.ErrPublisherClosed), http.StatusServiceUnavailable, "unavailable", false},
		{"broken chain", &eventstore.ChainError{Stream: "contact-7", Version: 2, Problem: "hash"}, http.StatusConflict, "log-altered", true},
		// Audit.
		{"log altered", wrap(audit.ErrLogAltered), http.StatusConflict, "log-altered", true},
		{"out of range", wrap(audit.ErrOutOfRange), http.StatusUnprocessableEntity, "out-of-range", false},
		{"invalid proof", wrap(audit.ErrInvalidProof), http.StatusInternalServerError, "internal", true},
		{"bad signature", wrap(audit.ErrBadSignature), http.StatusInternalServerError, "internal", true},
		// Projections, rebuilds, time travel, the poison queue.
		{"unknown projection", wrap(projections.ErrUnknownProjection), http.StatusNotFound, "not-found", false},
		{"no rebuild", wrap(rebuild.ErrNoRebuild), http.StatusNotFound, "not-found", false},
		{"rebuild running", &rebuild.RebuildRunningError{Projection: "board", Owner: "x", Until: time.Now()}, http.StatusConflict, "conflict", false},
		{"rebuild lost", wrap(rebuild.ErrRebuildLost), http.StatusConflict, "conflict", false},
		{"parked not found", wrap(projections.ErrParkedNotFound), http.StatusNotFound, "not-found", false},
		{"not first parked", &projections.NotFirstError{ID: 2, First: 1}, http.StatusConflict, "conflict", false},
		{"time travel or rebuilds closed", wrap(projections.ErrClosed), http.StatusServiceUnavailable, "unavailable", false},
		// PostgreSQL out of capacity: too many clients, as a connection attempt reports it.
		{"database full", wrap(&pgconn.PgError{Severity: "FATAL", Code: "53300", Message: "sorry, too many clients already"}),
			http.StatusServiceUnavailable, "unavailable", false},
		{"database starting", wrap(&pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}),
			http.StatusServiceUnavailable, "unavailable", false},
		{"database error", wrap(&pgconn.PgError{Severity: "ERROR", Code: "42P01", Message: "relation does not exist"}),
			http.StatusInternalServerError, "internal", true},
		// Waits and everything else.
		{"deadline waiting", wrap(context.DeadlineExceeded), http.StatusServiceUnavailable, "unavailable", false},
		{"anything else", errors.New("disk I/O error"), http.StatusInternalServerError, "internal", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, logged := problemFor(tc.err)
			if p.Status != tc.status || p.Type != ProblemBase+tc.typ || logged != tc.logged {
				t.Fatalf("problemFor(%v) = %d %s logged %v, want %d %s logged %v", tc.err, p.Status, p.Type, logged, tc.status, tc.typ, tc.logged)
			}
			if p.Title == "" || p.Detail == "" {
				t.Fatalf("problemFor(%v) = %+v: no title or detail", tc.err, p)
			}
			if (p.Status == http.StatusServiceUnavailable && tc.typ == "unavailable") != (p.retryAfter > 0) && tc.name != "health" {
				t.Fatalf("problemFor(%v): Retry-After %d with status %d", tc.err, p.retryAfter, p.Status)
			}
			if tc.logged && p.Status == http.StatusInternalServerError && strings.Contains(p.Detail, tc.err.Error()) {
				t.Fatalf("problemFor(%v): an internal detail reaches the client: %q", tc.err, p.Detail)
			}
		})
	}
}

// Statuses are made in problem.go only: a Problem or an apiError built anywhere else is a
// second error map.
func TestProblemsAreBuiltOnlyInProblemGo(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if name == "problem.go" || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, lit := range literalsOf(f, "Problem", "apiError") {
			t.Errorf("%s: %s{…} outside problem.go: return an error that problemFor maps", fset.Position(lit.Pos()), typeName(lit.Type))
		}
	}
}

// TestLiteralsOfFindsEveryForm keeps the rule's own finder honest: each form of literal is
// found, and other types are not.
func TestLiteralsOfFindsEveryForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		src  string
		want int
	}{
		{"value", `var _ = Problem{Status: 500}`, 1},
		{"pointer", `var _ = &apiError{}`, 1},
		{"nested", `func f() any { return []any{struct{ p Problem }{Problem{}}} }`, 1},
		{"in a slice", `var _ = []Problem{{Status: 1}, {}}`, 2},
		{"in a map", `var _ = map[string]*apiError{"a": {}}`, 1},
		{"beside a slice", `var _ = []any{[]Problem{{}}, struct{}{}}`, 1},
		{"qualified", `var _ = httpapi.Problem{}`, 1},
		{"other type", `var _ = Answer{}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := parser.ParseFile(token.NewFileSet(), "x.go", "package x\n"+tc.src, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(literalsOf(f, "Problem", "apiError")); got != tc.want {
				t.Fatalf("%d literals, want %d", got, tc.want)
			}
		})
	}
}

// literalsOf returns the composite literals in f of the named types, the elided ones in a
// slice, array or map of them included.
func literalsOf(f *ast.File, names ...string) []*ast.CompositeLit {
	var found []*ast.CompositeLit
	var visit func(n ast.Node, elided string)
	visit = func(n ast.Node, elided string) {
		ast.Inspect(n, func(c ast.Node) bool {
			lit, ok := c.(*ast.CompositeLit)
			if !ok {
				return true
			}
			name := typeName(lit.Type)
			if lit.Type == nil {
				name = elided
			}
			if slices.Contains(names, name) {
				found = append(found, lit)
			}
			elem := ""
			switch t := lit.Type.(type) {
			case *ast.ArrayType:
				elem = typeName(t.Elt)
			case *ast.MapType:
				elem = typeName(t.Value)
			}
			for _, e := range lit.Elts {
				visit(e, elem)
			}
			return false
		})
	}
	visit(f, "")
	return found
}

// typeName is the name of a type expression: Problem, *Problem and pkg.Problem give Problem.
func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return t.Sel.Name
	case *ast.StarExpr:
		return typeName(t.X)
	}
	return ""
}
