package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/projections"
)

// mountRebuilds adds the rebuild endpoints of the projections rb manages:
//
//	POST /v1/projections/{name}/rebuild   start a rebuild (analysts, admins): 202 with its progress,
//	                                      409 while one of the projection runs (here or in `crm rebuild`)
//	GET  /v1/projections/{name}/rebuild   progress of the running or last rebuild: events done, total,
//	                                      rate and ETA
func (s *Server) mountRebuilds(rb *projections.Rebuilds) {
	v1 := prefixed{s.router, "/v1"}
	v1.Handle("/projections/{name}/rebuild", s.authorize(auth.PermRebuild, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := mux.Vars(r)["name"]
		p, err := rb.Start(r.Context(), name)
		if err != nil {
			s.writeError(w, r, rebuildError(name, err))
			return
		}
		w.Header().Set("Location", r.URL.Path)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusAccepted, p)
	}))).Methods(http.MethodPost)
	v1.Handle("/projections/{name}/rebuild", s.authorize(auth.PermRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := mux.Vars(r)["name"]
		p, err := rb.Progress(r.Context(), name)
		if err != nil {
			s.writeError(w, r, rebuildError(name, err))
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, p)
	}))).Methods(http.MethodGet)
}

// rebuildError gives the errors of rebuilds their problems; others stay internal.
func rebuildError(name string, err error) error {
	var running *projections.RebuildRunningError
	switch {
	case errors.Is(err, projections.ErrUnknownProjection):
		return &apiError{status: http.StatusNotFound, slug: "not-found", title: "Not found", detail: fmt.Sprintf("no projection %q runs here", name)}
	case errors.Is(err, projections.ErrNoRebuild):
		return &apiError{status: http.StatusNotFound, slug: "not-found", title: "Not found", detail: fmt.Sprintf("no rebuild of %s is known", name)}
	case errors.As(err, &running):
		return &apiError{status: http.StatusConflict, slug: "conflict", title: "Conflict", detail: running.Error() + "; follow it with GET"}
	}
	return err
}
