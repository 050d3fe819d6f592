// Package readmodels lists the read models of crm, each once: its projection and its HTTP
// queries. Everything else takes them from here: the live runner of `crm serve`, `crm
// rebuild`, time travel, `crm projections diff`, GET /v1/projections and the query routes.
// Time travel and diffs need nothing more from a read model: both replay its fold, as the
// read-model kit derives the batch path from it.
package readmodels

import (
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/hooks"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/leadscore"
	"github.com/eventcrm/crm/projections/schedule"
	"github.com/eventcrm/crm/projections/tasks"
	"github.com/eventcrm/crm/projections/timeline"
	"github.com/eventcrm/crm/projections/value"
)

// ReadModel is one read model: its projection and the HTTP routes that answer from its tables.
type ReadModel struct {
	Projection projections.Projection
	Queries    []httpapi.Query
	// ServedBy names the routes that answer from the read model when they are not its
	// Queries (routes of a service of their own, such as the webhook subscriptions').
	ServedBy string
}

// Options are the settings read models compute with; a change of one is a change of what
// they hold, so the read models concerned record it and are rebuilt.
type Options struct {
	// Zone is the business time zone (CRM_BUSINESS_TZ): business dates and period boundaries
	// are taken in it. Nil means UTC.
	Zone *time.Location
}

// zone is the business time zone, UTC when none is set.
func (o Options) zone() *time.Location {
	if o.Zone == nil {
		return time.UTC
	}
	return o.Zone
}

// All lists the read models as opts configures them. A new read model is one more line here.
func All(opts Options) []ReadModel {
	zone := opts.zone()
	return []ReadModel{
		{Projection: board.Projection(), Queries: httpapi.BoardQueries()},
		{Projection: journey.ProjectionIn(zone), Queries: httpapi.JourneyQueries()},
		{Projection: churn.ProjectionIn(zone), Queries: httpapi.ChurnQueries()},
		{Projection: timeline.Projection(), Queries: httpapi.TimelineQueries(zone)},
		{Projection: tasks.Projection(), Queries: httpapi.TasksQueries(zone)},
		{Projection: directory.ProjectionIn(zone), Queries: httpapi.DirectoryQueries()},
		{Projection: analytics.ProjectionIn(zone), Queries: httpapi.AnalyticsQueries(zone)},
		{Projection: value.Projection(zone), Queries: httpapi.ValueQueries(zone)},
		{Projection: leadscore.Projection(), Queries: httpapi.LeadScoreQueries()},
		{Projection: schedule.Projection(zone), Queries: httpapi.ScheduleQueries()},
		// Read by the webhook delivery; GET /v1/webhooks (admin) answers from it.
		{Projection: hooks.Projection(), ServedBy: "/v1/webhooks"},
	}
}

// Projections are the projections of rms, in their order.
func Projections(rms []ReadModel) []projections.Projection {
	ps := make([]projections.Projection, len(rms))
	for i, rm := range rms {
		ps[i] = rm.Projection
	}
	return ps
}

// HTTPQueries are the HTTP routes of rms, each named by its projection.
func HTTPQueries(rms []ReadModel) []httpapi.Queries {
	qs := make([]httpapi.Queries, len(rms))
	for i, rm := range rms {
		qs[i] = httpapi.Queries{Projection: rm.Projection.Name(), Routes: rm.Queries}
	}
	return qs
}

// Named finds the projection of rms with a persisted name; the error lists the names.
func Named(rms []ReadModel, name string) (projections.Projection, error) {
	names := make([]string, len(rms))
	for i, rm := range rms {
		if rm.Projection.Name() == name {
			return rm.Projection, nil
		}
		names[i] = rm.Projection.Name()
	}
	return nil, fmt.Errorf("unknown projection %q (%s)", name, strings.Join(names, ", "))
}
