package directory

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
)

// ContactParams is a question asked of the contacts directory. Every filter is optional.
type ContactParams struct {
	// Q finds contacts whose name, email, phone or company holds it, normalised (see
	// Normalize).
	Q       string `json:"q,omitempty"`
	Phase   string `json:"phase,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Segment string `json:"segment,omitempty"`
	Channel string `json:"channel,omitempty"`
	// AccountID keeps the contacts of one account.
	AccountID string `json:"account_id,omitempty"`
	// OptedOut is true (opted out of any channel), false (of none) or a consent channel.
	OptedOut string `json:"opted_out,omitempty"`
	// CreatedFrom and CreatedTo bound the creation time: RFC 3339 times or dates, a date
	// standing for its whole day (UTC); both inclusive.
	CreatedFrom string `json:"created_from,omitempty"`
	CreatedTo   string `json:"created_to,omitempty"`
	// Sort is name (default), created, last_activity or phase, "-" first for descending.
	Sort   string `json:"sort,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// Contacts is a page of the directory.
type Contacts struct {
	// Total is the number of contacts that match, on every page.
	Total      int64          `json:"total"`
	Contacts   []ContactEntry `json:"contacts"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// ContactEntry is a contact as a list shows it.
type ContactEntry struct {
	ContactID string        `json:"contact_id"`
	Name      string        `json:"name"`
	Email     string        `json:"email,omitempty"`
	Phone     string        `json:"phone,omitempty"`
	Company   string        `json:"company,omitempty"`
	Account   *AccountRef   `json:"account"`
	Phase     contact.Phase `json:"phase"`
	// PhaseSince is the business time of the change into the phase (creation for a lead).
	PhaseSince time.Time `json:"phase_since"`
	Owner      string    `json:"owner"`
	Segment    string    `json:"segment,omitempty"`
	Channel    string    `json:"channel"`
	CreatedAt  time.Time `json:"created_at"`
	// LastActivity is the latest business time of a touchpoint, note, purchase or survey
	// (a merged duplicate's included); null when there was none.
	LastActivity *time.Time `json:"last_activity"`
	// OpenDeals counts the open deals, a merged duplicate's included.
	OpenDeals int64    `json:"open_deals"`
	OptedOut  []string `json:"opted_out"`
}

// AccountRef names the account a contact belongs to.
type AccountRef struct {
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
}

var contactSorts = map[string]sortKey{
	"name":          {column: "sort_name"},
	"created":       {column: "created_at", numeric: true},
	"last_activity": {column: "last_activity", numeric: true},
	"phase":         {column: "phase_rank", numeric: true},
}

// QueryContacts answers a page of the contacts directory from the tables of set t. Invalid
// parameters return a domain error with code invalid naming the parameter.
func QueryContacts(ctx context.Context, db *projections.DB, t projections.Tables, p ContactParams) (Contacts, error) {
	l, err := p.list(db.Dialect, t)
	if err != nil {
		return Contacts{}, err
	}
	out := Contacts{Contacts: []ContactEntry{}}
	out.Total, out.NextCursor, err = l.read(ctx, db, func(rows *sql.Rows) (cursor, error) {
		c, err := scanContact(rows)
		if err != nil {
			return cursor{}, err
		}
		out.Contacts = append(out.Contacts, c.entry)
		return c.cursor(l.order), nil
	})
	if err != nil {
		return Contacts{}, err
	}
	return out, nil
}

// list checks the parameters and builds the question.
func (p ContactParams) list(d projections.Dialect, t projections.Tables) (*list, error) {
	o, err := parseOrder(p.Sort, "name", contactSorts)
	if err != nil {
		return nil, err
	}
	l := &list{
		from: t.Name(tableContacts) + " x LEFT JOIN " + t.Name(tableAccounts) + " a ON a.account_id = x.account_id",
		// The filters read the contact only: the total needs no account.
		countFrom: t.Name(tableContacts) + " x",
		id:        "contact_id",
		cols: `x.contact_id, x.name, x.email, x.phone, x.company, x.account_id, COALESCE(a.name, ''), x.phase,
			x.phase_since, x.owner, x.segment, x.channel, x.created_at, x.last_activity, x.open_deals, x.opted_out,
			x.sort_name, x.phase_rank`,
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
	l.matchesFirst(d, t.Name(tableContacts), p.Q)
	// Every condition of the filter is on the contact.
	l.filterWithMatches()
	p.keep(l, t)
	return l, nil
}

// keep makes the list read what the fold keeps for it: a search of one or two characters
// the postings, and a list with one filter or none (a search of one or two characters
// alone included) its total.
func (p ContactParams) keep(l *list, t projections.Tables) {
	counts := t.Name(tableContactCounts)
	l.postings = shortPostings(t, tableContacts, tableContactGrams, tableGramCounts, "sort_name", p.Q)
	if p.OptedOut != "" || p.CreatedFrom != "" || p.CreatedTo != "" {
		return
	}
	var dims [][2]string
	for _, f := range [][2]string{{"phase", p.Phase}, {"owner", p.Owner}, {"segment", p.Segment},
		{"channel", p.Channel}, {"account_id", p.AccountID}} {
		if f[1] != "" {
			dims = append(dims, f)
		}
	}
	switch {
	case p.Q == "" && len(dims) == 0:
		l.kept = &keptTotal{stmt: "SELECT COALESCE(SUM(contacts), 0) FROM " + counts + " WHERE dim = '' AND value = ''"}
	case p.Q == "" && len(dims) == 1:
		l.kept = &keptTotal{stmt: "SELECT COALESCE(SUM(contacts), 0) FROM " + counts + " WHERE dim = ? AND value = ?",
			args: []any{dims[0][0], dims[0][1]}}
	case l.postings != nil && len(dims) == 0:
		l.searchAlone = true
	}
}

func (p ContactParams) filter(f *filter) error {
	f.add("x.merged_into = ''")
	if p.Phase != "" {
		if _, err := contact.ParsePhase("phase", p.Phase); err != nil {
			return err
		}
		f.add("x.phase = ?", p.Phase)
	}
	if p.Channel != "" {
		if _, err := contact.ParseChannel("channel", p.Channel); err != nil {
			return err
		}
	}
	for _, eq := range []struct{ column, value string }{
		{"owner", p.Owner}, {"segment", p.Segment}, {"channel", p.Channel}, {"account_id", p.AccountID},
	} {
		if eq.value != "" {
			f.add("x."+eq.column+" = ?", eq.value)
		}
	}
	if err := optedOutFilter(f, p.OptedOut); err != nil {
		return err
	}
	lo, hi, err := timeRange("created_from", p.CreatedFrom, "created_to", p.CreatedTo)
	if err != nil {
		return err
	}
	if p.CreatedFrom != "" {
		f.add("x.created_at >= ?", lo)
	}
	if p.CreatedTo != "" {
		f.add("x.created_at < ?", hi)
	}
	return nil
}

// optedOutFilter: true, false, or a channel (the list is comma-separated, so a channel is
// matched with its commas).
func optedOutFilter(f *filter, v string) error {
	switch v {
	case "":
	case "true":
		f.add("x.opted_out <> ''")
	case "false":
		f.add("x.opted_out = ''")
	default:
		if _, err := contact.ParseConsentChannel("opted_out", v); err != nil {
			return domain.Invalid("opted_out", "%q is not true, false or a consent channel", v)
		}
		f.add("(',' || x.opted_out || ',') LIKE ?", "%,"+v+",%")
	}
	return nil
}

// contactScan is a row read, with its sort keys.
type contactScan struct {
	entry     ContactEntry
	sortName  string
	phaseRank int64
	created   int64
	activity  int64
}

func (c contactScan) cursor(o order) cursor {
	cur := cursor{ID: c.entry.ContactID}
	switch o.key.column {
	case "sort_name":
		cur.Text = c.sortName
	case "created_at":
		cur.Num = c.created
	case "last_activity":
		cur.Num = c.activity
	case "phase_rank":
		cur.Num = c.phaseRank
	}
	return cur
}

func scanContact(rows *sql.Rows) (contactScan, error) {
	var (
		c                  contactScan
		e                  = &c.entry
		accountID, account string
		phase, optedOut    string
		since              int64
	)
	err := rows.Scan(&e.ContactID, &e.Name, &e.Email, &e.Phone, &e.Company, &accountID, &account, &phase,
		&since, &e.Owner, &e.Segment, &e.Channel, &c.created, &c.activity, &e.OpenDeals, &optedOut,
		&c.sortName, &c.phaseRank)
	if err != nil {
		return c, err
	}
	if accountID != "" {
		e.Account = &AccountRef{AccountID: accountID, Name: account}
	}
	e.Phase = contact.Phase(phase)
	e.PhaseSince = time.UnixMicro(since).UTC()
	e.CreatedAt = time.UnixMicro(c.created).UTC()
	e.LastActivity = timeOf(c.activity)
	e.OptedOut = []string{}
	if optedOut != "" {
		e.OptedOut = strings.Split(optedOut, ",")
	}
	return c, nil
}
