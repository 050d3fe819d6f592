// Package openapitest checks HTTP requests and answers against the server's OpenAPI
// description with libopenapi-validator, for tests: on the server side (Handler, around the
// handler a test serves) or on the client side (Transport, for tests that talk to `crm serve`).
//
// The rule is the same on both sides: a request the description allows gets an answer the
// description allows; a request it refuses (a bad parameter, an unknown path, no token) gets a
// 4xx problem, itself as described when the route is.
package openapitest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// TB is the part of testing.TB a check reports to.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Checker checks exchanges against one description.
type Checker struct{ v validator.Validator }

// checkers are the checkers of the descriptions seen in this test binary, by digest: most
// tests serve the same routes, and reading a description takes a while.
var checkers sync.Map // [32]byte -> *Checker

// New reads spec, an OpenAPI 3.1 description, and checks that it is valid.
func New(spec []byte) (*Checker, error) {
	digest := sha256.Sum256(spec)
	if c, ok := checkers.Load(digest); ok {
		return c.(*Checker), nil
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("openapi validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("the OpenAPI description is not valid: %s", describe(verrs))
	}
	c := &Checker{v: v}
	checkers.Store(digest, c)
	return c, nil
}

// Check checks one exchange: req with its body, resp with its body. Bodies are read from the
// byte slices, not from req and resp.
func (c *Checker) Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	check := req.Clone(req.Context())
	check.Body = io.NopCloser(bytes.NewReader(reqBody))
	reqOK, reqErrs := c.v.ValidateHttpRequest(check)
	check.Body = io.NopCloser(bytes.NewReader(reqBody))
	answer := *resp
	answer.Body = io.NopCloser(bytes.NewReader(respBody))
	respOK, respErrs := c.v.ValidateHttpResponse(check, &answer)
	switch {
	case reqOK && !respOK:
		return fmt.Errorf("%s %s: answer %d does not match the description: %s\nanswer: %.600s", req.Method, req.URL, resp.StatusCode,
			describe(respErrs), respBody)
	case !reqOK && (resp.StatusCode < 400 || resp.StatusCode >= 500):
		return fmt.Errorf("%s %s: the description refuses the request (%s), yet it was answered %d", req.Method, req.URL,
			describe(reqErrs), resp.StatusCode)
	case !reqOK && !respOK && !unknownRoute(respErrs):
		return fmt.Errorf("%s %s: refused request's answer %d does not match the description: %s\nanswer: %.600s", req.Method, req.URL,
			resp.StatusCode, describe(respErrs), respBody)
	}
	return nil
}

// Handler serves h and checks every exchange against the description spec returns, read at
// the first request (when every route is mounted).
func Handler(t TB, spec func() ([]byte, error), h http.Handler) http.Handler {
	t.Helper()
	load := checkerOnce(t, spec)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := load()
		if c == nil {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		answer := rec.Body.Bytes()
		if err := c.Check(r, body, rec.Result(), answer); err != nil {
			t.Errorf("%v", err)
		}
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(answer)
	})
}

// Transport sends requests through base (http.DefaultTransport when nil) and checks every
// exchange against the description served at specURL, read at the first request.
func Transport(t TB, base http.RoundTripper, specURL string) http.RoundTripper {
	t.Helper()
	if base == nil {
		base = http.DefaultTransport
	}
	load := checkerOnce(t, func() ([]byte, error) {
		resp, err := (&http.Client{Transport: base}).Get(specURL)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", specURL, resp.Status)
		}
		return io.ReadAll(resp.Body)
	})
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		c := load()
		var body []byte
		if req.Body != nil {
			var err error
			if body, err = io.ReadAll(req.Body); err != nil {
				return nil, err
			}
			_ = req.Body.Close()
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := base.RoundTrip(req)
		if err != nil || c == nil {
			return resp, err
		}
		answer, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(answer))
		if err := c.Check(req, body, resp, answer); err != nil {
			t.Errorf("%v", err)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// checkerOnce returns the checker of spec, made at the first call; nil (reported) when spec
// cannot be read or checked.
func checkerOnce(t TB, spec func() ([]byte, error)) func() *Checker {
	var (
		once sync.Once
		c    *Checker
	)
	return func() *Checker {
		once.Do(func() {
			raw, err := spec()
			if err == nil {
				c, err = New(raw)
			}
			if err != nil {
				t.Errorf("openapi: %v", err)
			}
		})
		return c
	}
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

func describe(errs []*verrors.ValidationError) string {
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
