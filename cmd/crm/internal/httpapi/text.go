package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"
)

// Text rules of the edge. Every string a request brings (each string in a command body,
// each path variable, each query parameter) must be valid UTF-8 without control characters
// other than tab, line feed and carriage return. What is accepted is recorded in the log for
// good and read back by every read model: a NUL, which PostgreSQL's text cannot hold, or a
// stray control character would otherwise reach them.

// textFault says what makes s unacceptable as text, "" when nothing does.
func textFault(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case r == 0:
			return "holds a NUL character (U+0000)"
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			return fmt.Sprintf("holds the control character U+%04X", r)
		}
	}
	return ""
}

// checkBodyText refuses a command body with a string, at any depth of the field named by
// its key, that is not acceptable text; raw is the whole body, fields its decoded top level.
// (encoding/json would silently turn invalid UTF-8 into U+FFFD: the raw bytes tell.)
func checkBodyText(raw []byte, fields map[string]json.RawMessage) error {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names) // the same body names the same field
	for _, name := range names {
		if fault := textFault(name); fault != "" {
			return badRequest("a field name %s", fault)
		}
		if !utf8.Valid(fields[name]) {
			return badField(name, "field %s is not valid UTF-8", name)
		}
		var v any
		if err := json.Unmarshal(fields[name], &v); err != nil {
			return jsonProblem(err)
		}
		if fault := jsonTextFault(v); fault != "" {
			return badField(name, "field %s %s", name, fault)
		}
	}
	if !utf8.Valid(raw) {
		return badRequest("the body is not valid UTF-8")
	}
	return nil
}

// jsonTextFault is textFault over every string of a decoded JSON value, object keys included.
func jsonTextFault(v any) string {
	switch x := v.(type) {
	case string:
		return textFault(x)
	case []any:
		for _, e := range x {
			if fault := jsonTextFault(e); fault != "" {
				return fault
			}
		}
	case map[string]any:
		for k, e := range x {
			if fault := textFault(k); fault != "" {
				return "has a key that " + fault
			}
			if fault := jsonTextFault(e); fault != "" {
				return fault
			}
		}
	}
	return ""
}

// uuidVar tells whether the path variable name of r's route holds the id of something the
// server names with a UUID as it makes them (what: a contact, a deal, an account, a task, a
// webhook subscription): another value names nothing that can exist.
func uuidVar(r *http.Request, name string) (what string, ok bool) {
	switch name {
	case "id":
		return idOf(r), true
	case "accountId":
		return "account", true
	case "contactId":
		return "contact", true
	case "taskId":
		return "task", true
	}
	return "", false
}

// idOf names what the {id} of r's route is the id of, from the collection before it
// (/v1/deals/{id}/win: a deal).
func idOf(r *http.Request) string {
	var collection string
	if route := mux.CurrentRoute(r); route != nil {
		if path, err := route.GetPathTemplate(); err == nil {
			before, _, _ := strings.Cut(path, "/{id}")
			collection = before[strings.LastIndex(before, "/")+1:]
		}
	}
	switch collection {
	case "contacts":
		return "contact"
	case "deals":
		return "deal"
	case "accounts":
		return "account"
	case "webhooks":
		return "webhook subscription"
	}
	return "contact, deal or account"
}

// checkRequestText refuses a request whose path variables or query parameters are not
// acceptable text: a path variable that cannot name anything is 404 (an id that is not a
// UUID included), a bad query parameter 400 naming it.
func checkRequestText(r *http.Request) error {
	for name, v := range mux.Vars(r) {
		what, isID := uuidVar(r, name)
		if (isID && !isUUID(v)) || textFault(v) != "" {
			if !isID {
				what = name
			}
			return notFound("no %s %q", what, v)
		}
	}
	return checkQueryText(r.URL.RawQuery)
}

// checkQueryText refuses a query string that does not decode, or whose names or values are
// not acceptable text.
func checkQueryText(raw string) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return badRequest("the query string cannot be decoded: %v", err)
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if fault := textFault(name); fault != "" {
			return badRequest("a query parameter name %s", fault)
		}
		for _, v := range q[name] {
			if fault := textFault(v); fault != "" {
				return badField(name, "query parameter %s %s", name, fault)
			}
		}
	}
	return nil
}

// isUUID tells whether s is a UUID in its canonical text form (8-4-4-4-12 hex digits).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
