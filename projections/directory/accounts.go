package directory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/probability"
)

// AccountParams is a question asked of the accounts list.
type AccountParams struct {
	// Q finds accounts whose name, domain or industry holds it, normalised.
	Q string `json:"q,omitempty"`
	// Sort is name (default), created or last_activity, "-" first for descending.
	Sort   string `json:"sort,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// Accounts is a page of the accounts list.
type Accounts struct {
	Total      int64          `json:"total"`
	Accounts   []AccountEntry `json:"accounts"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// AccountEntry is an account as a list shows it.
type AccountEntry struct {
	AccountID string    `json:"account_id"`
	Name      string    `json:"name"`
	Domain    string    `json:"domain,omitempty"`
	Industry  string    `json:"industry,omitempty"`
	Size      string    `json:"size,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Contacts counts the contacts in the account now (merged duplicates not).
	Contacts int64 `json:"contacts"`
	// LastActivity is the latest business time of an activity of a contact while it belonged
	// to the account (null when none): a contact that leaves takes none of it back.
	LastActivity *time.Time `json:"last_activity"`
}

var accountSorts = map[string]sortKey{
	"name":          {column: "sort_name"},
	"created":       {column: "created_at", numeric: true},
	"last_activity": {column: "last_activity", numeric: true},
}

const accountColumns = `x.account_id, x.name, x.domain, x.industry, x.size, x.created_at, x.contacts, x.last_activity, x.sort_name`

// QueryAccounts answers a page of the accounts list from the tables of set t.
func QueryAccounts(ctx context.Context, db *projections.DB, t projections.Tables, p AccountParams) (Accounts, error) {
	l, err := p.list(db.Dialect, t)
	if err != nil {
		return Accounts{}, err
	}
	o := l.order
	out := Accounts{Accounts: []AccountEntry{}}
	out.Total, out.NextCursor, err = l.read(ctx, db, func(rows *sql.Rows) (cursor, error) {
		a, sortName, err := scanAccount(rows)
		if err != nil {
			return cursor{}, err
		}
		out.Accounts = append(out.Accounts, a)
		cur := cursor{ID: a.AccountID, Text: sortName}
		switch o.key.column {
		case "created_at":
			cur.Text, cur.Num = "", a.CreatedAt.UnixMicro()
		case "last_activity":
			cur.Text = ""
			if a.LastActivity != nil {
				cur.Num = a.LastActivity.UnixMicro()
			}
		}
		return cur, nil
	})
	if err != nil {
		return Accounts{}, err
	}
	return out, nil
}

func (p AccountParams) list(d projections.Dialect, t projections.Tables) (*list, error) {
	o, err := parseOrder(p.Sort, "name", accountSorts)
	if err != nil {
		return nil, err
	}
	l := &list{from: t.Name(tableAccounts) + " x", id: "account_id", cols: accountColumns, order: o}
	if l.limit, err = limitOf(p.Limit); err != nil {
		return nil, err
	}
	if l.after, err = decodeCursor(p.Cursor, o); err != nil {
		return nil, err
	}
	// A search of one or two characters reads the postings, their number the total; a
	// longer one the trigram index; no search the number of accounts the fold keeps.
	l.matchesFirst(d, t.Name(tableAccounts), p.Q)
	l.postings = shortPostings(t, tableAccounts, tableAccountGrams, tableAccountCounts, "sort_name", p.Q)
	switch {
	case l.postings != nil:
		l.searchAlone = true
	case Normalize(p.Q) == "":
		l.kept = &keptTotal{stmt: "SELECT COALESCE(SUM(matches), 0) FROM " + t.Name(tableAccountCounts) + " WHERE gram = ''"}
	}
	return l, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanAccount(row scanner) (AccountEntry, string, error) {
	var (
		a                 AccountEntry
		created, activity int64
		sortName          string
	)
	if err := row.Scan(&a.AccountID, &a.Name, &a.Domain, &a.Industry, &a.Size, &created, &a.Contacts, &activity, &sortName); err != nil {
		return a, "", err
	}
	a.CreatedAt = time.UnixMicro(created).UTC()
	a.LastActivity = timeOf(activity)
	return a, sortName, nil
}

// AccountSummary is an account with its roll-ups, kept by the fold as events arrive.
type AccountSummary struct {
	AccountEntry
	// ContactsByPhase counts the account's contacts per phase, in lifecycle order; phases
	// without contacts are left out.
	ContactsByPhase []PhaseCount `json:"contacts_by_phase"`
	// Money is the pipeline and the revenue per currency, by currency code.
	Money []CurrencyRollup `json:"money"`
}

// PhaseCount is the number of an account's contacts in a phase.
type PhaseCount struct {
	Phase    contact.Phase `json:"phase"`
	Contacts int64         `json:"contacts"`
}

// CurrencyRollup is an account's deals in one currency, in minor units.
type CurrencyRollup struct {
	Currency string `json:"currency"`
	// OpenDeals and OpenAmount: the open pipeline; WeightedAmount sums, over the open
	// stages, the stage's amount times the stage's probability in force when the question is
	// asked / 100, rounded half up once per stage, as the board weighs a stage total.
	OpenDeals      int64 `json:"open_deals"`
	OpenAmount     int64 `json:"open_amount"`
	WeightedAmount int64 `json:"weighted_amount"`
	// WonDeals and WonAmount: the revenue won (final amounts), until a deal is reopened.
	WonDeals  int64 `json:"won_deals"`
	WonAmount int64 `json:"won_amount"`
}

// QuerySummary answers an account with its roll-ups, its open pipeline weighed with the
// stage probabilities in force at at: the time the question is about (now, or the moment a
// time-travel question is about; see probability.InForce), zero for the latest change
// recorded. An account the read model does
// not hold is a domain error with code not_found.
func QuerySummary(ctx context.Context, db *projections.DB, t projections.Tables, accountID string, at time.Time) (AccountSummary, error) {
	var s AccountSummary
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q := func(stmt string, args ...any) (*sql.Rows, error) {
			return tx.QueryContext(ctx, db.Dialect.Rebind(stmt), args...)
		}
		row := tx.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT `+accountColumns+` FROM `+t.Name(tableAccounts)+` x WHERE x.account_id = ?`), accountID)
		var err error
		if s.AccountEntry, _, err = scanAccount(row); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return domain.NotFound("account %s is not in the directory", accountID)
			}
			return fmt.Errorf("account: %w", err)
		}
		if s.ContactsByPhase, err = phaseCounts(q, t, accountID); err != nil {
			return err
		}
		percents, err := probability.InForce(ctx, tx, db.Dialect, t, questionTime(at))
		if err != nil {
			return err
		}
		s.Money, err = moneyRollups(q, t, accountID, percents)
		return err
	})
	return s, err
}

type queryFunc func(stmt string, args ...any) (*sql.Rows, error)

func phaseCounts(q queryFunc, t projections.Tables, accountID string) ([]PhaseCount, error) {
	rows, err := q(`SELECT phase, contacts FROM `+t.Name(tableAccountPhases)+` WHERE account_id = ?`, accountID)
	if err != nil {
		return nil, fmt.Errorf("phases: %w", err)
	}
	defer rows.Close()
	byPhase := map[contact.Phase]int64{}
	for rows.Next() {
		var (
			p string
			n int64
		)
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("phases: %w", err)
		}
		byPhase[contact.Phase(p)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("phases: %w", err)
	}
	out := []PhaseCount{}
	for _, p := range contact.Phases() {
		if n := byPhase[p]; n != 0 {
			out = append(out, PhaseCount{Phase: p, Contacts: n})
		}
	}
	return out, nil
}

func moneyRollups(q queryFunc, t projections.Tables, accountID string, percents probability.Percents) ([]CurrencyRollup, error) {
	weighted, err := weightedPipeline(q, t, accountID, percents)
	if err != nil {
		return nil, err
	}
	rows, err := q(`SELECT currency, open_deals, open_amount, won_deals, won_amount FROM `+
		t.Name(tableAccountMoney)+` WHERE account_id = ? ORDER BY currency`, accountID)
	if err != nil {
		return nil, fmt.Errorf("money: %w", err)
	}
	defer rows.Close()
	out := []CurrencyRollup{}
	for rows.Next() {
		var r CurrencyRollup
		if err := rows.Scan(&r.Currency, &r.OpenDeals, &r.OpenAmount, &r.WonDeals, &r.WonAmount); err != nil {
			return nil, fmt.Errorf("money: %w", err)
		}
		r.WeightedAmount = weighted[r.Currency]
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("money: %w", err)
	}
	return out, nil
}

// weightedPipeline weighs an account's open pipeline per currency: each stage's amount
// times its probability, rounded once per stage.
func weightedPipeline(q queryFunc, t projections.Tables, accountID string, percents probability.Percents) (map[string]int64, error) {
	rows, err := q(`SELECT currency, stage, amount FROM `+t.Name(tableAccountStages)+` WHERE account_id = ?`, accountID)
	if err != nil {
		return nil, fmt.Errorf("pipeline by stage: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			currency, stage string
			amount          int64
		)
		if err := rows.Scan(&currency, &stage, &amount); err != nil {
			return nil, fmt.Errorf("pipeline by stage: %w", err)
		}
		out[currency] += percents.Weighted(deal.Stage(stage), amount)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pipeline by stage: %w", err)
	}
	return out, nil
}
