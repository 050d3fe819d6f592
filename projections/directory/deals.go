package directory

import (
	"context"
	"database/sql"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/probability"
)

// DealParams is a question asked of the deals list. Every filter is optional.
type DealParams struct {
	// Status is open, won or lost.
	Status string `json:"status,omitempty"`
	// Stage is any stage, won and lost included.
	Stage string `json:"stage,omitempty"`
	Owner string `json:"owner,omitempty"`
	// ContactID keeps the deals counted for a contact: its own and those of the duplicates
	// merged into it.
	ContactID string `json:"contact_id,omitempty"`
	// AccountID keeps the deals of the account's contacts.
	AccountID string `json:"account_id,omitempty"`
	// Q finds deals whose title holds it, normalised.
	Q string `json:"q,omitempty"`
	// Dates (YYYY-MM-DD), all bounds inclusive; a deal without the date is not kept.
	ExpectedCloseFrom string `json:"expected_close_from,omitempty"`
	ExpectedCloseTo   string `json:"expected_close_to,omitempty"`
	ClosedFrom        string `json:"closed_from,omitempty"`
	ClosedTo          string `json:"closed_to,omitempty"`
	// Sort is created (default), title, expected_close or closed, "-" first for descending.
	Sort   string `json:"sort,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	// At is the time the question is about (now, or the moment a time-travel question is
	// about): each row's probability is its stage's in force then (see probability.InForce).
	// Zero: those of the latest change recorded.
	At time.Time `json:"at,omitzero"`
}

// Deals is a page of the deals list.
type Deals struct {
	Total      int64       `json:"total"`
	Deals      []DealEntry `json:"deals"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// DealEntry is a deal as a list shows it.
type DealEntry struct {
	DealID string `json:"deal_id"`
	Title  string `json:"title"`
	// ContactID is the contact the deal was opened for; CountsFor the contact it counts for
	// (the survivor when that contact was merged).
	ContactID   string       `json:"contact_id"`
	CountsFor   string       `json:"counts_for"`
	ContactName string       `json:"contact_name"`
	AccountID   string       `json:"account_id,omitempty"`
	Owner       string       `json:"owner"`
	Amount      domain.Money `json:"amount"`
	Status      string       `json:"status"`
	Stage       deal.Stage   `json:"stage"`
	// Probability is the stage's win probability in percent in force at the question's time
	// (the settings' latest change that occurred at or before it, the stage's default before
	// any; 100 won, 0 lost).
	Probability   int         `json:"probability"`
	ExpectedClose domain.Date `json:"expected_close,omitempty"`
	ClosedOn      domain.Date `json:"closed_on,omitempty"`
	LostReason    string      `json:"lost_reason,omitempty"`
	OpenedAt      time.Time   `json:"opened_at"`
}

var dealSorts = map[string]sortKey{
	"created":        {column: "opened_at", numeric: true},
	"title":          {column: "sort_title"},
	"expected_close": {column: "expected_close"},
	"closed":         {column: "closed_on"},
}

// QueryDeals answers a page of the deals list from the tables of set t.
func QueryDeals(ctx context.Context, db *projections.DB, t projections.Tables, p DealParams) (Deals, error) {
	l, err := p.list(db.Dialect, t)
	if err != nil {
		return Deals{}, err
	}
	var percents probability.Percents
	l.prepare = func(ctx context.Context, tx *sql.Tx) (err error) {
		percents, err = probability.InForce(ctx, tx, db.Dialect, t, questionTime(p.At))
		return err
	}
	out := Deals{Deals: []DealEntry{}}
	out.Total, out.NextCursor, err = l.read(ctx, db, func(rows *sql.Rows) (cursor, error) {
		var (
			e                    DealEntry
			stage, close, closed string
			sortTitle            string
			opened               int64
		)
		if err := rows.Scan(&e.DealID, &e.Title, &e.ContactID, &e.CountsFor, &e.ContactName, &e.AccountID, &e.Owner,
			&e.Amount.Amount, &e.Amount.Currency, &e.Status, &stage, &close, &closed, &e.LostReason, &opened, &sortTitle); err != nil {
			return cursor{}, err
		}
		e.Stage, e.ExpectedClose, e.ClosedOn = deal.Stage(stage), domain.Date(close), domain.Date(closed)
		e.Probability = percents.Of(e.Stage)
		e.OpenedAt = time.UnixMicro(opened).UTC()
		out.Deals = append(out.Deals, e)
		cur := cursor{ID: e.DealID}
		switch l.order.key.column {
		case "opened_at":
			cur.Num = opened
		case "sort_title":
			cur.Text = sortTitle
		case "expected_close":
			cur.Text = close
		case "closed_on":
			cur.Text = closed
		}
		return cur, nil
	})
	if err != nil {
		return Deals{}, err
	}
	return out, nil
}

func (p DealParams) list(d projections.Dialect, t projections.Tables) (*list, error) {
	o, err := parseOrder(p.Sort, "created", dealSorts)
	if err != nil {
		return nil, err
	}
	l := &list{
		from: t.Name(tableDeals) + " x JOIN " + t.Name(tableContacts) + " c ON c.contact_id = x.counts_for",
		id:   "deal_id",
		cols: `x.deal_id, x.title, x.contact_id, x.counts_for, c.name, c.account_id, x.owner, x.amount, x.currency,
			x.status, x.stage, x.expected_close, x.closed_on, x.lost_reason, x.opened_at, x.sort_title`,
		order: o,
	}
	if l.limit, err = limitOf(p.Limit); err != nil {
		return nil, err
	}
	if l.after, err = decodeCursor(p.Cursor, o); err != nil {
		return nil, err
	}
	if err := p.filter(&l.filter); err != nil {
		return nil, err
	}
	l.matchesFirst(d, t.Name(tableDeals), p.Q)
	p.keep(l, t)
	return l, nil
}

// keep makes the list read what the fold keeps for it: a search of one or two characters
// the postings of the titles (their number the total when nothing else filters), and a list
// with no filter, or a status alone, its total. A filter that does not name the account
// needs no contact for its total.
func (p DealParams) keep(l *list, t projections.Tables) {
	l.postings = shortPostings(t, tableDeals, tableDealGrams, tableDealCounts, "opened_at", p.Q)
	if p.AccountID == "" {
		l.countFrom = t.Name(tableDeals) + " x"
	}
	others := p.Stage != "" || p.Owner != "" || p.ContactID != "" || p.AccountID != "" ||
		p.ExpectedCloseFrom != "" || p.ExpectedCloseTo != "" || p.ClosedFrom != "" || p.ClosedTo != ""
	switch {
	case others:
	case p.Status != "" && Normalize(p.Q) == "":
		l.kept = &keptTotal{stmt: "SELECT COALESCE(SUM(deals), 0) FROM " + t.Name(tableDealStatuses) + " WHERE status = ?",
			args: []any{p.Status}}
	case p.Status != "":
	case l.postings != nil:
		l.searchAlone = true
	case Normalize(p.Q) == "":
		l.kept = &keptTotal{stmt: "SELECT COALESCE(SUM(matches), 0) FROM " + t.Name(tableDealCounts) + " WHERE gram = ''"}
	}
}

func (p DealParams) filter(f *filter) error {
	switch p.Status {
	case "", statusOpen, statusWon, statusLost:
	default:
		return domain.Invalid("status", "%q is not open, won or lost", p.Status)
	}
	if p.Stage != "" && !isStage(p.Stage) {
		return domain.Invalid("stage", "%q is not a stage", p.Stage)
	}
	for _, eq := range []struct{ column, value string }{
		{"x.status", p.statusBesideStage()}, {"x.stage", p.Stage}, {"x.owner", p.Owner}, {"x.counts_for", p.ContactID}, {"c.account_id", p.AccountID},
	} {
		if eq.value != "" {
			f.add(eq.column+" = ?", eq.value)
		}
	}
	for _, r := range []struct {
		field, value, column, op string
	}{
		{"expected_close_from", p.ExpectedCloseFrom, "expected_close", ">="},
		{"expected_close_to", p.ExpectedCloseTo, "expected_close", "<="},
		{"closed_from", p.ClosedFrom, "closed_on", ">="},
		{"closed_to", p.ClosedTo, "closed_on", "<="},
	} {
		if r.value == "" {
			continue
		}
		if err := checkDate(r.field, r.value); err != nil {
			return err
		}
		f.add("x."+r.column+" <> '' AND x."+r.column+" "+r.op+" ?", r.value)
	}
	return nil
}

// statusBesideStage is the status the list is filtered by beside its stage: none when the
// stage names it (won and lost their own, any other stage open), so that the list of a stage
// is one question whether the status is asked too or not, read by the stage's indexes (with
// the status as well, the database may read the status's index instead, in the page's order,
// and check the stage of every deal of that status, those of the other stages too). A status
// that the stage does not name keeps its condition: no deal is in both.
func (p DealParams) statusBesideStage() string {
	if p.Stage == "" || p.Status != statusOf(deal.Stage(p.Stage)) {
		return p.Status
	}
	return ""
}

// statusOf is the status of a deal in stage s.
func statusOf(s deal.Stage) string {
	switch s {
	case deal.StageWon:
		return statusWon
	case deal.StageLost:
		return statusLost
	}
	return statusOpen
}

func isStage(s string) bool {
	for _, st := range deal.Stages() {
		if string(st) == s {
			return true
		}
	}
	return false
}

// questionTime is the time whose stage probabilities a question weighs with: at, or when zero
// the end of time, at which every change recorded is in force.
func questionTime(at time.Time) time.Time {
	if at.IsZero() {
		return time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
	}
	return at
}
