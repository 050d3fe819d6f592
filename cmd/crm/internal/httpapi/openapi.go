package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/projections/runtime"
)

// The OpenAPI description is generated, at each GET /openapi.json, from the routes the router
// holds and the RouteDoc each was registered with: commands from their route table (the
// command's Go type is its request body), read-model queries from their Query.Doc, the others
// from the describe call beside their registration. Answers are described by their Go types
// (openapischema.go), so the description cannot drift from what is sent; a route registered
// without a description is left out of it, and TestEveryRouteIsDescribed fails.

// OpenAPIVersion is the version of the OpenAPI specification the description follows.
const OpenAPIVersion = "3.1.0"

// RouteDoc describes one route: what it does, who may call it, its parameters, its body and
// its answer.
type RouteDoc struct {
	Summary     string
	Description string
	// Tag groups routes in the description and on /docs (default: the first path segment
	// after /v1).
	Tag string
	// Perm is the permission the route needs; empty for a route without a token.
	Perm auth.Permission
	// Params are the query parameters (and descriptions of path parameters, which are
	// otherwise strings named by the path template).
	Params []Param
	// Body is a value of the request body's type (nil: no body).
	Body any
	// Answer is a value of the answer's type (nil: no JSON body).
	Answer any
	// Status is the status of a successful answer (default 200).
	Status int
	// ContentType is the media type of a non-JSON answer (Answer is then ignored).
	ContentType string
	// MoreContentTypes are other media types the non-JSON answer may have (a file served by
	// its extension).
	MoreContentTypes []string
	// Revalidated: the route answers 304 Not Modified, without a body, to a matching
	// If-None-Match.
	Revalidated bool
	// CSV: the answer may be text/csv as well (?format=csv or Accept: text/csv).
	CSV bool
	// Uploads are the media types of a request body that is a file (Body is then ignored).
	Uploads []string
	// Problems are the statuses of the problems the route answers beyond those every route
	// of its kind answers (bad parameters, no token, wrong role).
	Problems []int

	// readModel: Answer is wrapped in ReadAnswer and the freshness and time-travel
	// parameters apply. command: the body and answer of a command route.
	readModel bool
	command   *commandRoute
}

// Param is a query or path parameter.
type Param struct {
	Name        string
	In          string // "query" (default) or "path"
	Description string
	// Type is string (default), integer or boolean; Format is date-time, date or the like.
	Type, Format string
	Required     bool
	Enum         []string
}

// Parameter helpers for the route tables.
func strParam(name, desc string) Param { return Param{Name: name, Description: desc} }
func intParamDoc(name, desc string) Param {
	return Param{Name: name, Description: desc, Type: "integer"}
}
func timeParam(name, desc string) Param {
	return Param{Name: name, Description: desc, Format: "date-time"}
}
func boolParam(name, desc string) Param {
	return Param{Name: name, Description: desc, Type: "boolean"}
}

// Parameters many read models share.
var (
	asOfDoc    = timeParam("as_of", "business time the question is about (RFC 3339); default now")
	limitDoc   = intParamDoc("limit", "page size")
	cursorDoc  = strParam("cursor", "the next_cursor of the previous page")
	explainDoc = strParam("explain", "path of a figure in the answer: its parts instead of the answer (limit and cursor then page them)")
)

// routeKey names a route in the descriptions: method and path template.
func routeKey(method, path string) string { return method + " " + path }

// describe records the description of the route method path (a full path template).
func (s *Server) describe(method, path string, d RouteDoc) {
	if s.docs == nil {
		s.docs = map[string]RouteDoc{}
	}
	s.docs[routeKey(method, path)] = d
}

// handle registers h for method path and its description in one step.
func (s *Server) handle(method, path string, h http.Handler, d RouteDoc) {
	s.router.Handle(path, h).Methods(method)
	s.describe(method, path, d)
}

// Route is a method and a path template of the router.
type Route struct{ Method, Path string }

// Routes lists the routes of the router, in registration order.
func (s *Server) Routes() ([]Route, error) {
	var routes []Route
	err := s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // a route without a path (none here)
		}
		methods, err := route.GetMethods()
		if err != nil {
			return fmt.Errorf("route %s has no methods: %w", path, err)
		}
		for _, m := range methods {
			routes = append(routes, Route{m, path})
		}
		return nil
	})
	return routes, err
}

// Undescribed lists the routes of the router that have no description, or one without a
// summary or an answer.
func (s *Server) Undescribed() ([]Route, error) {
	routes, err := s.Routes()
	var missing []Route
	for _, r := range routes {
		if d, ok := s.docs[routeKey(r.Method, r.Path)]; !ok || (d.command == nil && (d.Summary == "" || (d.Answer == nil && d.ContentType == "" && d.Status != http.StatusNoContent))) {
			missing = append(missing, r)
		}
	}
	return missing, err
}

// description is the last description built, kept while the routes and their descriptions
// stay as they were (they change only while the server is being mounted).
type description struct {
	mu     sync.Mutex
	routes int // routes walked and
	docs   int // descriptions recorded when it was built
	body   []byte
}

// OpenAPI is the OpenAPI 3.1 description of every described route the router holds. The
// returned bytes are shared: do not modify them.
func (s *Server) OpenAPI() ([]byte, error) {
	routes, err := s.Routes()
	if err != nil {
		return nil, err
	}
	s.description.mu.Lock()
	defer s.description.mu.Unlock()
	if d := &s.description; d.body != nil && d.routes == len(routes) && d.docs == len(s.docs) {
		return d.body, nil
	}
	body, err := s.buildOpenAPI(routes)
	if err != nil {
		return nil, err
	}
	s.description.routes, s.description.docs, s.description.body = len(routes), len(s.docs), body
	return body, nil
}

func (s *Server) buildOpenAPI(routes []Route) ([]byte, error) {
	sch := newSchemas()
	paths := map[string]map[string]any{}
	for _, r := range routes {
		d, ok := s.docs[routeKey(r.Method, r.Path)]
		if !ok {
			continue
		}
		if paths[r.Path] == nil {
			paths[r.Path] = map[string]any{}
		}
		paths[r.Path][strings.ToLower(r.Method)] = operation(sch, r, d)
	}
	sch.defs["Problem"] = problemSchema()
	doc := map[string]any{
		"openapi": OpenAPIVersion,
		"info": map[string]any{
			"title":   "crm",
			"version": "1",
			"description": "The event-sourced sales CRM. Commands append events; queries read read models and say how fresh " +
				"their answer is. Errors are RFC 9457 problem details (application/problem+json); their types are listed " +
				"under components.schemas.Problem. Every /v1 route needs a bearer token of a role allowed on it (x-roles).",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas":         sch.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// operation describes route r.
func operation(sch *schemas, r Route, d RouteDoc) map[string]any {
	if d.command != nil {
		d = commandDoc(sch, *d.command, d)
	}
	tag := d.Tag
	if tag == "" {
		tag = defaultTag(r.Path)
	}
	op := map[string]any{
		"operationId": operationID(r),
		"summary":     d.Summary,
		"tags":        []string{tag},
	}
	desc := d.Description
	params := pathParams(r.Path, d.Params)
	for _, p := range d.Params {
		if p.In != "path" {
			params = append(params, paramDoc(p))
		}
	}
	if d.readModel {
		params = append(params, readModelParams()...)
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if d.Perm != "" {
		roles := rolesWith(d.Perm)
		op["security"] = []any{map[string]any{"bearer": []string{}}}
		op["x-roles"] = roles
		desc = strings.TrimSpace(desc + "\n\nRoles: " + strings.Join(roles, ", ") + ".")
	}
	if desc != "" {
		op["description"] = desc
	}
	switch {
	case len(d.Uploads) > 0:
		content := map[string]any{}
		for _, mt := range d.Uploads {
			content[mt] = map[string]any{"schema": map[string]any{}}
		}
		op["requestBody"] = map[string]any{"required": true, "content": content}
	case d.Body != nil:
		op["requestBody"] = map[string]any{"required": false, "content": map[string]any{
			"application/json": map[string]any{"schema": bodySchema(sch, d.Body)}}}
	}
	op["responses"] = responses(sch, d)
	return op
}

// bodySchema is the schema of a request body: a given schema, or that of a value's type.
func bodySchema(sch *schemas, body any) map[string]any {
	if m, ok := body.(map[string]any); ok {
		return m
	}
	return sch.of(reflect.TypeOf(body), true)
}

// responses are the answer on success and the problems of d.
func responses(sch *schemas, d RouteDoc) map[string]any {
	status := d.Status
	if status == 0 {
		status = http.StatusOK
	}
	ok := map[string]any{"description": http.StatusText(status)}
	switch {
	case status == http.StatusNoContent:
		// no body
	case d.ContentType != "":
		schema := map[string]any{"type": "string"}
		if d.ContentType == "application/json" {
			schema = map[string]any{"type": "object"}
		}
		content := map[string]any{d.ContentType: map[string]any{"schema": schema}}
		for _, ct := range d.MoreContentTypes {
			content[ct] = map[string]any{"schema": map[string]any{"type": "string"}}
		}
		ok["content"] = content
	case d.Answer != nil:
		schema := answerSchema(sch, d.Answer)
		if d.readModel {
			schema = map[string]any{"type": "object", "additionalProperties": false, "required": []string{"data", "freshness"},
				"properties": map[string]any{"data": schema, "freshness": sch.of(reflect.TypeFor[runtime.Freshness](), false)}}
		}
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": schema}}
		if d.CSV {
			ok["content"].(map[string]any)["text/csv"] = map[string]any{"schema": map[string]any{"type": "string"}}
		}
	}
	out := map[string]any{strconv.Itoa(status): ok}
	if d.Revalidated {
		out[strconv.Itoa(http.StatusNotModified)] = map[string]any{"description": http.StatusText(http.StatusNotModified)}
	}
	for _, st := range routeProblems(d) {
		out[strconv.Itoa(st)] = problemDoc(st)
	}
	out["default"] = map[string]any{"description": "any other problem (see components.schemas.Problem)",
		"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
	return out
}

// AnyOf is an Answer of one of several types: a question answered in another shape when a
// parameter asks for it (?explain= answers the parts of a figure).
type AnyOf []any

func answerSchema(sch *schemas, answer any) map[string]any {
	if m, ok := answer.(map[string]any); ok {
		return m
	}
	if alts, ok := answer.(AnyOf); ok {
		of := make([]any, len(alts))
		for i, a := range alts {
			of[i] = answerSchema(sch, a)
		}
		return map[string]any{"anyOf": of}
	}
	return sch.of(reflect.TypeOf(answer), false)
}

// routeProblems are the problem statuses a route answers.
func routeProblems(d RouteDoc) []int {
	var st []int
	if d.Perm != "" || len(d.Params) > 0 || d.readModel || d.Body != nil {
		st = append(st, http.StatusBadRequest)
	}
	if d.Perm != "" {
		st = append(st, http.StatusUnauthorized, http.StatusForbidden)
	}
	if d.Body != nil {
		st = append(st, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	st = append(st, d.Problems...)
	st = append(st, http.StatusServiceUnavailable)
	slices.Sort(st)
	return slices.Compact(st)
}

// problemTypes lists the problem types by status, for the description; problem.go makes
// them, and TestProblemTypesAreListed keeps this list whole.
var problemTypes = map[int][]string{
	http.StatusBadRequest:                  {"bad-request"},
	http.StatusUnauthorized:                {"unauthorized"},
	http.StatusForbidden:                   {"forbidden"},
	http.StatusNotFound:                    {"not-found"},
	http.StatusMethodNotAllowed:            {"method-not-allowed"},
	http.StatusRequestTimeout:              {"request-timeout"},
	http.StatusConflict:                    {"conflict", "idempotency-conflict", "merged", "log-altered"},
	http.StatusPreconditionFailed:          {"precondition-failed"},
	http.StatusRequestEntityTooLarge:       {"payload-too-large"},
	http.StatusUnsupportedMediaType:        {"unsupported-media-type"},
	http.StatusUnprocessableEntity:         {"validation", "refused", "out-of-range"},
	http.StatusRequestHeaderFieldsTooLarge: {"header-too-large"},
	http.StatusInternalServerError:         {"internal"},
	http.StatusServiceUnavailable:          {"unavailable"},
}

func problemDoc(status int) map[string]any {
	var types []string
	for _, t := range problemTypes[status] {
		types = append(types, ProblemBase+t)
	}
	return map[string]any{"description": http.StatusText(status) + ": problem " + strings.Join(types, ", "),
		"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}
}

// problemSchema describes Problem, with every problem type.
func problemSchema() map[string]any {
	s := newSchemas().object(reflect.TypeFor[Problem](), false)
	var types []any
	statuses := make([]int, 0, len(problemTypes))
	for st := range problemTypes {
		statuses = append(statuses, st)
	}
	sort.Ints(statuses)
	for _, st := range statuses {
		for _, t := range problemTypes[st] {
			types = append(types, ProblemBase+t)
		}
	}
	props := s["properties"].(map[string]any)
	props["type"] = map[string]any{"type": "string", "format": "uri", "examples": types,
		"description": "the problem type: one of the examples, each documented in the README"}
	s["description"] = "An RFC 9457 problem details body."
	return s
}

// readModelParams are the parameters every read-model query takes.
func readModelParams() []any {
	return []any{
		paramDoc(intParamDoc("min_position", "wait (up to the server's bound) until the read model has applied this log position; stale: true when it has not")),
		paramDoc(intParamDoc("at_position", "answer as the read model stood at this log position (time travel)")),
		paramDoc(timeParam("known_at", "answer with what was known at this time: the last log position recorded by then (time travel)")),
	}
}

var pathVar = regexp.MustCompile(`\{([^}:]+)(:[^}]*)?\}`)

// pathParams are the parameters of the path template, described by docs where they say.
func pathParams(path string, docs []Param) []any {
	var out []any
	for _, m := range pathVar.FindAllStringSubmatch(path, -1) {
		p := Param{Name: m[1], In: "path", Required: true}
		for _, d := range docs {
			if d.In == "path" && d.Name == p.Name {
				p.Description = d.Description
			}
		}
		out = append(out, paramDoc(p))
	}
	return out
}

func paramDoc(p Param) map[string]any {
	in := p.In
	if in == "" {
		in = "query"
	}
	typ := p.Type
	if typ == "" {
		typ = "string"
	}
	schema := map[string]any{"type": typ}
	if p.Format != "" {
		schema["format"] = p.Format
	}
	if len(p.Enum) > 0 {
		schema["enum"] = p.Enum
	}
	out := map[string]any{"name": p.Name, "in": in, "schema": schema}
	if p.Required {
		out["required"] = true
	}
	if p.Description != "" {
		out["description"] = p.Description
	}
	return out
}

// rolesWith lists the roles that have permission p.
func rolesWith(p auth.Permission) []string {
	var roles []string
	for _, r := range []auth.Role{auth.RoleApp, auth.RoleAnalyst, auth.RoleAuditor, auth.RoleAdmin} {
		if r.Can(p) {
			roles = append(roles, string(r))
		}
	}
	return roles
}

func defaultTag(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/v1"), "/")
	if len(parts) < 2 || parts[1] == "" {
		return "operations"
	}
	return parts[1]
}

// operationID is a stable identifier of r, such as post_v1_contacts_id_phase.
func operationID(r Route) string {
	id := strings.ToLower(r.Method) + strings.Map(func(c rune) rune {
		if unicode.IsLetter(c) || unicode.IsDigit(c) {
			return c
		}
		if c == '/' || c == '-' || c == '.' {
			return '_'
		}
		return -1
	}, r.Path)
	return id
}

// commandDoc describes a command route from its table entry: the command's type is the body
// (with occurred_at, which every command takes), the answer its id, version and position.
func commandDoc(sch *schemas, c commandRoute, d RouteDoc) RouteDoc {
	name := c.command.Name()
	if d.Summary == "" {
		d.Summary = words(name)
	}
	d.Description = strings.TrimSpace("Command " + name + ". Optional headers: If-Match (the ETag of the version the change was decided on), " +
		"Idempotency-Key, X-Correlation-ID, X-Causation-ID, X-Reason. " + d.Description)
	var body map[string]any
	if c.pathOnly {
		body = map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{}}
	} else {
		body = sch.object(c.command, true)
	}
	props := body["properties"].(map[string]any)
	props["occurred_at"] = map[string]any{"type": "string", "format": "date-time",
		"description": "when it happened in business time (RFC 3339); default now"}
	d.Body = body
	answer := map[string]any{"id": map[string]any{"type": "string"}, "version": map[string]any{"type": "integer"},
		"position": map[string]any{"type": "integer"}}
	if c.entityKey != "" {
		answer[c.entityKey] = map[string]any{"type": "string"}
	}
	d.Answer = map[string]any{"type": "object", "additionalProperties": false, "properties": answer,
		"required": []string{"id", "version", "position"}}
	d.Status = http.StatusOK
	if c.created != "" {
		d.Status = http.StatusCreated
	}
	d.Problems = append(d.Problems, http.StatusNotFound, http.StatusConflict, http.StatusPreconditionFailed, http.StatusUnprocessableEntity)
	return d
}

// words splits a Go name into lower-case words: CreateContact -> "Create contact".
func words(name string) string {
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte(' ')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
