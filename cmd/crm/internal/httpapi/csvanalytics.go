package httpapi

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/value"
)

// csvFloat writes a number as the JSON answers do; nothing for null.
func csvFloat(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// noExplainInCSV refuses ?explain= on a CSV form: the parts of a figure are a page of events
// with a cursor, which a CSV of the answer's rows has no place for.
func noExplainInCSV(r *http.Request) error {
	if r.URL.Query().Has("explain") {
		return badField("explain", "the parts of a figure have no CSV form: ask the JSON answer")
	}
	return nil
}

// exportKPIs writes the KPIs one row per period and figure (period, end, figure, value): the
// figure is its path in the JSON answer, a map's key or a list's phase or owner standing for
// its place (new_leads.by_channel.seminar, conversions.lead.rate,
// activity.rep-a.touchpoints.call), so the header is the same whatever the data and a pivot
// table turns it into any layout.
func exportKPIs(r *http.Request, rd read, out *csvOut, zone *time.Location) error {
	q := r.URL.Query()
	if err := noExplainInCSV(r); err != nil {
		return err
	}
	asOf, err := asOfParam(r, true)
	if err != nil {
		return err
	}
	ans, err := analytics.QueryKPIs(r.Context(), rd.db, rd.t, analytics.KPIParams{Period: q.Get("period"), From: q.Get("from"),
		To: q.Get("to"), Owner: q.Get("owner"), Channel: q.Get("channel"), Segment: q.Get("segment"), AsOf: asOf, Zone: zone})
	if err != nil {
		return err
	}
	kpis, _ := ans.(analytics.KPIAnswer)
	if err := out.header("period", "end", "figure", "value"); err != nil {
		return err
	}
	for _, p := range kpis.Periods {
		if err := kpiRows(p, func(figure, v string) error { return out.row(p.Period, p.End, figure, v) }); err != nil {
			return err
		}
	}
	return nil
}

// kpiRows calls row with every figure of a period, in the order of the JSON answer (a map's
// keys sorted).
func kpiRows(p analytics.KPIs, row func(figure, value string) error) error {
	var rows [][2]string
	add := func(figure, v string) { rows = append(rows, [2]string{figure, v}) }
	counts := func(prefix string, m map[string]int64) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			add(prefix+k, csvInt(m[k]))
		}
	}
	add("new_leads.total", csvInt(p.NewLeads.Total))
	counts("new_leads.by_channel.", p.NewLeads.ByChannel)
	for _, c := range p.Conversions {
		add("conversions."+c.Phase+".entered", csvInt(c.Entered))
		add("conversions."+c.Phase+".advanced", csvInt(c.Advanced))
		add("conversions."+c.Phase+".rate", csvFloat(c.Rate))
	}
	add("deals.opened", csvInt(p.Deals.Opened))
	add("deals.won", csvInt(p.Deals.Won))
	add("deals.lost", csvInt(p.Deals.Lost))
	add("deals.win_rate", csvFloat(p.Deals.WinRate))
	for _, k := range slices.Sorted(maps.Keys(p.Deals.WinRateByAmount)) {
		add("deals.win_rate_by_amount."+k, csvFloat(p.Deals.WinRateByAmount[k]))
	}
	counts("revenue_won.", p.RevenueWon)
	counts("average_won_deal.", p.AverageWonDeal)
	add("sales_cycle_days.count", strconv.Itoa(p.SalesCycleDays.Count))
	add("sales_cycle_days.median", csvFloat(p.SalesCycleDays.Median))
	add("lead_to_won_days.count", strconv.Itoa(p.LeadToWonDays.Count))
	add("lead_to_won_days.median", csvFloat(p.LeadToWonDays.Median))
	add("tasks.due", csvInt(p.Tasks.Due))
	add("tasks.on_time", csvInt(p.Tasks.OnTime))
	add("tasks.late", csvInt(p.Tasks.Late))
	add("tasks.overdue", csvInt(p.Tasks.Overdue))
	add("tasks.not_yet_due", csvInt(p.Tasks.NotYetDue))
	for _, o := range p.Activity {
		counts("activity."+o.Owner+".touchpoints.", o.Touchpoints)
		add("activity."+o.Owner+".deals_won", csvInt(o.DealsWon))
		counts("activity."+o.Owner+".revenue_won.", o.RevenueWon)
	}
	for _, r := range rows {
		if err := row(r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

// customerCurrencyCols are the columns of each currency a customer bought in, suffixed
// _<currency>.
var customerCurrencyCols = []string{"orders", "revenue", "ltv", "average_order_value", "monetary_score"}

// exportCustomers writes every customer, one row each, page after page: the answer's fields,
// the RFM scores, and the columns of each currency any customer bought in by as_of (empty
// where this customer did not), currencies in alphabetical order. ?explain= is refused, as
// on every CSV form.
func (v valueRoutes) exportCustomers(r *http.Request, rd read, out *csvOut) error {
	q := r.URL.Query()
	if err := noExplainInCSV(r); err != nil {
		return err
	}
	asOf, err := asOfParam(r, true)
	if err != nil {
		return err
	}
	p := value.CustomersParams{AsOf: asOf, Segment: q.Get("segment"), Sort: q.Get("sort"), Limit: exportPage}
	rfm, err := value.QueryRFM(r.Context(), rd.db, rd.t, v.zone, asOf)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range rfm.Segments {
		for _, m := range s.Revenue {
			seen[m.Currency] = true
		}
	}
	currencies := slices.Sorted(maps.Keys(seen))
	cols := []string{"contact_id", "name", "orders", "first_purchase", "second_purchase", "days_to_second",
		"median_days_between", "last_purchase", "recency_days", "r", "f", "m", "segment"}
	for _, cur := range currencies {
		for _, c := range customerCurrencyCols {
			cols = append(cols, c+"_"+cur)
		}
	}
	return pages(out, cols, func(cursor string) (value.CustomersAnswer, string, error) {
		p.Cursor = cursor
		page, err := value.QueryCustomers(r.Context(), rd.db, rd.t, v.zone, p)
		return page, page.NextCursor, err
	}, func(page value.CustomersAnswer) error {
		for _, c := range page.List {
			recency := c.RecencyDays
			vals := []string{c.ContactID, c.Name, csvInt(c.Orders), csvTime(c.FirstPurchase), csvTimePtr(c.SecondPurchase),
				csvFloat(c.DaysToSecond), csvFloat(c.MedianDaysBetween), csvTime(c.LastPurchase), csvFloat(&recency),
				strconv.Itoa(c.R), strconv.Itoa(c.F), strconv.Itoa(c.M), c.Segment}
			for _, cur := range currencies {
				i := slices.IndexFunc(c.Currencies, func(cv value.CurrencyValue) bool { return cv.Currency == cur })
				if i < 0 {
					vals = append(vals, make([]string, len(customerCurrencyCols))...)
					continue
				}
				cv := c.Currencies[i]
				vals = append(vals, csvInt(cv.Orders), csvInt(cv.Revenue), csvInt(cv.LTV), csvInt(cv.AverageOrderValue),
					strconv.Itoa(cv.MonetaryScore))
			}
			for _, cv := range c.Currencies {
				if !seen[cv.Currency] {
					// Bought in after the header was written: cut the export off rather than
					// leave the purchase out.
					return fmt.Errorf("customer %s: currency %s came after the export began", c.ContactID, cv.Currency)
				}
			}
			if err := out.row(vals...); err != nil {
				return err
			}
		}
		return nil
	})
}
