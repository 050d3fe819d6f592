package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/projections/rebuild"
)

// mountRebuilds adds the rebuild endpoints of the projections rb manages:
//
//	POST /v1/projections/{name}/rebuild   start a rebuild (analysts, admins): 202 with its progress,
//	                                      409 while one of the projection runs (here or in `crm rebuild`)
//	GET  /v1/projections/{name}/rebuild   progress of the running or last rebuild: events done, total,
//	                                      rate and ETA
func (s *Server) mountRebuilds(rb *rebuild.Rebuilds) {
	path := "/v1/projections/{name}/rebuild"
	s.handle(http.MethodPost, path, s.authorize(auth.PermRebuild, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := rb.Start(r.Context(), mux.Vars(r)["name"])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", r.URL.Path)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusAccepted, p)
	})), RouteDoc{Summary: "Start a rebuild of a read model (blue/green)", Perm: auth.PermRebuild, Status: http.StatusAccepted,
		Answer: rebuild.RebuildProgress{}, Problems: []int{http.StatusNotFound, http.StatusConflict}})
	s.handle(http.MethodGet, path, s.authorize(auth.PermRead, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := rb.Progress(r.Context(), mux.Vars(r)["name"])
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, p)
	})), RouteDoc{Summary: "Progress of the running or last rebuild: events done, total, rate, ETA", Perm: auth.PermRead,
		Answer: rebuild.RebuildProgress{}, Problems: []int{http.StatusNotFound}})
}
