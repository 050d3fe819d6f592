package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/openapitest"
)

// describedServer starts a real listener serving srv through checkAgainstDescription.
func describedServer(t testing.TB, srv *httpapi.Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(checkAgainstDescription(t, srv, srv))
	t.Cleanup(ts.Close)
	return ts
}

// checkAgainstDescription serves h (the handler of srv, or a stand-in) and checks every
// request and every answer against srv's OpenAPI description (see openapitest).
func checkAgainstDescription(t testing.TB, srv *httpapi.Server, h http.Handler) http.Handler {
	t.Helper()
	return openapitest.Handler(t, srv.OpenAPI, h)
}
