// Package directory is the read model of the lists an app shows every day (projection
// "directory"): the contacts directory, the deals list and the accounts with their roll-ups,
// each searchable by substring and paged by keyset.
//
// The three lists are one fold because each needs facts of the others: a contact's row
// counts its open deals, a deal is filtered by the account of its contact, and an account
// sums the pipeline of its contacts' deals. Kept apart they would each fold the same contact
// and deal events again.
//
// Merges: a contact merged into another (the duplicate) is not listed; its open deals, its
// last activity and its deals' money count for the survivor from the merge on, and so does
// every later event of those deals.
//
// Tables (prefix from projections.Tables; times are BIGINT microseconds since the Unix epoch,
// UTC; 0 stands for none):
//
//	contacts        contact_id, name, email, phone, company, channel, owner, segment,
//	                account_id ('' when none), phase, phase_rank (lifecycle order), phase_since,
//	                created_at, last_activity, open_deals, opted_out (channels, comma-separated,
//	                sorted), merged_into ('' unless merged), sort_name and search (normalised,
//	                see Normalize; search is indexed for substring search)
//	deals           deal_id, contact_id (as opened), counts_for (the contact it counts for:
//	                the survivor of merges), title, owner, amount, currency, stage, status
//	                (open, won, lost), expected_close and closed_on (dates, '' when none),
//	                lost_reason, opened_at, sort_title and search (normalised title)
//	contact_deals   contact_id, deal_id, opened_at: the deals counted for a contact
//	accounts        account_id, name, domain, industry, size, created_at, contacts,
//	                last_activity, sort_name, search
//	account_phases  account_id, phase, contacts: the account's contacts by phase
//	account_money   account_id, currency, open_deals, open_amount, won_deals, won_amount: the
//	                roll-ups per currency, changed by each deal event
//	account_stages  account_id, currency, stage, deals, amount: the open pipeline per stage,
//	                which a question weighs with the stage probabilities in force when it is
//	                asked (no weighted amount is kept: a change of the probabilities rewrites
//	                no row)
//	stage_probabilities  the changes of the stage probabilities in the settings (package
//	                projections/probability)
//	contact_grams   gram, sort_name, contact_id: the postings of every character and every
//	                pair of adjacent characters of each field of a listed contact's search
//	                column, with its sort name, which a search of one or two characters reads
//	                (no trigram index serves it): in the order of the names for a page so
//	                sorted
//	gram_counts     gram, matches: the number of postings of each gram; gram '' the
//	                listed contacts
//	deal_grams      gram, opened_at, deal_id: the postings of a deal's title, the same way,
//	                in the order of the list's default sort
//	deal_gram_counts  gram, matches: their number per gram ('': every deal)
//	account_grams   gram, sort_name, account_id: the postings of an account's name, domain
//	                and industry
//	account_gram_counts  gram, matches: their number per gram ('': every account)
//	deal_counts     status, deals: the deals of each status (open, won, lost), the total of a
//	                list filtered by status alone
//	contact_counts  dim, value, contacts: the listed contacts of every value of phase, owner,
//	                segment, channel and account_id (dim '' and value '': all of them), the
//	                totals of a list with one filter or none
package directory

import (
	"time"

	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/probability"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "directory"

// Projection returns the directory: its tables and its fold.
func Projection() *readmodel.Model { return ProjectionIn(time.UTC) }

// ProjectionIn returns the directory with the date a deal was lost on taken in the business
// time zone loc: a zone of its own is a version of its own (period.Version).
func ProjectionIn(loc *time.Location) *readmodel.Model {
	// 4: the open pipeline kept per stage, weighed when asked; 5: the postings hold the sort
	// key, and deals and accounts have theirs; 6: an owner's contacts in one phase indexed by
	// last activity, and the deals counted per status; 7: an owner's deals indexed in each
	// sort; 8: a stage's deals indexed in each sort.
	return period.Define(loc, 8, declare)
}

// declare declares the tables and the fold of the directory in the business zone.
func declare(zone *time.Location) readmodel.Spec {
	m := newModel(zone)
	return readmodel.Spec{Name: Name, Fold: m.fold, Tables: []readmodel.AnyTable{m.contacts, m.deals, m.contactDeals, m.accounts,
		m.accountPhases, m.accountMoney, m.accountStages,
		m.contactPostings.postings, m.contactPostings.counts, m.counts,
		m.probabilities.Table(),
		m.dealPostings.postings, m.dealPostings.counts,
		m.accountPostings.postings, m.accountPostings.counts, m.dealCounts}}
}

// Base names of the tables.
const (
	tableContacts      = "contacts"
	tableDeals         = "deals"
	tableContactDeals  = "contact_deals"
	tableAccounts      = "accounts"
	tableAccountPhases = "account_phases"
	tableAccountMoney  = "account_money"
	tableAccountStages = "account_stages"
	tableContactGrams  = "contact_grams"
	tableGramCounts    = "gram_counts"
	tableDealGrams     = "deal_grams"
	tableDealCounts    = "deal_gram_counts"
	tableAccountGrams  = "account_grams"
	tableAccountCounts = "account_gram_counts"
	tableContactCounts = "contact_counts"
	tableDealStatuses  = "deal_counts"
)

type contactRow struct {
	contactID, name, email, phone, company, channel, owner, segment, accountID, phase string
	phaseRank, phaseSince, createdAt, lastActivity, openDeals                         int64
	optedOut, mergedInto, sortName, search                                            string
}

type dealRow struct {
	dealID, contactID, countsFor, title, owner string
	amount                                     int64
	currency, stage, status                    string
	expectedClose, closedOn, lostReason        string
	openedAt                                   int64
	sortTitle, search                          string
}

type dealCountRow struct {
	status string
	deals  int64
}

type contactDealRow struct {
	contactID, dealID string
	openedAt          int64
}

type accountRow struct {
	accountID, name, domain, industry, size string
	createdAt, contacts, lastActivity       int64
	sortName, search                        string
}

type accountPhaseRow struct {
	accountID, phase string
	contacts         int64
}

type accountMoneyRow struct {
	accountID, currency                        string
	openDeals, openAmount, wonDeals, wonAmount int64
}

type accountStageRow struct {
	accountID, currency, stage string
	deals, amount              int64
}

// model holds the declarations of the tables the fold writes.
type model struct {
	contacts      *readmodel.Table[contactRow]
	deals         *readmodel.Table[dealRow]
	contactDeals  *readmodel.Table[contactDealRow]
	accounts      *readmodel.Table[accountRow]
	accountPhases *readmodel.Table[accountPhaseRow]
	accountMoney  *readmodel.Table[accountMoneyRow]
	accountStages *readmodel.Table[accountStageRow]
	// The postings of the search of each list.
	contactPostings, dealPostings, accountPostings postingTables
	counts                                         *readmodel.Table[countRow]
	dealCounts                                     *readmodel.Table[dealCountRow]
	probabilities                                  probability.History
	zone                                           *time.Location // the business time zone
}

func newModel(zone *time.Location) *model {
	return &model{
		zone:            zone,
		contacts:        contactsTable(),
		deals:           dealsTable(),
		contactDeals:    contactDealsTable(),
		accounts:        accountsTable(),
		accountPhases:   accountPhasesTable(),
		accountMoney:    accountMoneyTable(),
		accountStages:   accountStagesTable(),
		contactPostings: newPostingTables(tableContactGrams, tableGramCounts, "sort_name", false, "contact_id"),
		dealPostings:    newPostingTables(tableDealGrams, tableDealCounts, "opened_at", true, "deal_id"),
		accountPostings: newPostingTables(tableAccountGrams, tableAccountCounts, "sort_name", false, "account_id"),
		counts:          countsTable(),
		dealCounts: readmodel.NewTable(tableDealStatuses, 1,
			readmodel.Text("status", func(r *dealCountRow) *string { return &r.status }),
			readmodel.BigInt("deals", func(r *dealCountRow) *int64 { return &r.deals })).Clustered(),
		probabilities: probability.NewHistory(),
	}
}

func contactsTable() *readmodel.Table[contactRow] {
	type c = contactRow
	text := func(name string, f func(r *c) *string) readmodel.Column[c] { return readmodel.Text(name, f) }
	num := func(name string, f func(r *c) *int64) readmodel.Column[c] { return readmodel.BigInt(name, f) }
	return readmodel.NewTable(tableContacts, 1,
		text("contact_id", func(r *c) *string { return &r.contactID }),
		text("name", func(r *c) *string { return &r.name }),
		text("email", func(r *c) *string { return &r.email }),
		text("phone", func(r *c) *string { return &r.phone }),
		text("company", func(r *c) *string { return &r.company }),
		text("channel", func(r *c) *string { return &r.channel }),
		text("owner", func(r *c) *string { return &r.owner }),
		text("segment", func(r *c) *string { return &r.segment }),
		text("account_id", func(r *c) *string { return &r.accountID }),
		text("phase", func(r *c) *string { return &r.phase }),
		num("phase_rank", func(r *c) *int64 { return &r.phaseRank }),
		num("phase_since", func(r *c) *int64 { return &r.phaseSince }),
		num("created_at", func(r *c) *int64 { return &r.createdAt }),
		num("last_activity", func(r *c) *int64 { return &r.lastActivity }),
		num("open_deals", func(r *c) *int64 { return &r.openDeals }),
		text("opted_out", func(r *c) *string { return &r.optedOut }),
		text("merged_into", func(r *c) *string { return &r.mergedInto }),
		text("sort_name", func(r *c) *string { return &r.sortName }),
		text("search", func(r *c) *string { return &r.search })).
		WithIndexes(
			// One per sort, each ending in the id as the keyset does, of the listed contacts.
			// The default sort's also holds the search column: a search whose matches are
			// common goes down it in order, its text checked without reading the row.
			readmodel.Index{Name: "by_name", Columns: "sort_name, contact_id, search", Where: "merged_into = ''"},
			readmodel.Index{Name: "by_created", Columns: "created_at, contact_id"},
			readmodel.Index{Name: "by_activity", Columns: "last_activity, contact_id"},
			readmodel.Index{Name: "by_phase", Columns: "phase_rank, contact_id"},
			readmodel.Index{Name: "owner", Columns: "owner, sort_name, contact_id"},
			// An owner's contacts by last activity, the list a salesperson opens first.
			readmodel.Index{Name: "owner_activity", Columns: "owner, last_activity, contact_id"},
			// The same in one phase, and its total counted from the index alone.
			readmodel.Index{Name: "owner_phase_activity", Columns: "owner, phase, last_activity, contact_id", Where: "merged_into = ''"},
			readmodel.Index{Name: "account", Columns: "account_id, sort_name, contact_id"},
		).
		Searched("search")
}

func dealsTable() *readmodel.Table[dealRow] {
	type d = dealRow
	text := func(name string, f func(r *d) *string) readmodel.Column[d] { return readmodel.Text(name, f) }
	num := func(name string, f func(r *d) *int64) readmodel.Column[d] { return readmodel.BigInt(name, f) }
	return readmodel.NewTable(tableDeals, 1,
		text("deal_id", func(r *d) *string { return &r.dealID }),
		text("contact_id", func(r *d) *string { return &r.contactID }),
		text("counts_for", func(r *d) *string { return &r.countsFor }),
		text("title", func(r *d) *string { return &r.title }),
		text("owner", func(r *d) *string { return &r.owner }),
		num("amount", func(r *d) *int64 { return &r.amount }),
		text("currency", func(r *d) *string { return &r.currency }),
		text("stage", func(r *d) *string { return &r.stage }),
		text("status", func(r *d) *string { return &r.status }),
		text("expected_close", func(r *d) *string { return &r.expectedClose }),
		text("closed_on", func(r *d) *string { return &r.closedOn }),
		text("lost_reason", func(r *d) *string { return &r.lostReason }),
		num("opened_at", func(r *d) *int64 { return &r.openedAt }),
		text("sort_title", func(r *d) *string { return &r.sortTitle }),
		text("search", func(r *d) *string { return &r.search })).
		WithIndexes(
			readmodel.Index{Name: "by_created", Columns: "status, opened_at, deal_id"},
			readmodel.Index{Name: "by_title", Columns: "status, sort_title, deal_id"},
			readmodel.Index{Name: "by_close", Columns: "status, expected_close, deal_id"},
			readmodel.Index{Name: "by_closed", Columns: "status, closed_on, deal_id"},
			readmodel.Index{Name: "contact", Columns: "counts_for, opened_at, deal_id"},
			readmodel.Index{Name: "owner", Columns: "owner, status, opened_at, deal_id"},
			// One owner's deals of every status, in each sort: not all of them sorted for a
			// page (nor every contact hashed with them).
			readmodel.Index{Name: "owner_created", Columns: "owner, opened_at, deal_id"},
			readmodel.Index{Name: "owner_title", Columns: "owner, sort_title, deal_id"},
			readmodel.Index{Name: "owner_close", Columns: "owner, expected_close, deal_id"},
			readmodel.Index{Name: "owner_closed", Columns: "owner, closed_on, deal_id"},
			// One stage's deals in each sort, of the status the stage names or not (see
			// statusBesideStage). One owner's deals in one stage are read down the owner's
			// index of the sort, each deal's stage checked: a page reads the owner's deals
			// of other stages among its own, which four more indexes, each written with
			// every deal, would spare.
			readmodel.Index{Name: "stage_created", Columns: "stage, opened_at, deal_id"},
			readmodel.Index{Name: "stage_title", Columns: "stage, sort_title, deal_id"},
			readmodel.Index{Name: "stage_close", Columns: "stage, expected_close, deal_id"},
			readmodel.Index{Name: "stage_closed", Columns: "stage, closed_on, deal_id"},
		).
		Searched("search")
}

func contactDealsTable() *readmodel.Table[contactDealRow] {
	type cd = contactDealRow
	return readmodel.NewTable(tableContactDeals, 2,
		readmodel.Text("contact_id", func(r *cd) *string { return &r.contactID }),
		readmodel.Text("deal_id", func(r *cd) *string { return &r.dealID }),
		readmodel.BigInt("opened_at", func(r *cd) *int64 { return &r.openedAt })).
		Clustered()
}

func accountsTable() *readmodel.Table[accountRow] {
	type a = accountRow
	text := func(name string, f func(r *a) *string) readmodel.Column[a] { return readmodel.Text(name, f) }
	num := func(name string, f func(r *a) *int64) readmodel.Column[a] { return readmodel.BigInt(name, f) }
	return readmodel.NewTable(tableAccounts, 1,
		text("account_id", func(r *a) *string { return &r.accountID }),
		text("name", func(r *a) *string { return &r.name }),
		text("domain", func(r *a) *string { return &r.domain }),
		text("industry", func(r *a) *string { return &r.industry }),
		text("size", func(r *a) *string { return &r.size }),
		num("created_at", func(r *a) *int64 { return &r.createdAt }),
		num("contacts", func(r *a) *int64 { return &r.contacts }),
		num("last_activity", func(r *a) *int64 { return &r.lastActivity }),
		text("sort_name", func(r *a) *string { return &r.sortName }),
		text("search", func(r *a) *string { return &r.search })).
		WithIndexes(
			readmodel.Index{Name: "by_name", Columns: "sort_name, account_id"},
			readmodel.Index{Name: "by_created", Columns: "created_at, account_id"},
			readmodel.Index{Name: "by_activity", Columns: "last_activity, account_id"},
		).
		Searched("search")
}

func accountPhasesTable() *readmodel.Table[accountPhaseRow] {
	type p = accountPhaseRow
	return readmodel.NewTable(tableAccountPhases, 2,
		readmodel.Text("account_id", func(r *p) *string { return &r.accountID }),
		readmodel.Text("phase", func(r *p) *string { return &r.phase }),
		readmodel.BigInt("contacts", func(r *p) *int64 { return &r.contacts })).
		Clustered()
}

func accountMoneyTable() *readmodel.Table[accountMoneyRow] {
	type mr = accountMoneyRow
	num := func(name string, f func(r *mr) *int64) readmodel.Column[mr] { return readmodel.BigInt(name, f) }
	return readmodel.NewTable(tableAccountMoney, 2,
		readmodel.Text("account_id", func(r *mr) *string { return &r.accountID }),
		readmodel.Text("currency", func(r *mr) *string { return &r.currency }),
		num("open_deals", func(r *mr) *int64 { return &r.openDeals }),
		num("open_amount", func(r *mr) *int64 { return &r.openAmount }),
		num("won_deals", func(r *mr) *int64 { return &r.wonDeals }),
		num("won_amount", func(r *mr) *int64 { return &r.wonAmount })).
		Clustered()
}

func accountStagesTable() *readmodel.Table[accountStageRow] {
	type sr = accountStageRow
	return readmodel.NewTable(tableAccountStages, 3,
		readmodel.Text("account_id", func(r *sr) *string { return &r.accountID }),
		readmodel.Text("currency", func(r *sr) *string { return &r.currency }),
		readmodel.Text("stage", func(r *sr) *string { return &r.stage }),
		readmodel.BigInt("deals", func(r *sr) *int64 { return &r.deals }),
		readmodel.BigInt("amount", func(r *sr) *int64 { return &r.amount })).
		Clustered()
}
