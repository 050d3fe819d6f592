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
	s.describe(http.MethodGet, "/v1/settings", RouteDoc{Tag: "settings", Perm: auth.PermAdmin,
		Summary: "Every setting in force, with the version to send in If-Match", Answer: SettingsAnswer{}})
	v1.Handle("/settings/{section}", s.authorize(auth.PermAdmin, s.query(s.getSettingsSection))).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/settings/{section}", RouteDoc{Tag: "settings", Perm: auth.PermAdmin,
		Summary: "One section of the settings (lead_scoring, stage_probabilities, lost_reasons, processes)",
		Answer:  SettingsSectionAnswer{}, Problems: []int{http.StatusNotFound}})
}

// SettingsAnswer is the answer of GET /v1/settings.
type SettingsAnswer struct {
	Version  int64             `json:"version"`
	Settings settings.Settings `json:"settings"`
}

// SettingsSectionAnswer is the answer of GET /v1/settings/{section}: Value is the section.
type SettingsSectionAnswer struct {
	Version int64  `json:"version"`
	Section string `json:"section"`
	Value   any    `json:"value"`
}

func (s *Server) getSettings(r *http.Request) (any, int64, error) {
	st, err := s.cmds.Settings(r.Context())
	if err != nil {
		return nil, 0, err
	}
	return SettingsAnswer{Version: st.Version, Settings: st}, st.Version, nil
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
	return SettingsSectionAnswer{Version: st.Version, Section: mux.Vars(r)["section"], Value: v}, st.Version, nil
}
