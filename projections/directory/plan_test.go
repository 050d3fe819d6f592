package directory_test

import (
	"context"
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

// One owner's contacts in one phase by last activity, the list a salesperson opens first,
// read its page and counted its total from one index, on both databases: neither reads the
// owner's contacts of other phases.
func TestOwnerPhasePlan(t *testing.T) {
	var b strings.Builder
	for i := range 60 {
		owner, phase := []string{"rep-a", "rep-b", "rep-c"}[i%3], []string{"lead", "approach", "won"}[i/3%3]
		fmt.Fprintf(&b, `2024-01-01T09:00:00Z contact-c%d contact.created.v1 {"contact_id":"c%d","name":"N %d","channel":"other","owner":"%s"}`+"\n",
			i, i, i, owner)
		if phase != "lead" {
			fmt.Fprintf(&b, `2024-01-02T09:00:00Z contact-c%d contact.phase_changed.v1 {"contact_id":"c%d","from":"lead","to":"%s","rule":"manual"}`+"\n",
				i, i, phase)
		}
	}
	events := projectiontest.MustParseHistory(t, b.String())
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := directory.Projection()
		set := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, set, events)
		page, pageArgs, total, totalArgs, err := directory.ContactStatements(db.Dialect, set,
			directory.ContactParams{Owner: "rep-a", Phase: "approach", Sort: "last_activity"})
		if err != nil {
			t.Fatal(err)
		}
		index := set.Name("contacts") + "_owner_phase_activity"
		for name, q := range map[string]struct {
			stmt string
			args []any
		}{"page": {page, pageArgs}, "total": {total, totalArgs}} {
			plan := projectiontest.QueryPlan(t, db, q.stmt, q.args...)
			if !strings.Contains(plan, index) {
				t.Errorf("the %s does not read %s:\n%s", name, index, plan)
			}
			if projectiontest.PlanSorts(plan) {
				t.Errorf("the %s sorts the owner's contacts:\n%s", name, plan)
			}
		}
	})
}

// A search of three characters whose matches are common is read down the postings of its
// rarer pair in the list's order; the postings of its other pair, in the same order, leave
// out the rows that hold one pair only before any row is looked up: a family name's rows
// stand together in the order, and "tan" walked down "an" alone meets every "Anderson"
// before its first "Tanaka". The other pair is probed per posting, in a subquery: as a join,
// the plan PostgreSQL makes once for any text (with the statistics of a large list) hashed
// the postings of both pairs and sorted every match before the first row of a page.
func TestThreeCharacterSearchWalksBothPairs(t *testing.T) {
	var b strings.Builder
	for i := range 90 {
		name := []string{"Anderson", "Tanaka", "Tatsuo"}[i%3]
		fmt.Fprintf(&b, `2024-01-01T09:00:00Z contact-c%d contact.created.v1 {"contact_id":"c%d","name":"%s %d","channel":"other","owner":"rep-a"}`+"\n",
			i, i, name, i)
		fmt.Fprintf(&b, `2024-01-02T09:00:00Z deal-d%d deal.opened.v1 {"deal_id":"d%d","contact_id":"c%d","title":"%s %d","amount":{"amount":1000,"currency":"JPY"},"owner":"rep-a","stage":"qualification"}`+"\n",
			i, i, i, name, i)
	}
	events := projectiontest.MustParseHistory(t, b.String())
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		p := directory.Projection()
		set := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, set, events)
		for _, c := range []struct {
			list     string
			postings string
			page     func() (string, []any, bool, error)
			names    func() (int64, []string, error)
		}{
			{"contacts", "contact_grams",
				func() (string, []any, bool, error) {
					return directory.ContactSearchPage(ctx, db, set, directory.ContactParams{Q: "tan"})
				},
				func() (int64, []string, error) {
					got, err := directory.QueryContacts(ctx, db, set, directory.ContactParams{Q: "tan"})
					var names []string
					for _, c := range got.Contacts {
						names = append(names, c.Name)
					}
					return got.Total, names, err
				}},
			{"deals", "deal_grams",
				func() (string, []any, bool, error) {
					return directory.DealSearchPage(ctx, db, set, directory.DealParams{Q: "tan"})
				},
				func() (int64, []string, error) {
					got, err := directory.QueryDeals(ctx, db, set, directory.DealParams{Q: "tan"})
					var names []string
					for _, d := range got.Deals {
						names = append(names, d.Title)
					}
					return got.Total, names, err
				}},
		} {
			t.Run(c.list, func(t *testing.T) {
				page, args, walk, err := c.page()
				if err != nil {
					t.Fatal(err)
				}
				if !walk {
					t.Fatalf("the page of q=tan is not read down the postings:\n%s", page)
				}
				plan := projectiontest.QueryPlan(t, db, page, args...)
				probed := false
				for _, line := range strings.Split(plan, "\n") {
					// PostgreSQL names a table of a plan with its alias after it, SQLite
					// by its alias; a subquery is a SubPlan, a SCALAR SUBQUERY.
					if strings.Contains(line, "SubPlan") || strings.Contains(line, "SUBQUERY") {
						probed = true
					}
					if strings.Contains(line, set.Name(c.postings)+" h") || strings.Contains(line, " h USING") {
						if !probed {
							t.Errorf("the page of q=tan joins the postings of its other pair, not probes them:\n%s", plan)
						}
						return
					}
				}
				t.Errorf("the page of q=tan does not read the postings of its other pair:\n%s", plan)
			})
			total, names, err := c.names()
			if err != nil {
				t.Fatal(err)
			}
			if total != 30 || len(names) != 30 {
				t.Errorf("%s q=tan: total %d, %d rows; want the 30 Tanakas", c.list, total, len(names))
			}
			for _, n := range names {
				if !strings.HasPrefix(n, "Tanaka") {
					t.Errorf("%s q=tan lists %s", c.list, n)
				}
			}
		}
	})
}

// Each statement of the lists is prepared once on a connection and run again with the plan
// made for any arguments: none is planned anew on each run, and none is written with a
// value in its text.
func TestListsPreparedOncePlannedOnce(t *testing.T) {
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, `2024-01-01T09:00:00Z contact-c%d contact.created.v1 {"contact_id":"c%d","name":"%s %d","channel":"other","owner":"rep-%d"}`+"\n",
			i, i, []string{"Anderson", "Tanaka", "Smith"}[i%3], i, i%4)
		fmt.Fprintf(&b, `2024-01-02T09:00:00Z deal-d%d deal.opened.v1 {"deal_id":"d%d","contact_id":"c%d","title":"renewal %d","amount":{"amount":1000,"currency":"JPY"},"owner":"rep-%d","stage":"qualification"}`+"\n",
			i, i, i, i, i%4)
		if i%10 == 0 {
			fmt.Fprintf(&b, `2024-01-01T09:00:00Z account-a%d account.created.v1 {"account_id":"a%d","name":"Acme %d","domain":"a%d.example.com","industry":"manufacturing"}`+"\n",
				i, i, i, i)
		}
	}
	const asked = 4
	statements := projectiontest.AskedOnOneConnection(t, directory.Projection(), projectiontest.MustParseHistory(t, b.String()),
		func(db *projections.DB, set projections.Tables) {
			ctx := context.Background()
			for i := range asked {
				owner := fmt.Sprintf("rep-%d", i)
				for _, q := range []directory.ContactParams{{}, {Owner: owner}, {Owner: owner, Phase: "lead", Sort: "last_activity"},
					{Q: []string{"an", "ta", "sm", "th"}[i]}, {Q: []string{"tan", "smi", "and", "ith"}[i]},
					{Q: []string{"tanaka", "smith", "anders", "naka"}[i]}} {
					if _, err := directory.QueryContacts(ctx, db, set, q); err != nil {
						t.Fatal(err)
					}
				}
				for _, q := range []directory.DealParams{{Status: "open"}, {Owner: owner}} {
					if _, err := directory.QueryDeals(ctx, db, set, q); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := directory.QueryAccounts(ctx, db, set, directory.AccountParams{}); err != nil {
					t.Fatal(err)
				}
			}
		})
	if len(statements) == 0 {
		t.Error("no statement of the lists was prepared")
	}
	for stmt, got := range statements {
		if got.Custom != 0 || got.Generic < asked {
			t.Errorf("planned %+v, want %d or more runs of one plan made for any arguments: %s", got, asked, stmt)
		}
	}
}

// The contacts, the deals and the accounts lists filtered and sorted otherwise than by
// default, over thousands of rows with their statistics, each page planned once for any
// arguments: a filter and a sort that an index serves read that index in the page's order,
// and a search of four characters or more, in any sort and with other filters, reads its
// matches from the trigram index first and sorts them alone, rather than walk an index of
// the sort (or of the owner) down the whole list in the hope of meeting them (planned for
// any text, the walk looks cheaper than the matches of a common one).
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
	events = projectiontest.Upcast(t, withStages(events))
	type question struct {
		contacts *directory.ContactParams
		deals    *directory.DealParams
		accounts *directory.AccountParams
		// index is the index the page reads, by its name after the table's; search tells
		// that the page reads the matches of its search first, and sorts them; with, an
		// index PostgreSQL reads those matches with (a filter's, combined with the trigram
		// index).
		index  string
		search bool
		with   string
	}
	questions := []question{
		{contacts: &directory.ContactParams{Q: "smith"}, search: true},
		{contacts: &directory.ContactParams{Q: "smith", Sort: "-created"}, search: true},
		{contacts: &directory.ContactParams{Q: "user12", Sort: "last_activity"}, search: true},
		{contacts: &directory.ContactParams{Q: "globex", Sort: "-phase"}, search: true},
		{contacts: &directory.ContactParams{Q: "smith", Owner: "rep-3", Sort: "-last_activity"}, search: true, with: "contacts_owner_phase_activity"},
		{contacts: &directory.ContactParams{Q: "タカハシ", Owner: "rep-3"}, search: true, with: "contacts_owner_phase_activity"},
		{contacts: &directory.ContactParams{Q: "jones", Phase: "lead", Sort: "created"}, search: true},
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
		{deals: &directory.DealParams{Stage: "won", Status: "won", Sort: "-closed"}, index: "deals_stage_closed"},
	}
	// A stage's deals, of the status the stage names or of every status, read the stage's
	// index of the sort; one owner's in a stage that owner's index of the sort.
	for _, s := range []struct{ sort, index string }{{"created", "created"}, {"-title", "title"}, {"expected_close", "close"}, {"-closed", "closed"}} {
		for _, status := range []string{"", "open"} {
			questions = append(questions,
				question{deals: &directory.DealParams{Stage: "proposal", Status: status, Sort: s.sort}, index: "deals_stage_" + s.index},
				question{deals: &directory.DealParams{Stage: "negotiation", Status: status, Owner: "rep-3", Sort: s.sort}, index: "deals_owner_" + s.index})
		}
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
			switch {
			case q.contacts != nil:
				name, table = fmt.Sprintf("%+v", q.contacts), set.Name("contacts")
				page, args, _, _, err = directory.ContactStatements(db.Dialect, set, *q.contacts)
			case q.deals != nil:
				name, table = fmt.Sprintf("%+v", q.deals), set.Name("deals")
				page, args, _, _, err = directory.DealStatements(db.Dialect, set, *q.deals)
			default:
				page, args, _, _, err = directory.AccountStatements(db.Dialect, set, *q.accounts)
			}
			if err != nil {
				t.Fatal(err)
			}
			plan := projectiontest.QueryPlanAsRun(t, db, page, args...)
			if !q.search {
				if index := set.Name(q.index); !reads(plan, index) || projectiontest.PlanSorts(plan) ||
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
			if index := set.Name(q.with); q.with != "" && db.Dialect == projections.Postgres && !reads(plan, index) {
				t.Errorf("%s: the matches are not read with %s:\n%s", name, index, plan)
			}
		}
	})
}

// reads tells whether a plan reads the index of that name (not one whose name begins with it).
func reads(plan, index string) bool {
	return regexp.MustCompile(regexp.QuoteMeta(index) + `\b`).MatchString(plan)
}

// withStages moves the open deals of events (dealEvents: d0000000, d0000001, ...; every fifth
// lost) through the pipeline: of each ten, one stays in qualification, the others move on to
// needs_analysis, proposal or negotiation, and one is won, so that every stage holds a share of
// the deals and each owner's.
func withStages(events []eventstore.Event) []eventstore.Event {
	last := events[len(events)-1]
	pos, at := last.Position, last.OccurredAt
	for _, e := range events {
		if e.Type != "deal.opened.v1" {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(e.Stream, "deal-d%d", &i); err != nil || i%5 == 4 {
			continue
		}
		add := func(typ, data string) {
			pos++
			at = at.Add(time.Minute)
			events = append(events, eventstore.Event{ID: fmt.Sprintf("s%d", pos), Stream: e.Stream, Version: 2, Position: pos,
				Type: typ, OccurredAt: at, RecordedAt: at, Data: []byte(data)})
		}
		id := strings.TrimPrefix(e.Stream, "deal-")
		stage := []string{"qualification", "needs_analysis", "proposal", "negotiation", "", "proposal", "negotiation", "won", "needs_analysis", ""}[i%10]
		switch stage {
		case "", "qualification":
		case "won":
			add("deal.won.v1", fmt.Sprintf(`{"deal_id":%q,"contact_id":"c%07d","from_stage":"qualification","amount":{"amount":1000,"currency":"JPY"},"closed_at":%q}`,
				id, 2*i, at.Format(time.DateOnly)))
		default:
			add("deal.stage_changed.v1", fmt.Sprintf(`{"deal_id":%q,"from":"qualification","to":%q}`, id, stage))
		}
	}
	return events
}
