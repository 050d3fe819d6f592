// Package board is the pipeline board read model (projection "pipeline_board"): the open deals
// of each pipeline stage as cards, with counts, totals and weighted totals per currency, and
// the stage velocity (median days spent in a stage by the deals that left it).
//
// The tables keep every stay of a deal in an open stage as an interval, so the board can be
// answered as of any business time T: a deal is on the board at T in the stage whose interval
// contains T (entered at or before T, not left at or before T).
//
// Beside the intervals, the fold keeps what the board now reads (see kept.go): the count and
// totals of the open deals per owner, stage and currency, the lengths of the closed stays per
// stage (of every owner, and of each) and the horizon, the latest time an interval was entered
// or left. A board as of the horizon or later reads those rows and one page of cards per
// stage; an earlier as_of reads the intervals.
//
// Tables (prefix from projections.Tables):
//
//	contacts   contact_id, name: the current name, for the cards
//	deals      deal_id, contact_id, title, owner, expected_close ('' when none), amount and
//	           currency (the final amount once won), stage (current, won or lost included),
//	           last_seq (the seq of the deal's latest interval), version (the stream version of
//	           the deal's latest event, of any type: a card's If-Match)
//	intervals  deal_id, seq (1, 2, ... per deal), stage (an open stage), entered_at, left_at
//	           (NULL while the deal is in it), amount and currency during the stay, the
//	           deal's owner (so that one owner's board reads only the owner's intervals), and
//	           position and event_id (of the event that entered the stage: an open interval
//	           is the part of its stage's count and totals)
//	stage_totals owner, stage, currency: deals and amount of the open intervals (added to,
//	           never read, by the fold: a row back at no deals stays, filtered); the weighted
//	           amount is the stage's probability in force at as_of times the amount, at
//	           question time
//	stage_probabilities the probabilities set in the settings, by the time of each change
//	           (package probability)
//	stay_bins  dim ('' for every owner, 'owner'), value (the owner), stage, width, bin, count:
//	           the closed intervals by length (see package lengths)
//	stays      stage, micros, owner, count: the closed intervals by exact length
//	horizon    id (always 1), at
//	parts      see projections/explain: what each figure is made of, read only when a figure
//	           is explained. Figures: open/<stage>, one part per stay that ended in an open
//	           stage (the deal, the event that entered the stage, at entered_at, until
//	           left_at, for the interval's owner, with its amount and currency), written when
//	           the stay ends (the stays still open are read from the intervals): the stage's
//	           count and totals; stay/<stage>, one part per stay that ended (the event that
//	           left the stage, at left_at; measure: its length): the stage's velocity
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package board

import (
	"database/sql"
	"strings"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/probability"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "pipeline_board"

// Projection returns the pipeline board: its tables and its fold.
func Projection() *readmodel.Model {
	m := newModel()
	return readmodel.Define(readmodel.Spec{
		Name: Name,
		// 8: the intervals of one owner indexed by stage and entry.
		Version: 8,
		Tables: []readmodel.AnyTable{m.contacts, m.deals, m.intervals, m.totals, m.stayBins, m.stays, m.horizon.Table(),
			m.probabilities.Table(), m.parts},
		Fold: m.fold,
	})
}

// Base names of the tables.
const (
	tableContacts  = "contacts"
	tableDeals     = "deals"
	tableIntervals = "intervals"
	tableTotals    = "stage_totals"
	tableStayBins  = "stay_bins"
	tableStays     = "stays"
	tableParts     = "parts"
)

type contactRow struct {
	contactID, name string
}

type dealRow struct {
	dealID, contactID, title, owner, expectedClose string
	amount                                         int64
	currency, stage                                string
	lastSeq                                        int64
	version                                        int64
}

type intervalRow struct {
	dealID    string
	seq       int64
	stage     string
	enteredAt int64
	leftAt    sql.NullInt64
	amount    int64
	currency  string
	owner     string
	position  int64
	eventID   string
}

// model holds the declarations of the tables the fold writes.
type model struct {
	contacts  *readmodel.Table[contactRow]
	deals     *readmodel.Table[dealRow]
	intervals *readmodel.Table[intervalRow]
	totals    *readmodel.Table[totalRow]
	stayBins  *readmodel.Table[stayBinRow]
	stays     *readmodel.Table[stayRow]
	horizon   horizon.Horizon
	parts     *readmodel.Table[explain.Part]
	// probabilities are the stage probabilities in force over time.
	probabilities probability.History
}

func newModel() *model {
	type (
		c = contactRow
		d = dealRow
		i = intervalRow
	)
	m := &model{probabilities: probability.NewHistory()}
	m.intervals = readmodel.NewTable(tableIntervals, 2,
		readmodel.Text("deal_id", func(r *i) *string { return &r.dealID }),
		readmodel.Integer("seq", func(r *i) *int64 { return &r.seq }),
		readmodel.Text("stage", func(r *i) *string { return &r.stage }),
		readmodel.BigInt("entered_at", func(r *i) *int64 { return &r.enteredAt }),
		readmodel.NullBigInt("left_at", func(r *i) *sql.NullInt64 { return &r.leftAt }),
		readmodel.BigInt("amount", func(r *i) *int64 { return &r.amount }),
		readmodel.Text("currency", func(r *i) *string { return &r.currency }),
		readmodel.Text("owner", func(r *i) *string { return &r.owner }),
		readmodel.BigInt("position", func(r *i) *int64 { return &r.position }),
		readmodel.Text("event_id", func(r *i) *string { return &r.eventID })).
		WithIndexes(
			readmodel.Index{Name: "stage", Columns: "stage, entered_at, deal_id"},
			// The same of one owner, the board of an owner as of an earlier time: not the
			// stage's intervals of every owner.
			readmodel.Index{Name: "owner_stage", Columns: "owner, stage, entered_at, deal_id"},
			// The board now (Present), of everyone and of one owner: the open intervals of a
			// stage in card order; the closed ones by the time they were left, covering the
			// velocity (and the horizon).
			readmodel.Index{Name: "open", Columns: "stage, entered_at, deal_id", Where: "left_at IS NULL"},
			readmodel.Index{Name: "owner_open", Columns: "owner, stage, entered_at, deal_id", Where: "left_at IS NULL"},
			readmodel.Index{Name: "closed", Columns: "stage, left_at, entered_at", Where: "left_at IS NOT NULL"},
			readmodel.Index{Name: "owner_closed", Columns: "owner, stage, left_at, entered_at", Where: "left_at IS NOT NULL"},
		)
	m.parts = partsShape().NewTable(tableParts)
	m.contacts = readmodel.NewTable(tableContacts, 1,
		readmodel.Text("contact_id", func(r *c) *string { return &r.contactID }),
		readmodel.Text("name", func(r *c) *string { return &r.name }))
	m.deals = readmodel.NewTable(tableDeals, 1,
		readmodel.Text("deal_id", func(r *d) *string { return &r.dealID }),
		readmodel.Text("contact_id", func(r *d) *string { return &r.contactID }),
		readmodel.Text("title", func(r *d) *string { return &r.title }),
		readmodel.Text("owner", func(r *d) *string { return &r.owner }),
		readmodel.Text("expected_close", func(r *d) *string { return &r.expectedClose }),
		readmodel.BigInt("amount", func(r *d) *int64 { return &r.amount }),
		readmodel.Text("currency", func(r *d) *string { return &r.currency }),
		readmodel.Text("stage", func(r *d) *string { return &r.stage }),
		readmodel.Integer("last_seq", func(r *d) *int64 { return &r.lastSeq }),
		readmodel.BigInt("version", func(r *d) *int64 { return &r.version })).
		// A move reads the deal's current interval after the deal.
		Then(m.intervals, func(r *d) []any {
			if r.lastSeq == 0 {
				return nil
			}
			return []any{r.dealID, r.lastSeq}
		})
	m.declareKept()
	return m
}

// fold folds one event into the rows, and notes the version of every event of a deal's
// stream on the deal (a change the board does not show, such as a new title, changes the
// version a move must name). Events of other types are ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	if err := m.foldEvent(e, rows); err != nil {
		return err
	}
	if !strings.HasPrefix(e.Stream, dealStreamPrefix) {
		return nil
	}
	if d, ok := m.deals.Get(rows, strings.TrimPrefix(e.Stream, dealStreamPrefix)); ok && d.version < e.Version {
		d.version = e.Version
		m.deals.Upsert(rows, d)
	}
	return nil
}

// dealStreamPrefix starts the name of a deal's stream (deal.StreamName).
var dealStreamPrefix = deal.StreamName("")

func (m *model) foldEvent(e *readmodel.Event, rows *readmodel.Rows) error {
	at := e.OccurredAt.UnixMicro()
	switch e.Type {
	case settings.TypeStageProbabilitiesChanged:
		return m.probabilities.Fold(e, rows)
	case contact.TypeCreated:
		ev, err := readmodel.Decode[contact.Created](e)
		if err != nil {
			return err
		}
		m.contacts.Upsert(rows, contactRow{contactID: ev.ContactID, name: ev.Name.Display()})
	case contact.TypeDetailsChanged:
		ev, err := readmodel.Decode[contact.DetailsChanged](e)
		if err != nil {
			return err
		}
		if ev.Name == nil {
			return nil
		}
		// A renamed contact is stored: read, the batch path knows to upsert it.
		m.contacts.Get(rows, ev.ContactID)
		m.contacts.Upsert(rows, contactRow{contactID: ev.ContactID, name: ev.Name.Display()})
	case deal.TypeOpened:
		ev, err := readmodel.Decode[deal.Opened](e)
		if err != nil {
			return err
		}
		m.deals.Upsert(rows, dealRow{dealID: ev.DealID, contactID: ev.ContactID, title: ev.Title, owner: ev.Owner,
			expectedClose: string(ev.ExpectedClose), amount: ev.Amount.Amount, currency: ev.Amount.Currency, stage: string(ev.Stage)})
		return m.moveTo(rows, e, ev.DealID, ev.Stage, at)
	case deal.TypeStageChanged:
		ev, err := readmodel.Decode[deal.StageChanged](e)
		if err != nil {
			return err
		}
		return m.moveTo(rows, e, ev.DealID, ev.To, at)
	case deal.TypeReopened:
		ev, err := readmodel.Decode[deal.Reopened](e)
		if err != nil {
			return err
		}
		return m.moveTo(rows, e, ev.DealID, ev.To, at)
	case deal.TypeWon:
		ev, err := readmodel.Decode[deal.Won](e)
		if err != nil {
			return err
		}
		// The final amount is the deal's amount from now on, also after a reopening.
		if d, ok := m.deals.Get(rows, ev.DealID); ok {
			d.amount, d.currency = ev.Amount.Amount, ev.Amount.Currency
			m.deals.Upsert(rows, d)
		}
		return m.moveTo(rows, e, ev.DealID, deal.StageWon, at)
	case deal.TypeLost:
		ev, err := readmodel.Decode[deal.Lost](e)
		if err != nil {
			return err
		}
		return m.moveTo(rows, e, ev.DealID, deal.StageLost, at)
	}
	return nil
}

// moveTo closes the deal's current interval, if open, at at and records stage as the deal's
// stage; an open stage starts a new interval there.
func (m *model) moveTo(rows *readmodel.Rows, e *readmodel.Event, dealID string, stage deal.Stage, at int64) error {
	d, err := m.deals.Need(rows, dealID)
	if err != nil {
		return err
	}
	if d.lastSeq > 0 {
		if iv, ok := m.intervals.Get(rows, dealID, d.lastSeq); ok && !iv.leftAt.Valid {
			iv.leftAt = sql.NullInt64{Int64: at, Valid: true}
			m.intervals.Upsert(rows, iv)
			m.keepClosed(rows, iv)
			m.partsClosed(rows, e, iv)
		}
	}
	if stage.IsOpen() {
		d.lastSeq++
		iv := intervalRow{dealID: dealID, seq: d.lastSeq, stage: string(stage), enteredAt: at,
			amount: d.amount, currency: d.currency, owner: d.owner, position: e.Position, eventID: e.ID}
		m.intervals.Upsert(rows, iv)
		m.keepOpened(rows, iv)
	}
	d.stage = string(stage)
	m.deals.Upsert(rows, d)
	return nil
}
