package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
)

// validators are the validators of the descriptions seen in this test binary, by digest: most
// tests serve the same routes.
var validators sync.Map // [32]byte -> validator.Validator

// describedServer starts a real listener serving srv through checkAgainstDescription.
func describedServer(t testing.TB, srv *httpapi.Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(checkAgainstDescription(t, srv, srv))
	t.Cleanup(ts.Close)
	return ts
}

// checkAgainstDescription serves h (the handler of srv, or srv wrapped) and checks every
// request and every answer against srv's OpenAPI description, read at the first request
// (when every route is mounted), with libopenapi-validator:
//   - a request the description allows gets an answer the description allows;
//   - a request it does not allow (a bad parameter, an unknown path, no token) gets a problem
//     with a 4xx status, itself as described when the route is.
func checkAgainstDescription(t testing.TB, srv *httpapi.Server, h http.Handler) http.Handler {
	t.Helper()
	var (
		once sync.Once
		v    validator.Validator
	)
	load := func() {
		spec, err := srv.OpenAPI()
		if err != nil {
			t.Errorf("openapi: %v", err)
			return
		}
		digest := sha256.Sum256(spec)
		if cached, ok := validators.Load(digest); ok {
			v = cached.(validator.Validator)
			return
		}
		doc, err := libopenapi.NewDocument(spec)
		if err != nil {
			t.Errorf("openapi document: %v", err)
			return
		}
		var errs []error
		v, errs = validator.NewValidator(doc, config.WithFormatAssertions())
		if len(errs) > 0 {
			t.Errorf("openapi validator: %v", errs)
			v = nil
			return
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			t.Errorf("the OpenAPI description is not valid: %s", describeErrors(verrs))
		}
		validators.Store(digest, v)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(load)
		if v == nil {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		check := r.Clone(r.Context())
		check.Body = io.NopCloser(bytes.NewReader(body))
		reqOK, reqErrs := v.ValidateHttpRequest(check)

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		resp := rec.Result()
		answer := rec.Body.Bytes()

		check.Body = io.NopCloser(bytes.NewReader(body))
		resp.Body = io.NopCloser(bytes.NewReader(answer))
		respOK, respErrs := v.ValidateHttpResponse(check, resp)
		switch {
		case reqOK && !respOK:
			t.Errorf("%s %s: answer %d does not match the description: %s\nanswer: %.600s", r.Method, r.URL, resp.StatusCode,
				describeErrors(respErrs), answer)
		case !reqOK && (resp.StatusCode < 400 || resp.StatusCode >= 500):
			t.Errorf("%s %s: the description refuses the request (%s), yet it was answered %d", r.Method, r.URL,
				describeErrors(reqErrs), resp.StatusCode)
		case !reqOK && !respOK && !unknownRoute(respErrs):
			t.Errorf("%s %s: refused request's answer %d does not match the description: %s\nanswer: %.600s", r.Method, r.URL,
				resp.StatusCode, describeErrors(respErrs), answer)
		}
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(answer)
	})
}

// unknownRoute tells errors that only say the description has no such path or method.
func unknownRoute(errs []*verrors.ValidationError) bool {
	for _, e := range errs {
		if e.ValidationType != "path" {
			return false
		}
	}
	return len(errs) > 0
}

func describeErrors(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.ValidationType + "/" + e.ValidationSubType + ": " + e.Message)
		if e.Reason != "" {
			b.WriteString(" (" + e.Reason + ")")
		}
		for _, f := range e.SchemaValidationErrors {
			b.WriteString("; " + f.FieldPath + ": " + f.Reason)
		}
		b.WriteString("\n")
	}
	return b.String()
}
