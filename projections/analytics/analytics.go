// Package analytics is the sales analytics read model (projection "sales_analytics"): the KPIs
// of a period (new leads, phase conversions, deals opened, won and lost, win rates, revenue,
// sales cycle and lead-to-won medians, tasks on time, late and overdue, activity per owner),
// the forecast of open deals by expected close month, and the NPS of a period, as
// ../../../shared DOMAIN.md's "Exact definitions of the sales analytics" define them, periods
// and business dates taken in the business time zone.
//
// Every fact the figures count is a part (projections/explain): the contact, deal or task it
// is about, the event that made it, the bucket it counts in (a business date, or a period's
// label for the NPS) and what it adds; a later event that takes a fact away (a deal reopened,
// a task done, a newer survey in the period, a duplicate merged) revokes the part at its
// business time. Beside the parts, the fold keeps what a question about now reads: the
// counts and amounts of every figure per day and per month (per kind of period for the NPS),
// for every contact and per owner, channel and segment; the lengths of the two medians as
// counts per day and per ten days (projections/lengths; a median is found in the coarse bins,
// then in the day bins of one of them); the open deals per expected close date, owner and
// currency; and the changes of those counts (but the NPS's) per business date they became
// known (deltas), with apart those known once their period had ended (late), so that a
// question as of an earlier time reads, for the periods ended by its business date, the kept
// counts less the late changes known from that date on, for the others the changes known
// before it, and the parts made or revoked on that date up to as_of. Its medians are the kept
// lengths of the periods ended by then, fixed by the parts of lengths made or revoked after
// as_of, and the parts of lengths standing then of the other periods. The NPS as of an
// earlier time, and any question with two filters, sum the parts standing then.
//
// Tables (prefix from projections.Tables):
//
//	contacts  contact_id, created_at, owner, channel, segment (current), entered (bit rank-1
//	          of each lifecycle phase entered), advanced (bit of each phase left for a later
//	          one since its first entry), first_<phase> (the first entry into each phase),
//	          first_owner_<phase>, first_segment_<phase> (the owner and segment then)
//	deals     deal_id, contact_id, owner, opened_at, opened_position, opened_id, amount,
//	          currency, stage, expected_close, status (open, won, lost)
//	tasks     task_id, contact_id, assignee, due, open_position (of the part counting the
//	          task open; 0 once done or cancelled)
//	latest    contact_id, grain, period: the position, time and category of the contact's
//	          latest survey in the period (NPS)
//	parts     see projections/explain; figures below; indexed by at and until_at (the parts
//	          made or revoked on a business date)
//	counts    dim ('', owner, channel, segment; channel_owner, segment_owner for the
//	          activity), value, grain (day, month; week, quarter, year for the NPS), period
//	          (its first date), figure: count, amount
//	deltas    dim, value, grain, period, figure as counts (not the NPS), known (the business
//	          date the change became known: a part's at, its revocation's until_at, or its
//	          at when revoked before it was made): count, amount
//	late      the deltas known once their period had ended (known on or after the day after
//	          a day, the month after a month), as deltas
//	bins      figure, dim, value, grain, width, period, bin: count (lengths, see
//	          projections/lengths; width 100, a day, and 1000, ten days)
//	exact     figure, dim, value, grain, period, micros: count
//	forecast  grain (day, month), bucket (the expected close date or its month's first date;
//	          '' when none), owner, currency, stage: count, amount of the open deals (the
//	          weighted amount is the amount x the stage's probability in force at as_of, at
//	          question time)
//	stage_probabilities the probabilities set in the settings, by the time of each change
//	          (package probability)
//	horizon   id (always 1), at: the latest business time of a part or of its revocation
//
// Figures (parts): lead/<channel>, entered/<phase>, advanced/<phase> (bucket: the date of
// the phase's first entry), opened, won/<currency>, lost/<currency>, cycle and lead_to_won
// (measure: the length), task/open, task/on_time, task/late (bucket: the due date),
// touch/<kind>, nps/<kind of period>/<promoter|passive|detractor> (bucket: the period),
// forecast (bucket: the expected close date; measure: the ordinal of the deal's open stage,
// see stageOrdinal, so that a stage change moves the deal in the kept sums).
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package analytics

import (
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/probability"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "sales_analytics"

// Projection returns the sales analytics in UTC.
func Projection() *readmodel.Model { return ProjectionIn(time.UTC) }

// ProjectionIn returns the sales analytics with periods and business dates in zone loc: a zone
// of its own is a version of its own (period.Version).
func ProjectionIn(loc *time.Location) *readmodel.Model { return period.Define(loc, 5, declare) }

// declare declares the tables and the fold of the sales analytics in the business zone.
func declare(zone *time.Location) readmodel.Spec {
	m := newModel(zone)
	return readmodel.Spec{Name: Name, Fold: m.fold, Tables: []readmodel.AnyTable{m.contacts, m.deals, m.tasks, m.latest, m.parts,
		m.counts, m.deltas, m.late, m.bins, m.exact, m.forecast, m.horizon.Table(), m.probabilities.Table()}}
}

// Base names of the tables.
const (
	tableContacts = "contacts"
	tableDeals    = "deals"
	tableTasks    = "tasks"
	tableLatest   = "latest"
	tableParts    = "parts"
	tableCounts   = "counts"
	tableDeltas   = "deltas"
	tableLate     = "late"
	tableBins     = "bins"
	tableExact    = "exact"
	tableForecast = "forecast"
)

// phases is the number of lifecycle phases.
const phases = 7

type contactRow struct {
	contactID               string
	createdAt               int64
	owner, channel, segment string
	entered, advanced       int64
	first                   [phases]int64
	// The owner and segment of the contact at its first entry into each phase: its advance
	// from the phase counts for them, as the entry does.
	firstOwner, firstSegment [phases]string
}

type dealRow struct {
	dealID, contactID, owner string
	openedAt, openedPosition int64
	openedID                 string
	amount                   int64
	currency, stage          string
	expectedClose, status    string
}

type taskRow struct {
	taskID, contactID, assignee, due string
	openPosition                     int64
}

type latestRow struct {
	contactID, grain, period string
	position, at             int64
	category                 string
}

type countRow struct {
	grain, period, dim, value, figure string
	count, amount                     int64
}

// deltaRow is what the parts of a figure known on one business date add to a count (a part
// adds on the date it is made, and takes back on the date it is revoked).
type deltaRow struct {
	dim, value, grain, period, figure, known string
	count, amount                            int64
}

type binRow struct {
	grain, period, dim, value, figure string
	width, bin, count                 int64
}

type exactRow struct {
	figure, dim, value, grain, period string
	micros, count                     int64
}

type forecastRow struct {
	grain, bucket, owner, currency, stage string
	count, amount                         int64
}

// model holds the declarations of the tables the fold writes, and the business zone.
type model struct {
	zone     *time.Location
	contacts *readmodel.Table[contactRow]
	deals    *readmodel.Table[dealRow]
	tasks    *readmodel.Table[taskRow]
	latest   *readmodel.Table[latestRow]
	parts    *readmodel.Table[explain.Part]
	counts   *readmodel.Table[countRow]
	deltas   *readmodel.Table[deltaRow]
	late     *readmodel.Table[deltaRow]
	bins     *readmodel.Table[binRow]
	exact    *readmodel.Table[exactRow]
	forecast *readmodel.Table[forecastRow]
	horizon  horizon.Horizon
	// probabilities are the stage probabilities in force over time, which weigh the forecast.
	probabilities probability.History
}

func newModel(zone *time.Location) *model {
	type (
		c  = contactRow
		d  = dealRow
		t  = taskRow
		l  = latestRow
		cr = countRow
		dr = deltaRow
		br = binRow
		er = exactRow
		fr = forecastRow
	)
	m := &model{zone: zone, probabilities: probability.NewHistory()}
	contactColumns := []readmodel.Column[c]{
		readmodel.Text("contact_id", func(r *c) *string { return &r.contactID }),
		readmodel.BigInt("created_at", func(r *c) *int64 { return &r.createdAt }),
		readmodel.Text("owner", func(r *c) *string { return &r.owner }),
		readmodel.Text("channel", func(r *c) *string { return &r.channel }),
		readmodel.Text("segment", func(r *c) *string { return &r.segment }),
		readmodel.Integer("entered", func(r *c) *int64 { return &r.entered }),
		readmodel.Integer("advanced", func(r *c) *int64 { return &r.advanced }),
	}
	for i, p := range contact.Phases() {
		contactColumns = append(contactColumns, readmodel.BigInt("first_"+string(p), func(r *c) *int64 { return &r.first[i] }),
			readmodel.Text("first_owner_"+string(p), func(r *c) *string { return &r.firstOwner[i] }),
			readmodel.Text("first_segment_"+string(p), func(r *c) *string { return &r.firstSegment[i] }))
	}
	m.contacts = readmodel.NewTable(tableContacts, 1, contactColumns...)
	m.deals = readmodel.NewTable(tableDeals, 1,
		readmodel.Text("deal_id", func(r *d) *string { return &r.dealID }),
		readmodel.Text("contact_id", func(r *d) *string { return &r.contactID }),
		readmodel.Text("owner", func(r *d) *string { return &r.owner }),
		readmodel.BigInt("opened_at", func(r *d) *int64 { return &r.openedAt }),
		readmodel.BigInt("opened_position", func(r *d) *int64 { return &r.openedPosition }),
		readmodel.Text("opened_id", func(r *d) *string { return &r.openedID }),
		readmodel.BigInt("amount", func(r *d) *int64 { return &r.amount }),
		readmodel.Text("currency", func(r *d) *string { return &r.currency }),
		readmodel.Text("stage", func(r *d) *string { return &r.stage }),
		readmodel.Text("expected_close", func(r *d) *string { return &r.expectedClose }),
		readmodel.Text("status", func(r *d) *string { return &r.status }))
	m.tasks = readmodel.NewTable(tableTasks, 1,
		readmodel.Text("task_id", func(r *t) *string { return &r.taskID }),
		readmodel.Text("contact_id", func(r *t) *string { return &r.contactID }),
		readmodel.Text("assignee", func(r *t) *string { return &r.assignee }),
		readmodel.Text("due", func(r *t) *string { return &r.due }),
		readmodel.BigInt("open_position", func(r *t) *int64 { return &r.openPosition }))
	m.latest = readmodel.NewTable(tableLatest, 3,
		readmodel.Text("contact_id", func(r *l) *string { return &r.contactID }),
		readmodel.Text("grain", func(r *l) *string { return &r.grain }),
		readmodel.Text("period", func(r *l) *string { return &r.period }),
		readmodel.BigInt("position", func(r *l) *int64 { return &r.position }),
		readmodel.BigInt("at", func(r *l) *int64 { return &r.at }),
		readmodel.Text("category", func(r *l) *string { return &r.category }))
	// The parts made or revoked at a business time are found by it: a question as of a past
	// time reads those of its own business date (see deltas).
	m.parts = explain.NewTable(tableParts).WithIndexes(readmodel.Index{Name: "at", Columns: "at"},
		readmodel.Index{Name: "until", Columns: "until_at", Where: "until_at IS NOT NULL"})
	// Keyed by what a question filters on first: it reads one copy's rows over a range of
	// periods, in key order.
	m.counts = readmodel.NewTable(tableCounts, 5,
		readmodel.Text("dim", func(r *cr) *string { return &r.dim }),
		readmodel.Text("value", func(r *cr) *string { return &r.value }),
		readmodel.Text("grain", func(r *cr) *string { return &r.grain }),
		readmodel.Text("period", func(r *cr) *string { return &r.period }),
		readmodel.Text("figure", func(r *cr) *string { return &r.figure }),
		readmodel.BigInt("count", func(r *cr) *int64 { return &r.count }),
		readmodel.BigInt("amount", func(r *cr) *int64 { return &r.amount })).
		Clustered()
	deltaColumns := []readmodel.Column[dr]{
		readmodel.Text("dim", func(r *dr) *string { return &r.dim }),
		readmodel.Text("value", func(r *dr) *string { return &r.value }),
		readmodel.Text("grain", func(r *dr) *string { return &r.grain }),
		readmodel.Text("period", func(r *dr) *string { return &r.period }),
		readmodel.Text("figure", func(r *dr) *string { return &r.figure }),
		readmodel.Text("known", func(r *dr) *string { return &r.known }),
		readmodel.BigInt("count", func(r *dr) *int64 { return &r.count }),
		readmodel.BigInt("amount", func(r *dr) *int64 { return &r.amount }),
	}
	m.deltas = readmodel.NewTable(tableDeltas, 6, deltaColumns...).Clustered()
	// The changes known once their period had ended: a question as of a later date reads the
	// kept counts of the periods ended by then less these known from that date on.
	m.late = readmodel.NewTable(tableLate, 6, deltaColumns...).Clustered()
	m.bins = readmodel.NewTable(tableBins, 7,
		readmodel.Text("figure", func(r *br) *string { return &r.figure }),
		readmodel.Text("dim", func(r *br) *string { return &r.dim }),
		readmodel.Text("value", func(r *br) *string { return &r.value }),
		readmodel.Text("grain", func(r *br) *string { return &r.grain }),
		readmodel.BigInt("width", func(r *br) *int64 { return &r.width }),
		readmodel.Text("period", func(r *br) *string { return &r.period }),
		readmodel.BigInt("bin", func(r *br) *int64 { return &r.bin }),
		readmodel.BigInt("count", func(r *br) *int64 { return &r.count })).
		Clustered()
	m.exact = readmodel.NewTable(tableExact, 6,
		readmodel.Text("figure", func(r *er) *string { return &r.figure }),
		readmodel.Text("dim", func(r *er) *string { return &r.dim }),
		readmodel.Text("value", func(r *er) *string { return &r.value }),
		readmodel.Text("grain", func(r *er) *string { return &r.grain }),
		readmodel.Text("period", func(r *er) *string { return &r.period }),
		readmodel.BigInt("micros", func(r *er) *int64 { return &r.micros }),
		readmodel.BigInt("count", func(r *er) *int64 { return &r.count })).
		Clustered()
	m.forecast = readmodel.NewTable(tableForecast, 5,
		readmodel.Text("grain", func(r *fr) *string { return &r.grain }),
		readmodel.Text("bucket", func(r *fr) *string { return &r.bucket }),
		readmodel.Text("owner", func(r *fr) *string { return &r.owner }),
		readmodel.Text("currency", func(r *fr) *string { return &r.currency }),
		readmodel.Text("stage", func(r *fr) *string { return &r.stage }),
		readmodel.BigInt("count", func(r *fr) *int64 { return &r.count }),
		readmodel.BigInt("amount", func(r *fr) *int64 { return &r.amount })).
		Clustered()
	m.horizon = horizon.New()
	return m
}
