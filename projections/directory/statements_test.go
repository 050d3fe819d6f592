package directory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// On PostgreSQL a page and its exact total are one statement, which sees one state, with no
// transaction around it: one round trip where a read transaction took four (BEGIN, the
// total, the page, ROLLBACK). A search of one to three characters reads the counts of its
// postings first, to choose how the page is read: two.
func TestListsAreOneStatementOnPostgres(t *testing.T) {
	events, _ := listsHistory(t)
	db := projectiontest.Postgres(t)
	p := directory.Projection()
	set := projections.TablesFor(p, "")
	projectiontest.MustApply(t, db, p, set, events)
	counted, sent := projectiontest.CountingStatements(t, db)
	ctx := context.Background()
	cases := []struct {
		name string
		ask  func() (int, error)
		want int
	}{
		{"contacts", contacts(ctx, counted, set, directory.ContactParams{}), 1},
		{"contacts owner", contacts(ctx, counted, set, directory.ContactParams{Owner: "rep-a", Limit: 2}), 1},
		{"contacts q of one character", contacts(ctx, counted, set, directory.ContactParams{Q: "c"}), 2},
		{"deals", deals(ctx, counted, set, directory.DealParams{}), 1},
		{"open deals", deals(ctx, counted, set, directory.DealParams{Status: "open", Limit: 5}), 1},
		{"deals q of two characters", deals(ctx, counted, set, directory.DealParams{Q: "保守"}), 2},
		{"deals q of three characters", deals(ctx, counted, set, directory.DealParams{Q: "sup"}), 2},
		{"deals q of two characters by title", deals(ctx, counted, set, directory.DealParams{Q: "保守", Sort: "title"}), 2},
		{"deals q of seven characters", deals(ctx, counted, set, directory.DealParams{Q: "support"}), 1},
		{"accounts", accounts(ctx, counted, set, directory.AccountParams{}), 1},
		{"accounts q", accounts(ctx, counted, set, directory.AccountParams{Q: "acme"}), 1},
	}
	for _, c := range cases {
		sent.Take()
		shown, err := c.ask()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if shown == 0 {
			t.Fatalf("%s: no row shown: the case does not test a page", c.name)
		}
		stmts := sent.Take()
		if len(stmts) != c.want {
			t.Errorf("%s: %d statements, want %d:\n%s", c.name, len(stmts), c.want, strings.Join(stmts, "\n"))
		}
	}
}

func contacts(ctx context.Context, db *projections.DB, t projections.Tables, p directory.ContactParams) func() (int, error) {
	return func() (int, error) {
		got, err := directory.QueryContacts(ctx, db, t, p)
		return len(got.Contacts), err
	}
}

func deals(ctx context.Context, db *projections.DB, t projections.Tables, p directory.DealParams) func() (int, error) {
	return func() (int, error) {
		got, err := directory.QueryDeals(ctx, db, t, p)
		return len(got.Deals), err
	}
}

func accounts(ctx context.Context, db *projections.DB, t projections.Tables, p directory.AccountParams) func() (int, error) {
	return func() (int, error) {
		got, err := directory.QueryAccounts(ctx, db, t, p)
		return len(got.Accounts), err
	}
}
