package httpapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/domain/settings"
)

// mountSettings adds GET /v1/settings and GET /v1/settings/{section}; the changes are
// commands (PUT, see commandRoutes). Settings are read by admins.
func (s *Server) mountSettings(v1 prefixed) {
	v1.Handle("/settings", s.authorize(auth.PermAdmin, s.query(s.getSettings))).Methods(http.MethodGet)
	v1.Handle("/settings/{section}", s.authorize(auth.PermAdmin, s.query(s.getSettingsSection))).Methods(http.MethodGet)
}

func (s *Server) getSettings(r *http.Request) (any, int64, error) {
	st, err := s.cmds.Settings(r.Context())
	if err != nil {
		return nil, 0, err
	}
	return map[string]any{"version": st.Version, "settings": st}, st.Version, nil
}

func (s *Server) getSettingsSection(r *http.Request) (any, int64, error) {
	st, err := s.cmds.Settings(r.Context())
	if err != nil {
		return nil, 0, err
	}
	var v any
	switch section := mux.Vars(r)["section"]; section {
	case settings.SectionLeadScoring:
		v = st.LeadScoring
	case settings.SectionStageProbabilities:
		v = map[string]any{"probabilities": st.StageProbabilities}
	case settings.SectionLostReasons:
		v = map[string]any{"reasons": st.LostReasons}
	case settings.SectionProcesses:
		v = st.Processes
	default:
		return nil, 0, notFound("no settings section %q (lead_scoring, stage_probabilities, lost_reasons, processes)", section)
	}
	return map[string]any{"version": st.Version, "section": mux.Vars(r)["section"], "value": v}, st.Version, nil
}
