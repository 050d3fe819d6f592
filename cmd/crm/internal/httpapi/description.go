package httpapi

import (
	_ "embed"
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// docsPage is the human-readable page of the description: it reads /openapi.json and shows
// every route with its parameters, body, answers and roles. It is one file with its script,
// served from the binary, so it works offline.
//
//go:embed docs/index.html
var docsPage []byte

// mountDescription adds GET /openapi.json and GET /docs, for anyone: the description holds
// no data.
func (s *Server) mountDescription() {
	s.handle(http.MethodGet, "/openapi.json", http.HandlerFunc(s.openAPI), RouteDoc{Tag: "operations",
		Summary: "This description (OpenAPI 3.1)", ContentType: "application/json"})
	s.handle(http.MethodGet, "/docs", http.HandlerFunc(serveDocs), RouteDoc{Tag: "operations",
		Summary: "The description as a page to read", ContentType: "text/html"})
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	doc, err := s.OpenAPI()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(doc) // the client may be gone; nothing to do about it
}

func serveDocs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	_, _ = w.Write(docsPage) // the client may be gone; nothing to do about it
}

// withMetrics counts every request by its route template and status; a path no route matches
// is counted as route "unmatched", so that scanners do not make one series per path.
func (s *Server) withMetrics(next http.Handler) http.Handler {
	if s.metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
		}
		s.metrics.Request(r.Method, route, rec.status, time.Since(start))
	})
}
