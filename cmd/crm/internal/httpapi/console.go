package httpapi

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/console"
)

// Console is what the web console needs: its files and the business time zone, which the page
// shows dates in.
type Console struct {
	Assets *console.Assets
	Zone   *time.Location
}

// Me is who the token belongs to, what it may do and the zone business dates are shown in:
// what the console asks first, to decide which pages to show.
type Me struct {
	Name        string            `json:"name"`
	Role        auth.Role         `json:"role"`
	Permissions []auth.Permission `json:"permissions"`
	// BusinessTZ is the IANA name of the business time zone (CRM_BUSINESS_TZ).
	BusinessTZ string `json:"business_tz"`
}

// MountConsole adds GET / (the console's page) and GET /console/{file} (its scripts, styles
// and licences) for anyone, as /docs is: they hold no data. GET /v1/me tells the page who
// signed in.
func (s *Server) MountConsole(c Console) {
	zone := "UTC"
	if c.Zone != nil {
		zone = c.Zone.String()
	}
	serve := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asset, ok := c.Assets.Get(name)
			if !ok {
				s.writeError(w, r, notFound("no such console file"))
				return
			}
			asset.Serve(w, r)
		})
	}
	s.handle(http.MethodGet, "/", serve(console.Index), RouteDoc{Tag: "console", Summary: "The web console",
		Description: "A page that signs in with a bearer token (kept in the browser's session storage) and shows the " +
			"pipeline board, contacts, the journey map, churn points, KPIs, customer value, tasks, operations and the audit, " +
			"read from this API.", ContentType: "text/html", Revalidated: true})
	s.handle(http.MethodGet, "/console/{file}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(mux.Vars(r)["file"]).ServeHTTP(w, r)
	}), RouteDoc{Tag: "console", Summary: "A file of the web console (script, style sheet, licence)",
		Description: "Served gzipped when accepted, with an ETag; the media type follows the name's extension.",
		ContentType: "text/javascript", MoreContentTypes: []string{"text/css", "text/plain", "text/html", "image/svg+xml"},
		Revalidated: true, Problems: []int{http.StatusNotFound}})
	s.handle(http.MethodGet, "/v1/me", s.authorize(auth.PermRead, s.query(func(r *http.Request) (any, int64, error) {
		p := principal(r.Context())
		return me(p, zone), 0, nil
	})), RouteDoc{Tag: "console", Summary: "Who the token belongs to, its role and permissions, and the business time zone",
		Perm: auth.PermRead, Answer: Me{}})
}

func me(p auth.Principal, zone string) Me {
	m := Me{Name: p.Name, Role: p.Role, BusinessTZ: zone, Permissions: []auth.Permission{}}
	for _, perm := range auth.Permissions() {
		if p.Role.Can(perm) {
			m.Permissions = append(m.Permissions, perm)
		}
	}
	return m
}
