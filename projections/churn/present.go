package churn

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
)

// Present is the churn points as of any time at or after the latest business time in the
// tables (the Horizon). From then on only dormancy changes with as_of (and with it the ended
// counts, rates and ranks); who entered, lost and churned, the lost deals and the churns are
// the same for every such time. So a Present read once answers for every later as_of (At),
// until the tables change: dormancy is then a binary search in each phase's sorted last
// activities.
type Present struct {
	// Horizon is the latest time in the tables that a question as of a time compares with:
	// creations, visits entered and left, touchpoints, losses and reopenings, in microseconds
	// since the Unix epoch (0 for empty tables).
	Horizon    int64
	dormantFor int64
	counts     map[contact.Phase]*phaseCounts
	answer     Answer
}

// QueryPresent reads the present of the churn points from the tables of set t, for the
// parameters other than AsOf (ignored). Invalid parameters return a domain error with code
// invalid naming the parameter.
func QueryPresent(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (*Present, error) {
	dormantDays, cohort, err := params.check()
	if err != nil {
		return nil, err
	}
	// As of the end of time: every row counts, as it does for any time after the horizon.
	q := query{db: db, t: t, asOf: math.MaxInt64, cohort: cohort}
	p := &Present{dormantFor: int64(dormantDays) * microsPerDay,
		answer: Answer{Cohort: params.Cohort, Channel: params.Channel, DormantDays: dormantDays}}
	p.counts, err = q.read(ctx, &p.answer, &p.Horizon)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// horizon is the latest of the times the queries compare with as_of.
func (q *query) horizon(ctx context.Context) (int64, error) {
	var latest int64
	for _, c := range []struct{ table, column string }{
		{tableContacts, "created_at"},
		{tableVisits, "entered_at"},
		{tableVisits, "left_at"},
		{tableTouchpoints, "occurred_at"},
		{tableDealLosses, "lost_at"},
		{tableDealLosses, "reopened_at"},
	} {
		var at sql.NullInt64
		if err := q.tx.QueryRowContext(ctx, `SELECT MAX(`+c.column+`) FROM `+q.t.Name(c.table)).Scan(&at); err != nil {
			return 0, fmt.Errorf("horizon of the churn points (%s.%s): %w", c.table, c.column, err)
		}
		latest = max(latest, at.Int64)
	}
	return latest, nil
}

// At answers the churn points as of asOf from the present, exactly as Query would, when asOf
// is at or after the horizon; ok is false otherwise (the answer then needs Query). The
// Present can be shared by concurrent callers.
func (p *Present) At(asOf time.Time) (answer Answer, ok bool) {
	if asOf.IsZero() {
		return Answer{}, false
	}
	asOf = asOf.UTC()
	at := asOf.UnixMicro()
	if at < p.Horizon {
		return Answer{}, false
	}
	answer = p.answer
	answer.AsOf = asOf
	answer.Phases = dropOffs(p.counts, at, p.dormantFor)
	return answer, true
}
