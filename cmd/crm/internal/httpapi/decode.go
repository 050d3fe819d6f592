package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// decodeBody reads a JSON command body into dst, strictly: unknown fields, wrong types, trailing
// data and bodies over the limit are errors. The optional "occurred_at" field, accepted by
// every command, is returned separately (zero when absent).
func decodeBody(r *http.Request, dst any) (occurredAt time.Time, err error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, perr := mime.ParseMediaType(ct)
		if perr != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return time.Time{}, unsupportedMediaType(ct)
		}
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return time.Time{}, &bodyError{err} // *http.MaxBytesError within becomes 413
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return time.Time{}, jsonProblem(err)
	}
	if err := checkBodyText(raw, fields); err != nil {
		return time.Time{}, err
	}
	if v, ok := fields["occurred_at"]; ok {
		delete(fields, "occurred_at")
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, badField("occurred_at", "occurred_at must be an RFC 3339 string")
		}
		if occurredAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, badField("occurred_at", "occurred_at %q is not an RFC 3339 time", s)
		}
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		return time.Time{}, fmt.Errorf("re-encode body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(rest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			typ.Field = sentPath(reflect.TypeOf(dst), typ.Field)
		}
		return time.Time{}, jsonProblem(err)
	}
	return occurredAt, nil
}

// sentPath is a field path of encoding/json's, of a value of type t, as the client wrote it:
// encoding/json also names the Go field of an embedded struct, whose fields the client writes
// in the outer object.
func sentPath(t reflect.Type, path string) string {
	var sent []string
	for _, name := range strings.Split(path, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			t = nil
			sent = append(sent, name)
			continue
		}
		if f, ok := t.FieldByName(name); ok && f.Anonymous && f.Tag.Get("json") == "" {
			t = f.Type
			continue
		}
		sent = append(sent, name)
		t = jsonFieldType(t, name)
	}
	return strings.Join(sent, ".")
}

// jsonFieldType is the type of the field of struct t that encoding/json names name (nil for
// none).
func jsonFieldType(t reflect.Type, name string) reflect.Type {
	for _, f := range reflect.VisibleFields(t) {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.IsExported() && !f.Anonymous && (tag == name || tag == "" && f.Name == name) {
			return f.Type
		}
	}
	return nil
}

// bodyError is a request body the server could not read: the client sent less than its
// Content-Length, broke the chunked encoding, went away, or was slower than the server's read
// timeout. Reading a body from the network fails only by the client's doing.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read the request body: " + e.err.Error() }

func (e *bodyError) Unwrap() error { return e.err }

// timedOut tells a body that did not arrive before the read deadline.
func (e *bodyError) timedOut() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// jsonProblem explains a JSON decoding error in the client's terms.
func jsonProblem(err error) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return badRequest("the body is not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("the body must be a JSON object")
		}
		return badField(typ.Field, "field %s must be %s, got %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badField(name, "unknown field %q", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the body is truncated JSON")
	}
	return badRequest("the body could not be read as JSON: %v", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "float64", "float32":
		return "a number"
	case "ptr":
		return "a value of the right type"
	default:
		return "a " + kind
	}
}

// ifMatch parses an If-Match header holding one ETag of ours ("3" or W/"3"); absent or "*" is nil.
func ifMatch(r *http.Request) (*int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return nil, nil
	}
	v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(h, "W/"), `"`), 10, 64)
	if err != nil || v < 0 {
		return nil, badRequest("If-Match %q is not an ETag of this API (a quoted stream version such as \"3\")", h)
	}
	return &v, nil
}

func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }
