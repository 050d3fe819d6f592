package directory_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// The deals and the accounts lists filtered and sorted otherwise than by default, over
// thousands of rows with their statistics, each page planned once for any arguments: a
// filter and a sort that an index serves read that index in the page's order, and a search
// of four characters or more reads its matches from the trigram index first and sorts them
// alone, rather than walk an index of the sort down the whole list in the hope of meeting
// them (planned for any text, the walk looks cheaper than the matches of a common one).
func TestListPlans(t *testing.T) {
	events := directoryEvents(3000)
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1500 {
		pos := int64(len(events) + 1)
		events = append(events, eventstore.Event{ID: fmt.Sprintf("x%d", pos), Stream: fmt.Sprintf("account-b%05d", i), Version: 1,
			Position: pos, Type: "account.created.v1", OccurredAt: start.Add(time.Duration(i) * time.Minute), RecordedAt: start,
			Data: fmt.Appendf(nil, `{"account_id":"b%05d","name":"%s %d","domain":"b%d.example.com","industry":"retail"}`,
				i, []string{"Acme", "Globex", "Initech", "Hooli"}[i%4], i, i)})
	}
	events = projectiontest.Upcast(t, events)
	type question struct {
		deals    *directory.DealParams
		accounts *directory.AccountParams
		// index is the index the page reads, by its name after the table's; search tells
		// that the page reads the matches of its search first, and sorts them.
		index  string
		search bool
	}
	questions := []question{
		{deals: &directory.DealParams{Status: "lost", Sort: "-closed"}, index: "deals_by_closed"},
		{deals: &directory.DealParams{Status: "open", Sort: "title"}, index: "deals_by_title"},
		{deals: &directory.DealParams{Owner: "rep-3"}, index: "deals_owner_created"},
		{deals: &directory.DealParams{Owner: "rep-3", Sort: "-title"}, index: "deals_owner_title"},
		{deals: &directory.DealParams{Owner: "rep-3", Sort: "expected_close"}, index: "deals_owner_close"},
		{deals: &directory.DealParams{Owner: "rep-3", Sort: "-closed"}, index: "deals_owner_closed"},
		{deals: &directory.DealParams{Owner: "rep-3", Status: "open"}, index: "deals_owner"},
		{deals: &directory.DealParams{Q: "acme corp", Sort: "title"}, search: true},
		{deals: &directory.DealParams{Q: "renewal", Status: "open", Sort: "-expected_close"}, search: true},
		{accounts: &directory.AccountParams{Sort: "-last_activity"}, index: "accounts_by_activity"},
		{accounts: &directory.AccountParams{Q: "acme", Sort: "-created"}, search: true},
		{accounts: &directory.AccountParams{Q: "globex", Sort: "name"}, search: true},
	}
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := directory.Projection()
		set := projections.TablesFor(p, "")
		projectiontest.MustBuild(t, db, p, set, events)
		for _, q := range questions {
			var (
				page  string
				args  []any
				err   error
				name  = fmt.Sprintf("%+v", q.accounts)
				table = set.Name("accounts")
			)
			if q.deals != nil {
				name, table = fmt.Sprintf("%+v", q.deals), set.Name("deals")
				page, args, _, _, err = directory.DealStatements(db.Dialect, set, *q.deals)
			} else {
				page, args, _, _, err = directory.AccountStatements(db.Dialect, set, *q.accounts)
			}
			if err != nil {
				t.Fatal(err)
			}
			plan := projectiontest.QueryPlanAsRun(t, db, page, args...)
			if !q.search {
				if index := set.Name(q.index); !reads(plan, index) || sorts(plan) ||
					strings.Contains(plan, "Hash") || strings.Contains(plan, "Seq Scan") {
					t.Errorf("%s: the page does not read %s in its order, nor each row's contact by key:\n%s", name, index, plan)
				}
				continue
			}
			// PostgreSQL: the trigram index, then the matches alone (m); SQLite: the
			// trigram table of the search column, and no other index of the list's table.
			matches := strings.Contains(plan, table+"_trgm") && strings.Contains(plan, "CTE Scan on m x") ||
				strings.Contains(plan, table+projections.SearchTableSuffix) && !strings.Contains(plan, "USING INDEX "+table)
			if !matches || strings.Contains(plan, "Filter: (search") {
				t.Errorf("%s: the page does not read the matches of its search first:\n%s", name, plan)
			}
		}
	})
}

// reads tells whether a plan reads the index of that name (not one whose name begins with it).
func reads(plan, index string) bool {
	return regexp.MustCompile(regexp.QuoteMeta(index) + `\b`).MatchString(plan)
}

// sorts tells whether a plan sorts the rows it reads.
func sorts(plan string) bool {
	return strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "Sort")
}
