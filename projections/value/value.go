// Package value is the customer value read model (projection "customer_value"): what each
// customer bought and is worth (orders, revenue and average order value per currency, LTV,
// first and second purchase, days between purchases), its recency, frequency and monetary
// scores and segment, the repeat rate of each cohort of first purchase, seasonality (orders
// and revenue by month of year), upsell candidates (high plan usage and a high NPS or loyal)
// and dormant contacts (no touchpoint for N days), all as of any business time.
//
// An order is a recorded purchase (contact.purchase_recorded.v1), counted at its business
// time. A merged duplicate's facts (purchases, touchpoints, surveys, usage) count for the
// contact it was merged into, whatever the time asked about: a merge corrects who the customer
// is. Periods (the cohort month of a first purchase, the month of year of a purchase) are taken
// in the business time zone the projection is built with.
//
// The detail tables keep times, so that any question can be answered as of a business time D;
// beside them the fold keeps what a question about now reads (as_of at or after the horizon,
// the latest business time in the tables): each customer's totals, counts of customers per
// order count, per day of last purchase and per revenue bucket and currency (from which the
// RFM score thresholds are found without reading every customer), the cohorts and the months,
// and each contact's latest phase, owner, touchpoint, usage report and survey.
//
// Tables (prefix from projections.Tables):
//
//	contacts   contact_id, customer_id (the contact whose customer it is: itself, or the
//	           survivor of its merge), name, created_at, owner, phase (latest by business
//	           time, each with the time and position of the event that set it: owner_at,
//	           owner_pos, phase_at, phase_pos), idle_at, idle_kind, idle_pos (its latest
//	           touchpoint, or its creation: kind "created"), usage, usage_at, usage_pos
//	           (latest usage report, percent of the plan limit; -1 for none), nps, nps_at,
//	           nps_pos (latest survey; -1 for none), merged (1 once merged into another),
//	           phase_event, idle_event, usage_event, nps_event (the ids of the events of the
//	           latest phase, activity, usage report and survey: what explains them)
//	facts      contact_id, kind (touchpoint, phase, owner, usage, survey), occurred_at,
//	           position (the key), text (touchpoint kind, phase, owner), num (usage percent,
//	           NPS), event_id: the history a question about a past time reads; a creation
//	           records the first owner and phase
//	purchases  customer_id, occurred_at, position (the key, in time order per customer),
//	           contact_id (who made it), amount, currency, product, plan, event_id
//	customers  customer_id, orders, first_at, second_at (NULL with one order), last_at
//	money      customer_id, currency: orders and revenue in that currency
//	frequency  orders: customers with that many orders (kept by addition)
//	recency    day (start of the UTC day of the last purchase): customers
//	monetary   currency, bucket (the lower bound of the revenue's bucket: two significant
//	           digits): customers who bought in the currency
//	rf         day (of the last purchase), orders, currency: customers and revenue; currency
//	           '' counts every customer once, a currency those who bought in it (the RFM
//	           grid and segments about now)
//	rf_months  day (the first of the UTC month of the last purchase), orders, currency: the
//	           sums of rf per month, which the grid reads for every month that holds no
//	           recency threshold (rf for the others)
//	cohorts    cohort (YYYY-MM of the first purchase): customers, repeaters (with a second)
//	seasons    month (1-12), currency: orders, revenue
//	members    survivor, member, merged_at (projections/members)
//	horizon    id (always 1), at: the latest business time of an event folded
//	idle_months day (the first of the UTC month of the last activity), owner, phase: contacts
//	           not merged (kept by addition): the dormant contacts counted about now
//	candidates id (always 1), contacts: the upsell candidates about now (kept by addition)
//	parts      see projections/explain: what the seasonality and the repeat rate are made of,
//	           read only when one of their figures is explained: order/<MM> (each purchase,
//	           by the contact who made it, at its business time, with its amount, in month MM
//	           of the year); cohort/<YYYY-MM> and repeat/<YYYY-MM> (each customer's first and
//	           second purchase, in the cohort of the first: rewritten when a back-dated
//	           purchase or a merge changes them)
//
// Times are BIGINT microseconds since the Unix epoch, UTC.
package value

import (
	"database/sql"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/members"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "customer_value"

// Base names of the tables.
const (
	tableContacts   = "contacts"
	tableFacts      = "facts"
	tablePurchases  = "purchases"
	tableCustomers  = "customers"
	tableMoney      = "money"
	tableFrequency  = "frequency"
	tableRecency    = "recency"
	tableMonetary   = "monetary"
	tableCohorts    = "cohorts"
	tableRF         = "rf"
	tableRFMonths   = "rf_months"
	tableSeasons    = "seasons"
	tableHorizon    = horizon.Table
	tableParts      = "parts"
	tableIdleMonths = "idle_months"
	tableCandidates = "candidates"
)

// Kinds of facts.
const (
	factTouchpoint = "touchpoint"
	factPhase      = "phase"
	factOwner      = "owner"
	factUsage      = "usage"
	factSurvey     = "survey"
)

// KindCreated is the last activity of a contact without touchpoints: its creation.
const KindCreated = "created"

const microsPerDay = int64(24 * time.Hour / time.Microsecond)

// Projection returns the customer value read model, its business dates (cohort months,
// months of the year) taken in zone: a zone of its own is a version of its own
// (period.Version), so that a server whose zone changed rebuilds it.
func Projection(zone *time.Location) *readmodel.Model {
	m := newModel(zone)
	return readmodel.Define(readmodel.Spec{
		Name: Name,
		// 6: the dormant contacts of one owner in one phase indexed by last activity.
		Version: period.Version(6, m.zone),
		Tables: []readmodel.AnyTable{m.contacts, m.facts, m.purchases, m.customers, m.money, m.frequency,
			m.recency, m.monetary, m.rf, m.rfMonths, m.cohorts, m.seasons, m.members.Declared(), m.horizon.Table(), m.parts, m.idleMonths, m.candidates},
		Fold: m.fold,
	})
}

type contactRow struct {
	contactID, customerID, name string
	createdAt                   int64
	owner                       string
	ownerAt, ownerPos           int64
	phase                       string
	phaseAt, phasePos           int64
	idleAt                      int64
	idleKind                    string
	idlePos                     int64
	usage, usageAt, usagePos    int64
	nps, npsAt, npsPos          int64
	merged                      int64
	// The ids of the events of the latest phase, activity, usage report and survey.
	phaseEvent, idleEvent, usageEvent, npsEvent string
}

type factRow struct {
	contactID            string
	kind                 string
	occurredAt, position int64
	text                 string
	num                  int64
	eventID              string
}

type purchaseRow struct {
	customerID              string
	occurredAt, position    int64
	contactID               string
	amount                  int64
	currency, product, plan string
	eventID                 string
}

type customerRow struct {
	customerID      string
	orders, firstAt int64
	secondAt        sql.NullInt64
	lastAt          int64
}

type moneyRow struct {
	customerID, currency string
	orders, revenue      int64
}

type frequencyRow struct{ orders, customers int64 }

type recencyRow struct{ day, customers int64 }

type monetaryRow struct {
	currency          string
	bucket, customers int64
}

type rfRow struct {
	day, orders        int64
	currency           string
	customers, revenue int64
}

type cohortRow struct {
	cohort               string
	customers, repeaters int64
}

type seasonRow struct {
	month           int64
	currency        string
	orders, revenue int64
}

// idleMonthRow counts the contacts (not merged) whose last activity is in a month (day: its
// first), by owner and phase.
type idleMonthRow struct {
	day          int64
	owner, phase string
	contacts     int64
}

// candidatesRow counts the upsell candidates about now.
type candidatesRow struct{ id, contacts int64 }

// model holds the declarations of the tables the fold writes.
type model struct {
	zone       *time.Location
	contacts   *readmodel.Table[contactRow]
	facts      *readmodel.Table[factRow]
	purchases  *readmodel.Table[purchaseRow]
	customers  *readmodel.Table[customerRow]
	money      *readmodel.Table[moneyRow]
	frequency  *readmodel.Table[frequencyRow]
	recency    *readmodel.Table[recencyRow]
	monetary   *readmodel.Table[monetaryRow]
	rf         *readmodel.Table[rfRow]
	rfMonths   *readmodel.Table[rfRow]
	cohorts    *readmodel.Table[cohortRow]
	seasons    *readmodel.Table[seasonRow]
	members    *members.Table
	horizon    horizon.Horizon
	parts      *readmodel.Table[explain.Part]
	idleMonths *readmodel.Table[idleMonthRow]
	candidates *readmodel.Table[candidatesRow]
}

func newModel(zone *time.Location) *model {
	if zone == nil {
		zone = time.UTC
	}
	type (
		c  = contactRow
		f  = factRow
		p  = purchaseRow
		cu = customerRow
		mo = moneyRow
		fr = frequencyRow
		re = recencyRow
		mt = monetaryRow
		co = cohortRow
		se = seasonRow
	)
	m := &model{zone: zone, members: members.NewTable()}
	m.contacts = readmodel.NewTable(tableContacts, 1,
		readmodel.Text("contact_id", func(r *c) *string { return &r.contactID }),
		readmodel.Text("customer_id", func(r *c) *string { return &r.customerID }),
		readmodel.Text("name", func(r *c) *string { return &r.name }),
		readmodel.BigInt("created_at", func(r *c) *int64 { return &r.createdAt }),
		readmodel.Text("owner", func(r *c) *string { return &r.owner }),
		readmodel.BigInt("owner_at", func(r *c) *int64 { return &r.ownerAt }),
		readmodel.BigInt("owner_pos", func(r *c) *int64 { return &r.ownerPos }),
		readmodel.Text("phase", func(r *c) *string { return &r.phase }),
		readmodel.BigInt("phase_at", func(r *c) *int64 { return &r.phaseAt }),
		readmodel.BigInt("phase_pos", func(r *c) *int64 { return &r.phasePos }),
		readmodel.BigInt("idle_at", func(r *c) *int64 { return &r.idleAt }),
		readmodel.Text("idle_kind", func(r *c) *string { return &r.idleKind }),
		readmodel.BigInt("idle_pos", func(r *c) *int64 { return &r.idlePos }),
		readmodel.Integer("usage", func(r *c) *int64 { return &r.usage }),
		readmodel.BigInt("usage_at", func(r *c) *int64 { return &r.usageAt }),
		readmodel.BigInt("usage_pos", func(r *c) *int64 { return &r.usagePos }),
		readmodel.Integer("nps", func(r *c) *int64 { return &r.nps }),
		readmodel.BigInt("nps_at", func(r *c) *int64 { return &r.npsAt }),
		readmodel.BigInt("nps_pos", func(r *c) *int64 { return &r.npsPos }),
		readmodel.Integer("merged", func(r *c) *int64 { return &r.merged }),
		readmodel.Text("phase_event", func(r *c) *string { return &r.phaseEvent }),
		readmodel.Text("idle_event", func(r *c) *string { return &r.idleEvent }),
		readmodel.Text("usage_event", func(r *c) *string { return &r.usageEvent }),
		readmodel.Text("nps_event", func(r *c) *string { return &r.npsEvent })).
		Clustered().
		WithIndexes(
			// Dormant now: the contacts idle since the cutoff or longer, longest idle first.
			readmodel.Index{Name: "idle", Columns: "idle_at, contact_id", Where: "merged = 0"},
			readmodel.Index{Name: "owner_idle", Columns: "owner, idle_at, contact_id", Where: "merged = 0"},
			readmodel.Index{Name: "phase_idle", Columns: "phase, idle_at, contact_id", Where: "merged = 0"},
			// One owner's in one phase: not past the owner's contacts of the other phases.
			readmodel.Index{Name: "owner_phase_idle", Columns: "owner, phase, idle_at, contact_id", Where: "merged = 0"},
			// Upsell candidates now, by id: the condition of upsellWhere.
			readmodel.Index{Name: "candidates", Columns: "contact_id", Where: candidatesWhere},
			readmodel.Index{Name: "customer", Columns: "customer_id"})
	m.facts = readmodel.NewTable(tableFacts, 4,
		readmodel.Text("contact_id", func(r *f) *string { return &r.contactID }),
		readmodel.Text("kind", func(r *f) *string { return &r.kind }),
		readmodel.BigInt("occurred_at", func(r *f) *int64 { return &r.occurredAt }),
		readmodel.BigInt("position", func(r *f) *int64 { return &r.position }),
		readmodel.Text("text", func(r *f) *string { return &r.text }),
		readmodel.Integer("num", func(r *f) *int64 { return &r.num }),
		readmodel.Text("event_id", func(r *f) *string { return &r.eventID })).
		Clustered()
	m.purchases = readmodel.NewTable(tablePurchases, 3,
		readmodel.Text("customer_id", func(r *p) *string { return &r.customerID }),
		readmodel.BigInt("occurred_at", func(r *p) *int64 { return &r.occurredAt }),
		readmodel.BigInt("position", func(r *p) *int64 { return &r.position }),
		readmodel.Text("contact_id", func(r *p) *string { return &r.contactID }),
		readmodel.BigInt("amount", func(r *p) *int64 { return &r.amount }),
		readmodel.Text("currency", func(r *p) *string { return &r.currency }),
		readmodel.Text("product", func(r *p) *string { return &r.product }),
		readmodel.Text("plan", func(r *p) *string { return &r.plan }),
		readmodel.Text("event_id", func(r *p) *string { return &r.eventID })).
		Clustered()
	m.customers = readmodel.NewTable(tableCustomers, 1,
		readmodel.Text("customer_id", func(r *cu) *string { return &r.customerID }),
		readmodel.Integer("orders", func(r *cu) *int64 { return &r.orders }),
		readmodel.BigInt("first_at", func(r *cu) *int64 { return &r.firstAt }),
		readmodel.NullBigInt("second_at", func(r *cu) *sql.NullInt64 { return &r.secondAt }),
		readmodel.BigInt("last_at", func(r *cu) *int64 { return &r.lastAt })).
		Clustered().
		WithIndexes(
			readmodel.Index{Name: "last", Columns: "last_at, customer_id"},
			readmodel.Index{Name: "orders", Columns: "orders, customer_id"},
			readmodel.Index{Name: "first", Columns: "first_at, customer_id"})
	m.money = readmodel.NewTable(tableMoney, 2,
		readmodel.Text("customer_id", func(r *mo) *string { return &r.customerID }),
		readmodel.Text("currency", func(r *mo) *string { return &r.currency }),
		readmodel.BigInt("orders", func(r *mo) *int64 { return &r.orders }),
		readmodel.BigInt("revenue", func(r *mo) *int64 { return &r.revenue })).
		Clustered().
		WithIndexes(readmodel.Index{Name: "revenue", Columns: "currency, revenue"})
	m.frequency = readmodel.NewTable(tableFrequency, 1,
		readmodel.BigInt("orders", func(r *fr) *int64 { return &r.orders }),
		readmodel.BigInt("customers", func(r *fr) *int64 { return &r.customers })).Clustered()
	m.recency = readmodel.NewTable(tableRecency, 1,
		readmodel.BigInt("day", func(r *re) *int64 { return &r.day }),
		readmodel.BigInt("customers", func(r *re) *int64 { return &r.customers })).Clustered()
	m.monetary = readmodel.NewTable(tableMonetary, 2,
		readmodel.Text("currency", func(r *mt) *string { return &r.currency }),
		readmodel.BigInt("bucket", func(r *mt) *int64 { return &r.bucket }),
		readmodel.BigInt("customers", func(r *mt) *int64 { return &r.customers })).Clustered()
	m.rf, m.rfMonths = rfTable(tableRF), rfTable(tableRFMonths)
	m.cohorts = readmodel.NewTable(tableCohorts, 1,
		readmodel.Text("cohort", func(r *co) *string { return &r.cohort }),
		readmodel.BigInt("customers", func(r *co) *int64 { return &r.customers }),
		readmodel.BigInt("repeaters", func(r *co) *int64 { return &r.repeaters })).Clustered()
	m.seasons = readmodel.NewTable(tableSeasons, 2,
		readmodel.Integer("month", func(r *se) *int64 { return &r.month }),
		readmodel.Text("currency", func(r *se) *string { return &r.currency }),
		readmodel.BigInt("orders", func(r *se) *int64 { return &r.orders }),
		readmodel.BigInt("revenue", func(r *se) *int64 { return &r.revenue })).Clustered()
	m.horizon = horizon.New()
	m.parts = partsShape().NewTable(tableParts)
	m.idleMonths = readmodel.NewTable(tableIdleMonths, 3,
		readmodel.BigInt("day", func(r *idleMonthRow) *int64 { return &r.day }),
		readmodel.Text("owner", func(r *idleMonthRow) *string { return &r.owner }),
		readmodel.Text("phase", func(r *idleMonthRow) *string { return &r.phase }),
		readmodel.BigInt("contacts", func(r *idleMonthRow) *int64 { return &r.contacts })).Clustered()
	m.candidates = readmodel.NewTable(tableCandidates, 1,
		readmodel.Integer("id", func(r *candidatesRow) *int64 { return &r.id }),
		readmodel.BigInt("contacts", func(r *candidatesRow) *int64 { return &r.contacts })).Clustered()
	return m
}

// putContact writes the contact's row after, before its row before (nil for a new contact),
// and moves it between the kept counts of the dormant contacts and of the upsell candidates.
func (m *model) putContact(rows *readmodel.Rows, before *contactRow, after contactRow) {
	was, is := before != nil && before.candidate(), after.candidate()
	switch {
	case is && !was:
		m.candidates.Add(rows, candidatesRow{id: 1, contacts: 1})
	case was && !is:
		m.candidates.Add(rows, candidatesRow{id: 1, contacts: -1})
	}
	if before != nil && before.merged == after.merged && before.owner == after.owner && before.phase == after.phase &&
		monthOf(dayOf(before.idleAt)) == monthOf(dayOf(after.idleAt)) {
		// In the same count: most changes (a usage report, a touchpoint in the same month).
		m.contacts.Upsert(rows, after)
		return
	}
	if before != nil && before.merged == 0 {
		m.idleMonths.Add(rows, idleMonthRow{day: monthOf(dayOf(before.idleAt)), owner: before.owner, phase: before.phase, contacts: -1})
	}
	if after.merged == 0 {
		m.idleMonths.Add(rows, idleMonthRow{day: monthOf(dayOf(after.idleAt)), owner: after.owner, phase: after.phase, contacts: 1})
	}
	m.contacts.Upsert(rows, after)
}

// candidate tells whether the contact is an upsell candidate as it stands (upsellWhere).
func (c *contactRow) candidate() bool {
	return c.merged == 0 && c.usage >= UpsellThreshold && (c.nps >= PromoterNPS || c.phase == string(contact.Loyal))
}

// rfTable declares the table of counts per day of last purchase (or month), orders and
// currency.
func rfTable(name string) *readmodel.Table[rfRow] {
	return readmodel.NewTable(name, 3,
		readmodel.BigInt("day", func(r *rfRow) *int64 { return &r.day }),
		readmodel.BigInt("orders", func(r *rfRow) *int64 { return &r.orders }),
		readmodel.Text("currency", func(r *rfRow) *string { return &r.currency }),
		readmodel.BigInt("customers", func(r *rfRow) *int64 { return &r.customers }),
		readmodel.BigInt("revenue", func(r *rfRow) *int64 { return &r.revenue })).Clustered()
}

// fold folds one event into the rows and moves the horizon to it. Events of other types are
// ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	folded, err := m.foldEvent(e, rows)
	if folded && err == nil {
		m.horizon.Reach(rows, e.OccurredAt.UnixMicro())
	}
	return err
}

// foldEvent folds one event of a type the read model reads (folded), else does nothing.
func (m *model) foldEvent(e *readmodel.Event, rows *readmodel.Rows) (folded bool, err error) {
	at := e.OccurredAt.UnixMicro()
	switch e.Type {
	case contact.TypeCreated:
		ev, err := readmodel.Decode[contact.Created](e)
		if err != nil {
			return true, err
		}
		m.putContact(rows, nil, contactRow{contactID: ev.ContactID, customerID: ev.ContactID, name: ev.Name.Display(), createdAt: at,
			owner: ev.Owner, ownerAt: at, ownerPos: e.Position, phase: string(contact.Lead), phaseAt: at, phasePos: e.Position,
			idleAt: at, idleKind: KindCreated, idlePos: e.Position, usage: -1, nps: -1, phaseEvent: e.ID, idleEvent: e.ID})
		// A past time's owner and phase are the latest facts then: the first are the creation's.
		m.fact(rows, e, ev.ContactID, factOwner, ev.Owner, 0)
		m.fact(rows, e, ev.ContactID, factPhase, string(contact.Lead), 0)
		return true, nil
	case contact.TypeDetailsChanged:
		ev, err := readmodel.Decode[contact.DetailsChanged](e)
		if err != nil {
			return true, err
		}
		if ev.Name == nil {
			return false, nil
		}
		// A name is not of any time: the horizon stays.
		return false, m.edit(rows, ev.ContactID, func(c *contactRow) { c.name = ev.Name.Display() })
	case contact.TypeOwnerChanged:
		ev, err := readmodel.Decode[contact.OwnerChanged](e)
		if err != nil {
			return true, err
		}
		m.fact(rows, e, ev.ContactID, factOwner, ev.To, 0)
		return true, m.edit(rows, ev.ContactID, func(c *contactRow) {
			if later(at, e.Position, c.ownerAt, c.ownerPos) {
				c.owner, c.ownerAt, c.ownerPos = ev.To, at, e.Position
			}
		})
	case contact.TypePhaseChanged:
		ev, err := readmodel.Decode[contact.PhaseChanged](e)
		if err != nil {
			return true, err
		}
		m.fact(rows, e, ev.ContactID, factPhase, string(ev.To), 0)
		return true, m.edit(rows, ev.ContactID, func(c *contactRow) {
			if later(at, e.Position, c.phaseAt, c.phasePos) {
				c.phase, c.phaseAt, c.phasePos, c.phaseEvent = string(ev.To), at, e.Position, e.ID
			}
		})
	case contact.TypeTouchpointRecorded:
		ev, err := readmodel.Decode[contact.TouchpointRecorded](e)
		if err != nil {
			return true, err
		}
		m.fact(rows, e, ev.ContactID, factTouchpoint, string(ev.Kind), 0)
		return true, m.edit(rows, ev.ContactID, func(c *contactRow) {
			if c.idleKind == KindCreated || later(at, e.Position, c.idleAt, c.idlePos) {
				c.idleAt, c.idleKind, c.idlePos, c.idleEvent = at, string(ev.Kind), e.Position, e.ID
			}
		})
	case contact.TypeUsageReported:
		ev, err := readmodel.Decode[contact.UsageReported](e)
		if err != nil {
			return true, err
		}
		m.fact(rows, e, ev.ContactID, factUsage, "", int64(ev.PercentOfLimit))
		return true, m.edit(rows, ev.ContactID, func(c *contactRow) {
			if c.usage < 0 || later(at, e.Position, c.usageAt, c.usagePos) {
				c.usage, c.usageAt, c.usagePos, c.usageEvent = int64(ev.PercentOfLimit), at, e.Position, e.ID
			}
		})
	case contact.TypeSurveyRecorded:
		ev, err := readmodel.Decode[contact.SurveyRecorded](e)
		if err != nil {
			return true, err
		}
		m.fact(rows, e, ev.ContactID, factSurvey, "", int64(ev.NPS))
		return true, m.edit(rows, ev.ContactID, func(c *contactRow) {
			if c.nps < 0 || later(at, e.Position, c.npsAt, c.npsPos) {
				c.nps, c.npsAt, c.npsPos, c.npsEvent = int64(ev.NPS), at, e.Position, e.ID
			}
		})
	case contact.TypePurchaseRecorded:
		ev, err := readmodel.Decode[contact.PurchaseRecorded](e)
		if err != nil {
			return true, err
		}
		return true, m.purchase(rows, e, ev)
	case contact.TypeDuplicateAbsorbed:
		ev, err := readmodel.Decode[contact.DuplicateAbsorbed](e)
		if err != nil {
			return true, err
		}
		return true, m.absorb(rows, ev.ContactID, ev.DuplicateID, at)
	}
	return false, nil
}

// later tells whether the event at (at, pos) comes after the one at (than, thanPos) in
// business time, the log position breaking ties.
func later(at, pos, than, thanPos int64) bool {
	return at > than || (at == than && pos > thanPos)
}

// edit changes the contact's row and moves the horizon to the event.
func (m *model) edit(rows *readmodel.Rows, contactID string, change func(*contactRow)) error {
	c, err := m.contacts.Need(rows, contactID)
	if err != nil {
		return err
	}
	before := c
	change(&c)
	m.putContact(rows, &before, c)
	return nil
}

// fact records one fact of the contact's history.
func (m *model) fact(rows *readmodel.Rows, e *readmodel.Event, contactID, kind, text string, num int64) {
	m.facts.Insert(rows, factRow{position: e.Position, contactID: contactID, kind: kind,
		occurredAt: e.OccurredAt.UnixMicro(), text: text, num: num, eventID: e.ID})
}

// purchase records an order for the customer of the contact, and the customer's new totals.
func (m *model) purchase(rows *readmodel.Rows, e *readmodel.Event, ev *contact.PurchaseRecorded) error {
	c, err := m.contacts.Need(rows, ev.ContactID)
	if err != nil {
		return err
	}
	at := e.OccurredAt.UnixMicro()
	before := m.purchases.Group(rows, c.customerID)
	p := purchaseRow{customerID: c.customerID, occurredAt: at, position: e.Position, contactID: ev.ContactID,
		amount: ev.Amount.Amount, currency: ev.Amount.Currency, product: ev.Product, plan: ev.Plan, eventID: e.ID}
	m.purchases.Upsert(rows, p)
	month := int64(e.OccurredAt.In(m.zone).Month())
	m.seasons.Add(rows, seasonRow{month: month, currency: p.currency, orders: 1, revenue: p.amount})
	m.parts.Upsert(rows, explain.Part{Entity: ev.ContactID, Figure: orderFigure(month), Position: e.Position, EventID: e.ID,
		At: at, Count: 1, Amount: p.amount, Currency: p.currency})
	m.resum(rows, c.customerID, summarize(before), summarize(m.purchases.Group(rows, c.customerID)))
	return nil
}

// absorb makes the duplicate's facts the survivor's: its contacts (the duplicate and those
// merged into it before) count for the survivor, its purchases move to the survivor's, and
// its latest touchpoint, usage and survey count when later than the survivor's.
func (m *model) absorb(rows *readmodel.Rows, survivorID, duplicateID string, at int64) error {
	m.members.Absorb(rows, survivorID, duplicateID, at)
	s, err := m.contacts.Need(rows, survivorID)
	if err != nil {
		return err
	}
	d, err := m.contacts.Need(rows, duplicateID)
	if err != nil {
		return err
	}
	survivorBefore := s
	if d.idleKind != KindCreated && (s.idleKind == KindCreated || later(d.idleAt, d.idlePos, s.idleAt, s.idlePos)) {
		s.idleAt, s.idleKind, s.idlePos, s.idleEvent = d.idleAt, d.idleKind, d.idlePos, d.idleEvent
	}
	if d.usage >= 0 && (s.usage < 0 || later(d.usageAt, d.usagePos, s.usageAt, s.usagePos)) {
		s.usage, s.usageAt, s.usagePos, s.usageEvent = d.usage, d.usageAt, d.usagePos, d.usageEvent
	}
	if d.nps >= 0 && (s.nps < 0 || later(d.npsAt, d.npsPos, s.npsAt, s.npsPos)) {
		s.nps, s.npsAt, s.npsPos, s.npsEvent = d.nps, d.npsAt, d.npsPos, d.npsEvent
	}
	m.putContact(rows, &survivorBefore, s)
	for _, r := range m.membersOf(rows, duplicateID) {
		mc, ok := m.contacts.Get(rows, r)
		if !ok {
			continue
		}
		before := mc
		mc.customerID = survivorID
		if r == duplicateID {
			mc.merged = 1
		}
		m.putContact(rows, &before, mc)
	}

	moved := m.purchases.Group(rows, duplicateID)
	if len(moved) == 0 {
		return nil
	}
	before := m.purchases.Group(rows, survivorID)
	for _, p := range moved {
		m.purchases.Delete(rows, p.customerID, p.occurredAt, p.position)
		p.customerID = survivorID
		m.purchases.Upsert(rows, p)
	}
	m.resum(rows, duplicateID, summarize(moved), summary{})
	m.resum(rows, survivorID, summarize(before), summarize(m.purchases.Group(rows, survivorID)))
	return nil
}

// membersOf is the contact and every contact merged into it before.
func (m *model) membersOf(rows *readmodel.Rows, contactID string) []string {
	ids := []string{contactID}
	return append(ids, m.members.Group(rows, contactID)...)
}
