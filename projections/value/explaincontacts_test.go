package value_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/value"
)

// checkExplainedDormant: over several questions (days, phase, owner), the count of the
// dormant contacts and each owner's are what their parts add up to, one part per dormant
// contact listed (read page by page), with the event of its last activity at the time and
// of the kind the list shows.
func checkExplainedDormant(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location, asOf time.Time, log eventLog) int {
	t.Helper()
	ctx := context.Background()
	checked := 0
	for _, params := range []value.DormantParams{{Days: 30}, {}, {Days: 1}, {Days: 200, Owner: "rep-3"}, {Days: 2, Phase: "lost"},
		{Days: 30, Owner: "rep-b"}, {Days: 10, Phase: "lead"}} {
		params.AsOf = asOf
		listed := map[string]value.DormantContact{}
		var count int64
		var owners []value.OwnerCount
		for cursor := ""; ; {
			params.Cursor, params.Limit = cursor, 3
			answer, err := value.QueryDormant(ctx, db, tables, zone, params)
			if err != nil {
				t.Fatal(err)
			}
			count, owners = answer.Count, answer.Owners
			for _, c := range answer.Contacts {
				listed[c.ContactID] = c
			}
			if cursor = answer.NextCursor; cursor == "" {
				break
			}
		}
		if int64(len(listed)) != count {
			t.Errorf("%s %+v: count %d, %d contacts listed", zone, params, count, len(listed))
		}
		check := func(path string, want int64, owner string) {
			t.Helper()
			params.Cursor = ""
			parts := projectiontest.CountingOne(t, path, projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
				p := params
				p.Limit, p.Cursor = 4, cursor
				return value.ExplainDormant(ctx, db, tables, p, path)
			}))
			if int64(len(parts)) != want {
				t.Errorf("%s %+v: %s = %d, its parts %d", zone, params, path, want, len(parts))
			}
			for _, p := range parts {
				c, ok := listed[p.Entity]
				if !ok || !c.LastActivityAt.Equal(p.OccurredAt) || c.LastActivity != p.Bucket || owner != "" && c.Owner != owner {
					t.Fatalf("%s %+v: %s: part %+v is not a dormant contact listed (%+v)", zone, params, path, p, c)
				}
				log.made(t, path, p, "contact.touchpoint_recorded", "contact.created")
			}
			checked++
		}
		check("count", count, "")
		var sum int64
		for _, o := range owners {
			check("owners."+o.Owner+".count", o.Count, o.Owner)
			sum += o.Count
		}
		if sum != count {
			t.Errorf("%s %+v: the owners count %d, the count is %d", zone, params, sum, count)
		}
		// Each contact's figures: its one part, idle for days_idle up to as_of.
		for id, c := range listed {
			for _, figure := range []string{"last_activity", "last_activity_at", "days_idle"} {
				path := "contacts." + id + "." + figure
				a, err := value.ExplainDormant(ctx, db, tables, params, path)
				if err != nil || a.Count != 1 || len(a.Parts) != 1 || a.Parts[0].Entity != id || a.Parts[0].Bucket != c.LastActivity ||
					explain.Days(asOf.Sub(a.Parts[0].OccurredAt).Microseconds()) != c.DaysIdle {
					t.Fatalf("%s %+v: %s of %+v: %+v %v", zone, params, path, c, a, err)
				}
			}
			checked++
		}
	}
	return checked
}

// checkExplainedUpsell: every candidate's usage percent, NPS and phase are explained by the
// one event that set them, at the time shown, with the value shown.
func checkExplainedUpsell(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location, asOf time.Time, log eventLog) int {
	t.Helper()
	ctx := context.Background()
	answer, err := value.QueryUpsell(ctx, db, tables, zone, value.UpsellParams{AsOf: asOf, Limit: value.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	one := func(path string) explain.Entry {
		t.Helper()
		parts := projectiontest.CountingOne(t, path, projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
			return value.ExplainUpsell(ctx, db, tables, asOf, path, 1, cursor)
		}))
		if len(parts) != 1 || parts[0].OccurredAt.After(asOf) {
			t.Fatalf("%s as of %s: %s: parts %+v, want the one event up to as_of", zone, asOf, path, parts)
		}
		switch parts[0].Figure {
		case "usage":
			log.made(t, path, parts[0], "contact.usage_reported")
		case "survey":
			log.made(t, path, parts[0], "contact.survey_recorded")
		default:
			log.made(t, path, parts[0], "contact.phase_changed", "contact.created")
		}
		return parts[0]
	}
	checked := 0
	for _, c := range answer.Candidates {
		prefix := "candidates." + c.ContactID + "."
		u := one(prefix + "usage_percent")
		if at := one(prefix + "usage_reported_at"); at.Position != u.Position {
			t.Errorf("%s: usage reported at %+v, usage %+v", c.ContactID, at, u)
		}
		if u.Value == nil || *u.Value != c.UsagePercent || !u.OccurredAt.Equal(c.UsageReportedAt) {
			t.Errorf("%s as of %s: %s usage %d at %s, its part %+v", zone, asOf, c.ContactID, c.UsagePercent, c.UsageReportedAt, u)
		}
		if c.NPS != nil {
			s := one(prefix + "nps")
			if s.Value == nil || *s.Value != *c.NPS || !s.OccurredAt.Equal(*c.SurveyedAt) {
				t.Errorf("%s as of %s: %s NPS %d at %s, its part %+v", zone, asOf, c.ContactID, *c.NPS, *c.SurveyedAt, s)
			}
			checked++
		} else if _, err := value.ExplainUpsell(ctx, db, tables, asOf, prefix+"nps", 0, ""); !invalidExplain(err) {
			t.Errorf("%s: the NPS of a candidate without a survey: %v", c.ContactID, err)
		}
		if p := one(prefix + "phase"); p.Bucket != c.Phase || p.Value != nil {
			t.Errorf("%s as of %s: %s phase %s, its part %+v", zone, asOf, c.ContactID, c.Phase, p)
		}
		checked += 2 + checkExplainedReasons(t, db, tables, asOf, c, log)
	}
	if int64(len(answer.Candidates)) != answer.Count {
		t.Errorf("%s as of %s: count %d, %d candidates listed", zone, asOf, answer.Count, len(answer.Candidates))
	}
	parts := projectiontest.CountingOne(t, "count", projectiontest.ExplainAll(t, "count", func(cursor string) (explain.Answer, error) {
		return value.ExplainUpsell(ctx, db, tables, asOf, "count", 2, cursor)
	}))
	if countOf(parts) != answer.Count {
		t.Errorf("%s as of %s: count %d, its parts add up to %d", zone, asOf, answer.Count, countOf(parts))
	}
	for _, p := range parts {
		log.made(t, "count", p, "contact.usage_reported")
		if !slices.ContainsFunc(answer.Candidates, func(c value.Candidate) bool { return c.ContactID == p.Entity }) {
			t.Errorf("%s as of %s: count: part %+v is not of a candidate", zone, asOf, p)
		}
	}
	return checked + 1
}

// checkExplainedReasons: the reasons of candidate c add up to its parts, one per reason, each
// made by the event of its fact (usage report, survey, phase change or creation) with the
// value the reason states; each reason alone (reasons.<i>) is its one part.
func checkExplainedReasons(t *testing.T, db *projections.DB, tables projections.Tables, asOf time.Time, c value.Candidate, log eventLog) int {
	t.Helper()
	ctx := context.Background()
	explainAll := func(path string) []explain.Entry {
		return projectiontest.CountingOne(t, path, projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) {
			return value.ExplainUpsell(ctx, db, tables, asOf, path, 1, cursor)
		}))
	}
	prefix := "candidates." + c.ContactID + ".reasons"
	all := explainAll(prefix)
	if countOf(all) != int64(len(c.Reasons)) {
		t.Fatalf("as of %s: %s: %d reasons %q, parts adding up to %d: %+v", asOf, c.ContactID, len(c.Reasons), c.Reasons, countOf(all), all)
	}
	for i, reason := range c.Reasons {
		path := fmt.Sprintf("%s.%d", prefix, i)
		one := explainAll(path)
		if len(one) != 1 || !slices.ContainsFunc(all, func(e explain.Entry) bool { return e.EventID == one[0].EventID && e.Bucket == one[0].Bucket }) {
			t.Fatalf("as of %s: %s: parts %+v, want one of %+v", asOf, path, one, all)
		}
		p := one[0]
		switch {
		case strings.HasPrefix(reason, "latest usage "):
			log.made(t, path, p, "contact.usage_reported")
			if p.Bucket != value.ReasonUsage || p.Value == nil || *p.Value != c.UsagePercent || !strings.Contains(reason, fmt.Sprintf(" %d%% ", *p.Value)) {
				t.Errorf("%s: reason %q, its part %+v", path, reason, p)
			}
		case strings.HasPrefix(reason, "latest NPS "):
			log.made(t, path, p, "contact.survey_recorded")
			if p.Bucket != value.ReasonNPS || p.Value == nil || c.NPS == nil || *p.Value != *c.NPS || !strings.Contains(reason, fmt.Sprintf(" %d ", *p.Value)) {
				t.Errorf("%s: reason %q, its part %+v", path, reason, p)
			}
		case reason == "phase loyal":
			log.made(t, path, p, "contact.phase_changed")
			if p.Bucket != value.ReasonLoyal || c.Phase != "loyal" {
				t.Errorf("%s: reason %q, its part %+v", path, reason, p)
			}
		default:
			t.Errorf("%s: reason %q of no kind", path, reason)
		}
	}
	if _, err := value.ExplainUpsell(ctx, db, tables, asOf, fmt.Sprintf("%s.%d", prefix, len(c.Reasons)), 0, ""); !invalidExplain(err) {
		t.Errorf("%s: the reason past the last: %v", c.ContactID, err)
	}
	return len(c.Reasons)
}

func invalidExplain(err error) bool {
	var de *domain.Error
	return errors.As(err, &de) && de.Code == domain.CodeInvalid && de.Field == "explain"
}

// checkExplainedCustomers: every figure of every customer of the list, and of each contact's
// value, is what its purchases add up to: orders and revenue per currency (and so LTV and
// AOV), the first, second and last purchase and the days between them, the median of the
// days between purchases, recency, and the purchases behind R, F and M; the customers scored
// are every customer's last purchase.
func checkExplainedCustomers(t *testing.T, db *projections.DB, tables projections.Tables, zone *time.Location, asOf time.Time, log eventLog) int {
	t.Helper()
	ctx := context.Background()
	answer, err := value.QueryCustomers(ctx, db, tables, zone, value.CustomersParams{AsOf: asOf, Limit: value.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if answer.NextCursor != "" {
		t.Fatalf("more than %d customers", value.MaxLimit)
	}
	all := func(path string, explainer func(path string, limit int, cursor string) (explain.Answer, error)) []explain.Entry {
		t.Helper()
		parts := projectiontest.ExplainAll(t, path, func(cursor string) (explain.Answer, error) { return explainer(path, 3, cursor) })
		for _, p := range parts {
			log.made(t, path, p, "contact.purchase_recorded")
		}
		return parts
	}
	list := func(path string, limit int, cursor string) (explain.Answer, error) {
		return value.ExplainCustomers(ctx, db, tables, zone, asOf, path, limit, cursor)
	}
	checked := 0
	if got := countOf(all("customers", list)); got != answer.Customers {
		t.Errorf("%s as of %s: customers %d, its parts %d", zone, asOf, answer.Customers, got)
	}
	for i, c := range answer.List {
		checked += checkExplainedCustomer(t, zone, asOf, c, "list."+c.ContactID+".", func(path string) []explain.Entry { return all(path, list) })
		if i%5 != 0 {
			continue
		}
		// The contact's value: the same figures under customer.
		byValue := func(path string, limit int, cursor string) (explain.Answer, error) {
			return value.ExplainValue(ctx, db, tables, zone, c.ContactID, asOf, path, limit, cursor)
		}
		v, err := value.QueryValue(ctx, db, tables, zone, value.ValueParams{ContactID: c.ContactID, AsOf: asOf})
		if err != nil || v.Customer == nil {
			t.Fatalf("value of %s: %+v %v", c.ContactID, v, err)
		}
		checked += checkExplainedCustomer(t, zone, asOf, *v.Customer, "customer.", func(path string) []explain.Entry { return all(path, byValue) })
		if got := countOf(all("customers", byValue)); got != v.Customers {
			t.Errorf("%s as of %s: value of %s: customers %d, its parts %d", zone, asOf, c.ContactID, v.Customers, got)
		}
	}
	return checked
}

// eventLog is a history by event id.
type eventLog map[string]eventstore.Event

func logOf(events []eventstore.Event) eventLog {
	log := eventLog{}
	for _, e := range events {
		log[e.ID] = e
	}
	return log
}

// made fails t unless the part names an event of the history, of one of types (without
// their version), at the part's position and business time.
func (log eventLog) made(t *testing.T, path string, p explain.Entry, types ...string) {
	t.Helper()
	e, ok := log[p.EventID]
	if !ok || e.Position != p.Position || !e.OccurredAt.Equal(p.OccurredAt) || !slices.Contains(types, e.Type[:max(strings.LastIndexByte(e.Type, '.'), 0)]) {
		t.Fatalf("explain %s: part %+v is not made by its event %+v (one of %v)", path, p, e, types)
	}
}

func countOf(parts []explain.Entry) int64 {
	var n int64
	for _, p := range parts {
		n += p.Count
	}
	return n
}

// checkExplainedCustomer checks the figures of customer c under prefix.
func checkExplainedCustomer(t *testing.T, zone *time.Location, asOf time.Time, c value.Customer, prefix string, parts func(path string) []explain.Entry) int {
	t.Helper()
	fail := func(figure string, want any, got []explain.Entry) {
		t.Helper()
		t.Errorf("%s as of %s: %s%s = %v, its parts %+v", zone, asOf, prefix, figure, want, got)
	}
	purchases := func(figure string) []explain.Entry {
		t.Helper()
		ps := projectiontest.CountingOne(t, prefix+figure, parts(prefix+figure))
		for _, p := range ps {
			if p.Amount == nil || p.OccurredAt.After(asOf) || p.Bucket != c.ContactID {
				t.Fatalf("%s%s: part %+v is no purchase of %s up to %s", prefix, figure, p, c.ContactID, asOf)
			}
		}
		return ps
	}
	at := func(figure string, want time.Time) []explain.Entry {
		t.Helper()
		ps := purchases(figure)
		if len(ps) != 1 || !ps[0].OccurredAt.Equal(want) {
			fail(figure, want, ps)
		}
		return ps
	}
	checked := 0
	all := purchases("orders")
	if int64(len(all)) != c.Orders {
		fail("orders", c.Orders, all)
	}
	byCurrency := map[string][]explain.Entry{}
	for _, p := range all {
		byCurrency[p.Currency] = append(byCurrency[p.Currency], p)
	}
	for _, cv := range c.Currencies {
		for _, figure := range []string{"orders", "revenue", "ltv", "average_order_value", "monetary_score"} {
			path := "currencies." + cv.Currency + "." + figure
			ps := purchases(path)
			var revenue int64
			for _, p := range ps {
				revenue += *p.Amount
			}
			if n := int64(len(ps)); n != cv.Orders || revenue != cv.Revenue || revenue != cv.LTV || (2*revenue+n)/(2*n) != cv.AverageOrderValue ||
				!slices.Equal(positions(ps), positions(byCurrency[cv.Currency])) {
				fail(path, cv, ps)
			}
			checked++
		}
	}
	at("first_purchase", c.FirstPurchase)
	last := at("last_purchase", c.LastPurchase)
	if r := at("r", c.LastPurchase); explain.Days(asOf.Sub(r[0].OccurredAt).Microseconds()) != c.RecencyDays {
		fail("recency_days", c.RecencyDays, last)
	}
	at("recency_days", c.LastPurchase)
	if c.SecondPurchase != nil {
		at("second_purchase", *c.SecondPurchase)
		ps := purchases("days_to_second")
		// In order of position: a back-dated first purchase comes after the second.
		slices.SortFunc(ps, func(a, b explain.Entry) int { return strings.Compare(a.Figure, b.Figure) })
		if len(ps) != 2 || ps[0].Figure != "first_purchase" || ps[1].Figure != "second_purchase" ||
			explain.Days(ps[1].OccurredAt.Sub(ps[0].OccurredAt).Microseconds()) != *c.DaysToSecond {
			fail("days_to_second", *c.DaysToSecond, ps)
		}
	}
	// The median of the days between consecutive purchases, from the parts' times.
	ps := purchases("median_days_between")
	var gaps []int64
	slices.SortStableFunc(ps, func(a, b explain.Entry) int { return a.OccurredAt.Compare(b.OccurredAt) })
	for i := 1; i < len(ps); i++ {
		gaps = append(gaps, ps[i].OccurredAt.Sub(ps[i-1].OccurredAt).Microseconds())
	}
	slices.Sort(gaps)
	if got := value.MedianDays(gaps); fmt.Sprint(deref(got)) != fmt.Sprint(deref(c.MedianDaysBetween)) {
		fail("median_days_between", deref(c.MedianDaysBetween), ps)
	}
	for _, figure := range []string{"f", "segment"} {
		if ps := purchases(figure); int64(len(ps)) != c.Orders {
			fail(figure, c.Orders, ps)
		}
	}
	// M: the purchases of the currencies scoring it.
	var want int
	for _, p := range purchases("m") {
		i := slices.IndexFunc(c.Currencies, func(cv value.CurrencyValue) bool { return cv.Currency == p.Currency })
		if i < 0 || c.Currencies[i].MonetaryScore != c.M {
			t.Fatalf("%sm: part %+v is not in a currency scoring %d", prefix, p, c.M)
		}
		want++
	}
	var best int64
	for _, cv := range c.Currencies {
		if cv.MonetaryScore == c.M {
			best += cv.Orders
		}
	}
	if int64(want) != best {
		t.Errorf("%s as of %s: %sm: %d parts, the currencies scoring %d hold %d orders", zone, asOf, prefix, want, c.M, best)
	}
	return checked + 12
}

func positions(parts []explain.Entry) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p.Position)
	}
	return out
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func TestExplainRejectsBadPathsOfCustomersAndContacts(t *testing.T) {
	asOf := time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)
	events := projectiontest.ReadHistory(t, "testdata/utc/customers/events.txt")
	ctx := context.Background()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := value.Projection(time.UTC)
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events)
		for _, path := range []string{"", "count.", "owners", "owners.rep-a", "owners.rep-a.total", "contacts", "days",
			"contacts.c1.days_idle", "contacts.c3.name", "contacts.c3", "contacts..days_idle"} {
			if _, err := value.ExplainDormant(ctx, db, tables, value.DormantParams{AsOf: asOf, Days: 30}, path); !invalidExplain(err) {
				t.Errorf("dormant %q: error = %v, want an invalid explain", path, err)
			}
		}
		if _, err := value.ExplainDormant(ctx, db, tables, value.DormantParams{AsOf: asOf, Owner: "rep-b"}, "owners.rep-a.count"); !invalidExplain(err) {
			t.Errorf("dormant of rep-b, rep-a's count: %v", err)
		}
		if _, err := value.ExplainDormant(ctx, db, tables, value.DormantParams{AsOf: asOf, Days: -1}, "count"); err == nil {
			t.Error("dormant: days -1 accepted")
		}
		// c2 is not a candidate (its latest usage is d's 70); c5 has 100 but NPS 8, and is not
		// loyal; c1 is.
		for _, path := range []string{"candidates.c2.usage_percent", "candidates.c5.nps", "candidates.c1", "candidates.c1.reasons.2",
			"candidates.c1.reasons.01", "candidates.c1.reasons.-1", "candidates.c1.reasons.x", "candidates.c1.usage_percent.0",
			"candidates.c2.reasons", "candidates.c1.reasons.", "count.", "candidates..phase", "c1.phase", "candidates.nobody.phase"} {
			if _, err := value.ExplainUpsell(ctx, db, tables, asOf, path, 0, ""); !invalidExplain(err) {
				t.Errorf("upsell %q: error = %v, want an invalid explain", path, err)
			}
		}
		for _, path := range []string{"list", "list.c1", "list.c1.name", "list.c1.currencies.JPY", "list.c1.currencies.JPY.amount",
			"list.c1.currencies.GBP.revenue", "list.nobody.orders", "list..orders", "c1.orders", "list.c3.second_purchase"} {
			if _, err := value.ExplainCustomers(ctx, db, tables, time.UTC, asOf, path, 0, ""); !invalidExplain(err) {
				t.Errorf("customers %q: error = %v, want an invalid explain", path, err)
			}
		}
		for _, path := range []string{"customer", "customer.c1.orders", "list.c1.orders", "customer.name", "orders"} {
			if _, err := value.ExplainValue(ctx, db, tables, time.UTC, "c1", asOf, path, 0, ""); !invalidExplain(err) {
				t.Errorf("value %q: error = %v, want an invalid explain", path, err)
			}
		}
		var de *domain.Error
		if _, err := value.ExplainValue(ctx, db, tables, time.UTC, "nobody", asOf, "customer.orders", 0, ""); !errors.As(err, &de) || de.Code != domain.CodeNotFound {
			t.Errorf("value of an unknown contact: %v", err)
		}
	})
}

// TestUpsellCountsAMergedDuplicatesUsage: a duplicate's usage report, merged into a promoter,
// makes the survivor a candidate (about now and about a time before the merge: a merge
// corrects who the customer is), its reason explained by the duplicate's event; until the
// survivor reports a lower usage later, which takes the duplicate's place.
func TestUpsellCountsAMergedDuplicatesUsage(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2024-01-01T09:00:00Z contact-s contact.created.v1 {"contact_id":"s","name":"Ren Ito","channel":"seminar","owner":"rep-a"}
2024-01-02T09:00:00Z contact-d contact.created.v1 {"contact_id":"d","name":"Ren Itoh","channel":"web_form","owner":"rep-b"}
2024-01-03T09:00:00Z contact-o contact.created.v1 {"contact_id":"o","name":"Aiko Sato","channel":"web_form","owner":"rep-a"}
2024-02-01T09:00:00Z contact-s contact.survey_recorded.v1 {"contact_id":"s","survey_id":"s1","nps":10}
2024-02-02T09:00:00Z contact-s contact.usage_reported.v1 {"contact_id":"s","percent_of_limit":40}
2024-02-05T09:00:00Z contact-d contact.usage_reported.v1 {"contact_id":"d","percent_of_limit":92}
2024-02-06T09:00:00Z contact-o contact.usage_reported.v1 {"contact_id":"o","percent_of_limit":81}
2024-02-07T09:00:00Z contact-o contact.survey_recorded.v1 {"contact_id":"o","survey_id":"s2","nps":9}
2024-03-01T09:00:00Z contact-d contact.merged_into.v1 {"contact_id":"d","into":"s"}
2024-03-01T09:00:00Z contact-s contact.duplicate_absorbed.v1 {"contact_id":"s","duplicate_id":"d"}
2024-04-01T09:00:00Z contact-s contact.usage_reported.v1 {"contact_id":"s","percent_of_limit":30}
`)
	log := logOf(events)
	dUsage := events[5]
	ctx := context.Background()
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		p := value.Projection(time.UTC)
		tables := projections.TablesFor(p, "")
		projectiontest.MustApply(t, db, p, tables, events[:len(events)-1])
		for _, asOf := range []time.Time{
			time.Date(2024, 2, 20, 0, 0, 0, 0, time.UTC), // before the merge: d's facts count for s all the same
			time.Date(2024, 3, 15, 0, 0, 0, 0, time.UTC), // now: the kept rows
		} {
			answer, err := value.QueryUpsell(ctx, db, tables, time.UTC, value.UpsellParams{AsOf: asOf, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if answer.Count != 2 || len(answer.Candidates) != 1 || answer.Candidates[0].ContactID != "o" || answer.NextCursor == "" {
				t.Fatalf("as of %s: first page %+v, want o of 2 candidates", asOf, answer)
			}
			next, err := value.QueryUpsell(ctx, db, tables, time.UTC, value.UpsellParams{AsOf: asOf, Limit: 1, Cursor: answer.NextCursor})
			if err != nil {
				t.Fatal(err)
			}
			if next.Count != 2 || len(next.Candidates) != 1 || next.NextCursor != "" {
				t.Fatalf("as of %s: second page %+v, want s of 2 candidates", asOf, next)
			}
			s := next.Candidates[0]
			if s.ContactID != "s" || s.UsagePercent != 92 || s.NPS == nil || *s.NPS != 10 || len(s.Reasons) != 2 {
				t.Fatalf("as of %s: candidate %+v, want s with d's usage 92 and its own NPS 10", asOf, s)
			}
			checkExplainedReasons(t, db, tables, asOf, s, log)
			usage := projectiontest.ExplainAll(t, "candidates.s.reasons.0", func(cursor string) (explain.Answer, error) {
				return value.ExplainUpsell(ctx, db, tables, asOf, "candidates.s.reasons.0", 0, cursor)
			})
			if len(usage) != 1 || usage[0].EventID != dUsage.ID || usage[0].Entity != "s" {
				t.Errorf("as of %s: the usage reason of s: %+v, want d's report %s", asOf, usage, dUsage.ID)
			}
		}
		// s's own later report (30) is its latest: no longer a candidate.
		projectiontest.MustApply(t, db, p, tables, events[len(events)-1:])
		answer, err := value.QueryUpsell(ctx, db, tables, time.UTC, value.UpsellParams{AsOf: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			t.Fatal(err)
		}
		if answer.Count != 1 || len(answer.Candidates) != 1 || answer.Candidates[0].ContactID != "o" {
			t.Errorf("after s's own lower report: %+v, want o alone", answer)
		}
		if _, err := value.ExplainUpsell(ctx, db, tables, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), "candidates.s.reasons", 0, ""); !invalidExplain(err) {
			t.Errorf("reasons of a contact no longer a candidate: %v", err)
		}
	})
}
