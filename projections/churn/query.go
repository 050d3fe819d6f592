package churn

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/paging"
	"github.com/eventcrm/crm/projections/round"
	"github.com/eventcrm/crm/projections/visits"
)

// CohortLayout is the form of a cohort: the month of lead capture, YYYY-MM (business time zone).
const CohortLayout = "2006-01"

// DefaultDormantDays is how long without a touchpoint makes a contact dormant, by default.
const DefaultDormantDays = 90

// Params is the question asked of the churn points.
type Params struct {
	// AsOf is the business time of the question (required): only contacts captured at or
	// before it and not merged into another contact by then, and events that occurred at or
	// before it, count; dormancy is judged at it.
	AsOf time.Time `json:"as_of"`
	// Cohort keeps the contacts captured in this month (YYYY-MM, business time zone); empty keeps all.
	Cohort string `json:"cohort,omitempty"`
	// Channel keeps the contacts of this lead channel.
	Channel string `json:"channel,omitempty"`
	// DormantDays is N of the dormancy rule; DefaultDormantDays when 0.
	DormantDays int `json:"dormant_days,omitempty"`
	// Limit is the number of churned customers in the answer: DefaultLimit when 0, at most
	// MaxLimit.
	Limit int `json:"limit,omitempty"`
	// Cursor, from an answer's next_cursor, asks for the churned customers after those of that
	// answer. The other parameters must be the same as for the answer that gave it.
	Cursor string `json:"cursor,omitempty"`
	// Explain, when set, asks for the parts of one figure instead (see Explain): Limit and
	// Cursor then page the parts.
	Explain string `json:"explain,omitempty"`
}

// Page sizes of the churned customers.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Answer is where the contacts of a cohort dropped out, as of a time.
type Answer struct {
	AsOf        time.Time `json:"as_of"`
	Cohort      string    `json:"cohort,omitempty"`
	Channel     string    `json:"channel,omitempty"`
	DormantDays int       `json:"dormant_days"`
	// Phases are the seven lifecycle phases ranked by drop-off rate, highest first; equal
	// rates in lifecycle order; phases nobody entered (rate null) last.
	Phases []PhaseDropOff `json:"phases"`
	// LostDeals are the deals lost as of as_of (lost and not reopened since), by the stage they
	// were lost from and the reason, in pipeline and reason-list order.
	LostDeals []LostDeals `json:"lost_deals"`
	// ChurnedCustomers lists one page of the churns (phase changes to churned) at or before
	// as_of, by time, then contact; a customer won back and churned again appears once per
	// churn.
	ChurnedCustomers []ChurnedCustomer `json:"churned_customers"`
	// NextCursor asks for the next page of churned customers; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// PhaseDropOff is how many of the contacts that entered a phase ended their journey in it.
type PhaseDropOff struct {
	Rank  int           `json:"rank"`
	Phase contact.Phase `json:"phase"`
	// Entered counts the distinct contacts with a visit of the phase.
	Entered int `json:"entered"`
	// Ended counts the distinct contacts whose journey ended in the phase, once each even when
	// it ended there several times or in several ways (a win-back can be followed by another
	// end): Lost, Churned or Dormant.
	Ended int `json:"ended"`
	// Lost counts the distinct contacts with a phase change from the phase to lost.
	Lost int `json:"lost"`
	// Churned counts the distinct contacts with a phase change from the phase to churned.
	Churned int `json:"churned"`
	// Dormant counts the contacts still in the phase at as_of (not exited) whose last touchpoint
	// at or before as_of - or their creation when they have none - is at least dormant_days x
	// 24 h before as_of (exactly dormant_days counts as dormant).
	Dormant int `json:"dormant"`
	// DropOffRate is Ended / Entered rounded half up to 4 decimals; null when nobody entered.
	DropOffRate *float64 `json:"drop_off_rate"`
}

// LostDeals are the deals lost from one stage for one reason.
type LostDeals struct {
	Stage  deal.Stage      `json:"stage"`
	Reason deal.LostReason `json:"reason"`
	Count  int             `json:"count"`
	// Amounts are the sums of the amounts recorded on the losses, per currency, by code.
	Amounts []domain.Money `json:"amounts"`
}

// ChurnedCustomer is one churn and what preceded it.
type ChurnedCustomer struct {
	ContactID string        `json:"contact_id"`
	Name      string        `json:"name"`
	ChurnedAt time.Time     `json:"churned_at"`
	FromPhase contact.Phase `json:"from_phase"`
	// WonAt is the customer's latest entry into phase won before the churn; DaysWonToChurn is
	// the time from it to the churn, in days (2 decimals, half up). Null when there is none.
	WonAt          *time.Time `json:"won_at"`
	DaysWonToChurn *float64   `json:"days_won_to_churn"`
	// LastNPS is the score of the latest survey at or before the churn; null when none.
	LastNPS *int `json:"last_nps"`
	// LastTouchpointAt is the latest touchpoint at or before the churn and
	// DaysSinceLastTouchpoint the time from it to the churn in days (2 decimals, half up); null
	// when there is none.
	LastTouchpointAt        *time.Time `json:"last_touchpoint_at"`
	DaysSinceLastTouchpoint *float64   `json:"days_since_last_touchpoint"`
	// OverdueTasks counts the tasks scheduled at or before the churn, due before the churn's
	// date (business zone) and not completed at the churn.
	OverdueTasks int `json:"overdue_tasks"`
}

// filter is the cohort of a question, as SQL conditions on the contacts table c.
type filter struct {
	where string
	args  []any
	// month tells that the filter keeps the contacts captured in one month.
	month bool
}

// check validates the parameters other than as_of: the dormancy rule in days, and the cohort
// as SQL conditions on the contacts table c.
func (params Params) check() (dormantDays int, cohort filter, err error) {
	dormantDays = params.DormantDays
	switch {
	case dormantDays == 0:
		dormantDays = DefaultDormantDays
	case dormantDays < 0 || dormantDays > 36500:
		return 0, filter{}, domain.Invalid("dormant_days", "%d is outside 1..36500", dormantDays)
	}
	if params.Cohort != "" {
		if _, err := time.Parse(CohortLayout, params.Cohort); err != nil {
			return 0, filter{}, domain.Invalid("cohort", "%q is not a month of the form YYYY-MM", params.Cohort)
		}
		cohort.where += ` AND c.cohort = ?`
		cohort.args = append(cohort.args, params.Cohort)
		cohort.month = true
	}
	if params.Channel != "" {
		if _, err := contact.ParseChannel("channel", params.Channel); err != nil {
			return 0, filter{}, err
		}
		cohort.where += ` AND c.channel = ?`
		cohort.args = append(cohort.args, params.Channel)
	}
	return dormantDays, cohort, nil
}

// Query answers the churn points from the tables of set t. Invalid parameters return a domain
// error with code invalid naming the parameter.
//
// A question about now (as_of at or after the horizon, the latest business time in the tables)
// reads the counts the fold keeps, and counts dormancy from the contacts active since the
// cutoff; an earlier as_of reads the visits of every contact of the cohort. Both give the same
// answer at and after the horizon. The churned customers are a page of them either way.
func Query(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (Answer, error) {
	return ask(ctx, db, t, params, true)
}

// ask answers as Query does; without kept, from the visits at every as_of.
func ask(ctx context.Context, db *projections.DB, t projections.Tables, params Params, kept bool) (Answer, error) {
	if params.AsOf.IsZero() {
		return Answer{}, domain.Invalid("as_of", "is required")
	}
	dormantDays, cohort, err := params.check()
	if err != nil {
		return Answer{}, err
	}
	page, err := params.page()
	if err != nil {
		return Answer{}, err
	}
	asOf := params.AsOf.UTC()
	q := query{db: db, t: t, asOf: asOf.UnixMicro(), cohort: cohort, dormantFor: int64(dormantDays) * round.MicrosPerDay, page: page, kept: kept}
	answer := Answer{AsOf: asOf, Cohort: params.Cohort, Channel: params.Channel, DormantDays: dormantDays}
	counts, err := q.read(ctx, &answer)
	if err != nil {
		return Answer{}, err
	}
	answer.Phases = dropOffs(counts)
	return answer, nil
}

// read reads the phase counts, and the lost deals and churns into answer, as of q.asOf: in
// one read transaction, or, when nothing writes to the database any more (a time-travel set),
// side by side, each in a transaction of its own.
func (q query) read(ctx context.Context, answer *Answer) (map[contact.Phase]*phaseCounts, error) {
	var counts map[contact.Phase]*phaseCounts
	parts := []func(q *query) error{
		func(q *query) (err error) { counts, err = q.phaseCounts(ctx); return err },
		func(q *query) (err error) { answer.LostDeals, err = q.lostDeals(ctx); return err },
		func(q *query) (err error) {
			answer.ChurnedCustomers, answer.NextCursor, err = q.churns(ctx)
			return err
		},
	}
	in := func(part func(q *query) error) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
			q := q
			q.tx = tx
			return part(&q)
		}
	}
	decide := in(func(qq *query) (err error) { q.now, err = qq.isNow(ctx); return err })
	if !q.db.Frozen() {
		err := q.db.ReadOnly(ctx, func(tx *sql.Tx) error {
			if err := decide(tx); err != nil {
				return err
			}
			for _, part := range parts {
				if err := in(part)(tx); err != nil {
					return err
				}
			}
			return nil
		})
		return counts, err
	}
	if err := q.db.ReadOnly(ctx, decide); err != nil {
		return nil, err
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Go(func() { errs[i] = q.db.ReadOnly(ctx, in(part)) })
	}
	wg.Wait()
	return counts, errors.Join(errs...)
}

// isNow tells whether as_of is at or after the horizon kept by the fold: every time in the
// tables is then at or before it, and the kept counts answer.
func (q *query) isNow(ctx context.Context) (bool, error) {
	now, err := horizon.Covers(ctx, q.tx, q.t, q.asOf)
	return q.kept && now, err
}

// query runs the statements of one answer in one read transaction.
type query struct {
	db         *projections.DB
	tx         *sql.Tx
	t          projections.Tables
	asOf       int64
	cohort     filter
	dormantFor int64
	page       page
	// now: as_of is at or after the horizon, the kept counts answer (see isNow); only when
	// kept allows it.
	now, kept bool
}

func (q *query) rows(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryContext(ctx, q.db.Dialect.Rebind(stmt), args...)
}

// contacts are the contacts of the cohort captured at or before as_of and not merged by then,
// as SQL conditions on c.
func (q *query) contacts() (string, []any) { return contactsAt(q.asOf, q.cohort) }

// contactsAt are the contacts of cohort captured at or before asOf and not merged into another
// contact by then (a merged duplicate is a contact until its merge, none from then on), as SQL
// conditions on c.
func contactsAt(asOf int64, cohort filter) (string, []any) {
	return ` c.created_at <= ? AND (c.merged_at IS NULL OR c.merged_at > ?)` + cohort.where,
		append([]any{asOf, asOf}, cohort.args...)
}

// phaseCounts is what the drop-off of one phase is computed from, as of a time T.
type phaseCounts struct {
	// entered, lost and churned count the distinct contacts with a visit of the phase, with a
	// change from it to lost, to churned; exited those with either.
	entered, lost, churned, exited int
	// dormant counts the contacts in the phase at T whose last activity (latest touchpoint at
	// or before T, else creation) is dormant_days or more before T; dormantNotExited those of
	// them not already counted in exited.
	dormant, dormantNotExited int
}

// cutoff is the latest last activity of a dormant contact: idle since then or earlier.
func (q *query) cutoff() int64 { return q.asOf - q.dormantFor }

// dropOffs ranks the phases by drop-off rate.
func dropOffs(counts map[contact.Phase]*phaseCounts) []PhaseDropOff {
	var result []PhaseDropOff
	for _, p := range contact.Phases() {
		c := counts[p]
		if c == nil {
			c = &phaseCounts{}
		}
		d := PhaseDropOff{Phase: p, Entered: c.entered, Lost: c.lost, Churned: c.churned,
			Dormant: c.dormant, Ended: c.exited + c.dormantNotExited}
		d.DropOffRate = round.Ratio(d.Ended, d.Entered)
		result = append(result, d)
	}
	slices.SortStableFunc(result, func(a, b PhaseDropOff) int {
		switch {
		case a.DropOffRate == nil || b.DropOffRate == nil:
			return cmp.Compare(nilRank(a.DropOffRate), nilRank(b.DropOffRate))
		default:
			return cmp.Compare(*b.DropOffRate, *a.DropOffRate)
		}
	})
	for i := range result {
		result[i].Rank = i + 1
	}
	return result
}

// phaseCounts reads the counts of every phase as of q.asOf: kept or read from the visits.
func (q *query) phaseCounts(ctx context.Context) (map[contact.Phase]*phaseCounts, error) {
	if q.now {
		return q.keptPhaseCounts(ctx)
	}
	return q.visitPhaseCounts(ctx)
}

// keptPhaseCounts sums the counts the fold keeps over the cohort's rows, and counts dormancy
// as the contacts open in a phase less those active after the cutoff (a recent few, found by
// index).
func (q *query) keptPhaseCounts(ctx context.Context) (map[contact.Phase]*phaseCounts, error) {
	counts := newPhaseCounts()
	rows, err := q.rows(ctx, `SELECT c.phase, CAST(SUM(c.entered) AS BIGINT), CAST(SUM(c.lost) AS BIGINT),
		CAST(SUM(c.churned) AS BIGINT), CAST(SUM(c.exited) AS BIGINT), CAST(SUM(c.open_visits) AS BIGINT),
		CAST(SUM(c.open_not_exited) AS BIGINT)
		FROM `+q.t.Name(tablePhaseCounts)+` c WHERE 1 = 1`+q.cohort.where+` GROUP BY c.phase`, q.cohort.args...)
	if err != nil {
		return nil, fmt.Errorf("phase counts: %w", err)
	}
	for rows.Next() {
		var (
			phase string
			pc    phaseCounts
		)
		if err := rows.Scan(&phase, &pc.entered, &pc.lost, &pc.churned, &pc.exited, &pc.dormant, &pc.dormantNotExited); err != nil {
			rows.Close()
			return nil, fmt.Errorf("phase counts: %w", err)
		}
		if c, ok := counts[contact.Phase(phase)]; ok {
			*c = pc // dormant: every open contact, less the active ones below
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("phase counts: %w", err)
	}
	rows, err = q.rows(ctx, `SELECT c.open_phase, c.open_exited, COUNT(*) FROM `+q.t.Name(tableContacts)+` c
		WHERE c.idle_since > ? AND c.open_phase <> ''`+q.cohort.where+` GROUP BY c.open_phase, c.open_exited`,
		append([]any{q.cutoff()}, q.cohort.args...)...)
	if err != nil {
		return nil, fmt.Errorf("active contacts: %w", err)
	}
	for rows.Next() {
		var (
			phase         string
			exited, count int
		)
		if err := rows.Scan(&phase, &exited, &count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("active contacts: %w", err)
		}
		if c, ok := counts[contact.Phase(phase)]; ok {
			c.dormant -= count
			if exited == 0 {
				c.dormantNotExited -= count
			}
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("active contacts: %w", err)
	}
	return counts, nil
}

func newPhaseCounts() map[contact.Phase]*phaseCounts {
	counts := map[contact.Phase]*phaseCounts{}
	for _, p := range contact.Phases() {
		counts[p] = &phaseCounts{}
	}
	return counts
}

// visitPhaseCounts reads the counts of every phase as of q.asOf from the visits in contact
// order: each contact's phases are gathered in a few bit sets and counted when the next
// contact starts, so memory does not grow with the number of contacts.
func (q *query) visitPhaseCounts(ctx context.Context) (map[contact.Phase]*phaseCounts, error) {
	where, args := q.contacts()
	// Only the last visit of a contact can be open at as_of (a later one would have been
	// entered after it); for an open visit, the contact's last activity as of as_of: its
	// latest touchpoint, else its creation.
	rows, err := q.rows(ctx, `SELECT v.contact_id, v.phase, v.left_at, v.next_phase,
		CASE WHEN v.left_at IS NULL OR v.left_at > ? THEN COALESCE((SELECT MAX(tp.occurred_at) FROM `+q.t.Name(tableTouchpoints)+` tp
			WHERE tp.contact_id = v.contact_id AND tp.occurred_at <= ?), c.created_at) END
		FROM `+q.t.Name(visits.Table)+` v JOIN `+q.t.Name(tableContacts)+` c ON c.contact_id = v.contact_id
		WHERE`+where+` AND v.entered_at <= ? ORDER BY v.contact_id, v.seq`,
		append(append([]any{q.asOf, q.asOf}, args...), q.asOf)...)
	if err != nil {
		return nil, fmt.Errorf("visits: %w", err)
	}
	phases := contact.Phases()
	counts := newPhaseCounts()
	cutoff := q.cutoff()
	var (
		c       contactPhases
		current []byte
	)
	for rows.Next() {
		var (
			id         sql.RawBytes
			phase      string
			left, last sql.NullInt64
			next       sql.NullString
		)
		if err := rows.Scan(&id, &phase, &left, &next, &last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("visits: %w", err)
		}
		if !bytes.Equal(id, current) {
			c.countInto(counts, phases, cutoff)
			current, c = append(current[:0], id...), contactPhases{}
		}
		c.visit(contact.Phase(phase), !left.Valid || left.Int64 > q.asOf, contact.Phase(next.String), last.Int64)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("visits: %w", err)
	}
	c.countInto(counts, phases, cutoff)
	return counts, nil
}

// contactPhases is what one contact's visits say, as bit sets over the lifecycle phases (bit
// Rank-1; exits are not counted as phases).
type contactPhases struct {
	entered, lost, churned uint16
	// open is the phase of the contact's open visit at as_of ("" when none), idleSince its
	// last activity.
	open      contact.Phase
	idleSince int64
}

// visit adds one visit, in visit order.
func (c *contactPhases) visit(phase contact.Phase, open bool, next contact.Phase, lastActivity int64) {
	c.open = ""
	rank := phase.Rank()
	if rank == 0 {
		return // an exit: not a phase of the drop-off
	}
	bit := uint16(1) << (rank - 1)
	c.entered |= bit
	switch {
	case open:
		c.open, c.idleSince = phase, lastActivity
	case next == contact.Lost:
		c.lost |= bit
	case next == contact.Churned:
		c.churned |= bit
	}
}

// countInto adds the contact to the counts of its phases; it is dormant when its last activity
// is at or before cutoff.
func (c *contactPhases) countInto(counts map[contact.Phase]*phaseCounts, phases []contact.Phase, cutoff int64) {
	if c.entered == 0 {
		return
	}
	for i, p := range phases {
		bit := uint16(1) << i
		if c.entered&bit == 0 {
			continue
		}
		pc := counts[p]
		pc.entered++
		if c.lost&bit != 0 {
			pc.lost++
		}
		if c.churned&bit != 0 {
			pc.churned++
		}
		if (c.lost|c.churned)&bit != 0 {
			pc.exited++
		}
	}
	if c.open != "" && c.idleSince <= cutoff {
		pc := counts[c.open]
		pc.dormant++
		if bit := uint16(1) << (c.open.Rank() - 1); (c.lost|c.churned)&bit == 0 {
			pc.dormantNotExited++
		}
	}
}

func nilRank(f *float64) int {
	if f == nil {
		return 1
	}
	return 0
}

// lostDeals reads the standing losses by stage, reason and currency: kept per cohort, or read
// from the losses as of as_of.
func (q *query) lostDeals(ctx context.Context) ([]LostDeals, error) {
	var stmt string
	var args []any
	if q.now {
		stmt = `SELECT c.stage, c.reason, c.currency, CAST(SUM(c.losses) AS BIGINT), CAST(SUM(c.amount) AS BIGINT)
			FROM ` + q.t.Name(tableLostDeals) + ` c WHERE c.losses <> 0` + q.cohort.where +
			` GROUP BY c.stage, c.reason, c.currency ORDER BY c.currency`
		args = q.cohort.args
	} else {
		stmt = `SELECT l.from_stage, l.reason, l.currency, COUNT(*), CAST(SUM(l.amount) AS BIGINT) FROM ` + q.t.Name(tableDealLosses) + ` l`
		args = []any{q.asOf, q.asOf}
		where := ` WHERE l.lost_at <= ? AND (l.reopened_at IS NULL OR l.reopened_at > ?)`
		if q.cohort.where != "" {
			stmt += ` JOIN ` + q.t.Name(tableContacts) + ` c ON c.contact_id = l.contact_id`
			where += q.cohort.where
			args = append(args, q.cohort.args...)
		}
		stmt += where + ` GROUP BY l.from_stage, l.reason, l.currency ORDER BY l.currency`
	}
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("lost deals: %w", err)
	}
	groups := map[[2]string]*LostDeals{}
	for rows.Next() {
		var (
			stage  deal.Stage
			reason deal.LostReason
			count  int
			amount domain.Money
		)
		if err := rows.Scan(&stage, &reason, &amount.Currency, &count, &amount.Amount); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lost deals: %w", err)
		}
		key := [2]string{string(stage), string(reason)}
		g := groups[key]
		if g == nil {
			g = &LostDeals{Stage: stage, Reason: reason}
			groups[key] = g
		}
		g.Count += count
		g.Amounts = append(g.Amounts, amount)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("lost deals: %w", err)
	}
	result := []LostDeals{}
	for _, g := range groups {
		result = append(result, *g)
	}
	stages, reasons := deal.Stages(), deal.LostReasons()
	slices.SortFunc(result, func(a, b LostDeals) int {
		return cmp.Or(compareListed(stages, a.Stage, b.Stage), compareListed(reasons, a.Reason, b.Reason))
	})
	return result, nil
}

// compareListed orders values by their place in list, values not in it last by value.
func compareListed[T ~string](list []T, a, b T) int {
	index := func(v T) int {
		if i := slices.Index(list, v); i >= 0 {
			return i
		}
		return len(list)
	}
	return cmp.Or(cmp.Compare(index(a), index(b)), cmp.Compare(a, b))
}

// page is a page of churned customers asked for: its size, and the churn it follows.
type page struct {
	limit int
	after *cursor
}

// cursor is the churn after which the next page starts, in the order of the list.
type cursor struct {
	LeftAt    int64  `json:"t"`
	ContactID string `json:"c"`
	Seq       int64  `json:"s"`
}

// page validates limit and cursor.
func (params Params) page() (page, error) {
	limit, err := paging.Limit(params.Limit, DefaultLimit, MaxLimit)
	if err != nil {
		return page{}, err
	}
	after, err := paging.Cursor(params.Cursor, "cursor", "is not a cursor of the churn points",
		func(c cursor) bool { return c.ContactID != "" && c.Seq >= 1 })
	if err != nil {
		return page{}, err
	}
	return page{limit: limit, after: after}, nil
}

// churns reads one page of the churns, found by the index of the visits that ended in a churn,
// and the cursor of the next page.
func (q *query) churns(ctx context.Context) ([]ChurnedCustomer, string, error) {
	stmt, args := q.churnsPage()
	rows, err := q.rows(ctx, stmt, args...)
	if err != nil {
		return nil, "", fmt.Errorf("churns: %w", err)
	}
	result := []ChurnedCustomer{}
	var (
		next    string
		lastSeq int64 // of the last churn in result
	)
	for rows.Next() {
		var (
			c                 ChurnedCustomer
			seq               int64
			churnedAt         int64
			wonAt, lastTouch  sql.NullInt64
			lastNPS, overdues sql.NullInt64
		)
		if err := rows.Scan(&c.ContactID, &seq, &c.Name, &c.FromPhase, &churnedAt, &wonAt, &lastNPS, &lastTouch, &overdues); err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("churns: %w", err)
		}
		if len(result) == q.page.limit {
			last := result[len(result)-1]
			next = paging.Encode(cursor{LeftAt: last.ChurnedAt.UnixMicro(), ContactID: last.ContactID, Seq: lastSeq})
			break
		}
		lastSeq = seq
		c.ChurnedAt = time.UnixMicro(churnedAt).UTC()
		c.WonAt, c.DaysWonToChurn = since(wonAt, churnedAt)
		c.LastTouchpointAt, c.DaysSinceLastTouchpoint = since(lastTouch, churnedAt)
		if lastNPS.Valid {
			nps := int(lastNPS.Int64)
			c.LastNPS = &nps
		}
		c.OverdueTasks = int(overdues.Int64)
		result = append(result, c)
	}
	if err := closeRows(rows); err != nil {
		return nil, "", fmt.Errorf("churns: %w", err)
	}
	return result, next, nil
}

// churnsPage is the statement of a page of the churns.
func (q *query) churnsPage() (string, []any) {
	where, args := q.contacts()
	after := ""
	if c := q.page.after; c != nil {
		after = ` AND (v.left_at > ? OR (v.left_at = ? AND (v.contact_id > ? OR (v.contact_id = ? AND v.seq > ?))))`
		args = append(args, c.LeftAt, c.LeftAt, c.ContactID, c.ContactID, c.Seq)
	}
	v, tp, s, k := q.t.Name(visits.Table), q.t.Name(tableTouchpoints), q.t.Name(tableSurveys), q.t.Name(tableTasks)
	// next_phase is a literal: the partial index of churns is then usable.
	from := v + ` v JOIN ` + q.t.Name(tableContacts) + ` c ON c.contact_id = v.contact_id
		WHERE v.next_phase = 'churned' AND v.left_at <= ? AND`
	switch {
	case !q.cohort.month:
	case q.db.Dialect == projections.Postgres:
		// The churns of the contacts of one month, read contact by contact and sorted: not
		// every churn until the page is full (those of a month captured late come after
		// most churns), nor every churn hashed with the month's contacts, which a plan made
		// for any month does. The lateral subquery's ORDER BY keeps it from being joined as
		// a table.
		from = q.t.Name(tableContacts) + ` c CROSS JOIN LATERAL (SELECT v.contact_id, v.seq, v.phase, v.left_at FROM ` + v + ` v
			WHERE v.contact_id = c.contact_id AND v.next_phase = 'churned' AND v.left_at <= ? ORDER BY v.seq) v
		WHERE`
	default:
		// SQLite keeps the left table of a CROSS JOIN outside: the month's contacts first.
		from = q.t.Name(tableContacts) + ` c CROSS JOIN ` + v + ` v
		WHERE v.contact_id = c.contact_id AND v.next_phase = 'churned' AND v.left_at <= ? AND`
	}
	return `SELECT v.contact_id, v.seq, c.name, v.phase, v.left_at,
		(SELECT MAX(w.entered_at) FROM ` + v + ` w WHERE w.contact_id = v.contact_id AND w.seq <= v.seq AND w.phase = ?),
		(SELECT s.nps FROM ` + s + ` s WHERE s.contact_id = v.contact_id AND s.occurred_at <= v.left_at
			ORDER BY s.occurred_at DESC, s.position DESC LIMIT 1),
		(SELECT MAX(tp.occurred_at) FROM ` + tp + ` tp WHERE tp.contact_id = v.contact_id AND tp.occurred_at <= v.left_at),
		(SELECT COUNT(*) FROM ` + k + ` k WHERE k.contact_id = v.contact_id AND k.from_at <= v.left_at
			AND k.overdue_at <= v.left_at AND (k.until_at IS NULL OR k.until_at > v.left_at))
		FROM ` + from + where + after + `
		ORDER BY v.left_at, v.contact_id, v.seq LIMIT ?`,
		append(append([]any{string(contact.Won), q.asOf}, args...), q.page.limit+1)
}

// since is the time of from and the days from it to the instant to, or nils when from is NULL.
func since(from sql.NullInt64, to int64) (*time.Time, *float64) {
	if !from.Valid {
		return nil, nil
	}
	at := time.UnixMicro(from.Int64).UTC()
	d := round.Days(max(to-from.Int64, 0))
	return &at, &d
}

func closeRows(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}
