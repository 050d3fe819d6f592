package analytics

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/round"
)

// KPIParams ask for the KPIs of the periods holding the business dates From..To.
type KPIParams struct {
	// Period is the kind of period (month when empty).
	Period string `json:"period,omitempty"`
	// From and To (YYYY-MM-DD, inclusive) are business dates: the periods holding them and
	// those between are answered. To defaults to as_of's business date, From to To.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Owner, Channel, Segment keep the facts of that owner (the contact's for contact facts,
	// the assignee for tasks, the deal's for deal facts, at the time of the fact), of the
	// contacts of that lead channel, of that segment (at the time of the fact).
	Owner   string `json:"owner,omitempty"`
	Channel string `json:"channel,omitempty"`
	Segment string `json:"segment,omitempty"`
	// AsOf is the business time of the question (required): only facts that occurred at or
	// before it count, and tasks are judged at it.
	AsOf time.Time `json:"as_of"`
	// Zone is the business time zone (UTC when nil).
	Zone *time.Location `json:"-"`
	// Explain, when set, asks for the parts of one figure of the answer instead (see
	// ExplainKPI); Limit and Cursor page them.
	Explain string `json:"explain,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
	// fromParts sums the parts even where the kept counts answer (tests compare both).
	fromParts bool
}

// KPIAnswer is the KPIs of each period.
type KPIAnswer struct {
	Period  string    `json:"period"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	AsOf    time.Time `json:"as_of"`
	Zone    string    `json:"zone"`
	Owner   string    `json:"owner,omitempty"`
	Channel string    `json:"channel,omitempty"`
	Segment string    `json:"segment,omitempty"`
	Periods []KPIs    `json:"periods"`
}

// KPIs are the figures of one period.
type KPIs struct {
	// Period is the first business date of the period, End the first after it.
	Period string `json:"period"`
	End    string `json:"end"`
	// NewLeads: contacts created in the period, by channel.
	NewLeads Leads `json:"new_leads"`
	// Conversions: per lifecycle phase X (lead ... follow_up), of the contacts whose first
	// entry into X was in the period, those that entered a later phase afterwards by as_of.
	Conversions []Conversion `json:"conversions"`
	Deals       DealFigures  `json:"deals"`
	// RevenueWon sums the final amounts of the deals won in the period, per currency;
	// AverageWonDeal is it over their number, per currency, half up.
	RevenueWon     map[string]int64 `json:"revenue_won"`
	AverageWonDeal map[string]int64 `json:"average_won_deal"`
	// SalesCycleDays: days from opening to win of the deals won in the period;
	// LeadToWonDays: days from creation to first entry into won of the contacts first won in
	// it.
	SalesCycleDays Median        `json:"sales_cycle_days"`
	LeadToWonDays  Median        `json:"lead_to_won_days"`
	Tasks          TaskFigures   `json:"tasks"`
	Activity       []OwnerResult `json:"activity"`
}

// Leads counts new leads.
type Leads struct {
	Total     int64            `json:"total"`
	ByChannel map[string]int64 `json:"by_channel"`
}

// Conversion is the conversion from one phase to a later one.
type Conversion struct {
	Phase    string   `json:"phase"`
	Entered  int64    `json:"entered"`
	Advanced int64    `json:"advanced"`
	Rate     *float64 `json:"rate"`
}

// DealFigures count the deals opened, won and lost in the period (a reopened deal counts at
// its last close), and the win rates of the deals closed in it.
type DealFigures struct {
	Opened int64 `json:"opened"`
	Won    int64 `json:"won"`
	Lost   int64 `json:"lost"`
	// WinRate = won / (won + lost); WinRateByAmount the same of the amounts, per currency of
	// a deal closed in the period: null when its won and lost amounts are both zero.
	WinRate         *float64            `json:"win_rate"`
	WinRateByAmount map[string]*float64 `json:"win_rate_by_amount"`
}

// Median is the count of lengths and their median in days (2 decimals).
type Median struct {
	Count  int      `json:"count"`
	Median *float64 `json:"median"`
}

// TaskFigures: the tasks due in the period, each in one state at as_of.
type TaskFigures struct {
	Due       int64 `json:"due"`
	OnTime    int64 `json:"on_time"`
	Late      int64 `json:"late"`
	Overdue   int64 `json:"overdue"`
	NotYetDue int64 `json:"not_yet_due"`
}

// OwnerResult is an owner's activity in the period beside their results.
type OwnerResult struct {
	Owner       string           `json:"owner"`
	Touchpoints map[string]int64 `json:"touchpoints"`
	DealsWon    int64            `json:"deals_won"`
	RevenueWon  map[string]int64 `json:"revenue_won"`
}

// conversionPhases are the phases a contact can advance from.
func conversionPhases() []contact.Phase { return contact.Phases()[:len(contact.Phases())-1] }

// kpiQuestion is KPIParams checked.
type kpiQuestion struct {
	KPIParams
	w      window
	cutoff string // tasks open and due before it are overdue
}

func (p KPIParams) check() (kpiQuestion, error) {
	q := kpiQuestion{KPIParams: p}
	if p.AsOf.IsZero() {
		return q, domain.Invalid("as_of", "is required")
	}
	q.Zone = period.Zone(p.Zone)
	kind := period.Month
	if p.Period != "" {
		k, err := period.Parse("period", p.Period)
		if err != nil {
			return q, err
		}
		kind = k
	}
	q.Period = string(kind)
	q.cutoff = string(domain.DateIn(p.AsOf, q.Zone))
	to, from := domain.Date(q.cutoff), domain.Date("")
	var err error
	if p.To != "" {
		if to, err = domain.ParseDate("to", p.To); err != nil {
			return q, err
		}
	}
	from = to
	if p.From != "" {
		if from, err = domain.ParseDate("from", p.From); err != nil {
			return q, err
		}
	}
	q.From, q.To = string(from), string(to)
	if q.w, err = newWindow(kind, q.Zone, from, to); err != nil {
		return q, err
	}
	if p.Channel != "" {
		if _, err := contact.ParseChannel("channel", p.Channel); err != nil {
			return q, err
		}
	}
	return q, nil
}

// kpiFigures are the figure prefixes the KPIs read.
var kpiFigures = []string{figLead, figEntered, figAdvanced, figOpened, figWon, figLost, figCycle, figLeadToWon, "task/", figTouch}

// QueryKPIs answers the KPIs of params from the tables of set t, in one read transaction. With
// at most one filter it reads what the fold keeps: as of now (or any time at or after the
// latest fact) the kept counts and lengths; as of an earlier time the deltas known before
// as_of's business date, the parts made or revoked on that date up to as_of, and the parts
// of the two medians standing then. With two filters or more it sums the parts standing at
// as_of.
func QueryKPIs(ctx context.Context, db *projections.DB, t projections.Tables, params KPIParams) (any, error) {
	q, err := params.check()
	if err != nil {
		return nil, err
	}
	return readAnswer(ctx, db, t, func(r *reader) (any, error) {
		if q.Explain != "" {
			return r.explainKPI(ctx, q)
		}
		return r.kpis(ctx, q)
	})
}

// source is what the figures of a question add up to, per period: the tallies of every
// figure, per owner for the activity, and the medians.
type source struct {
	byPeriod map[string]figures
	byOwner  map[string]map[string]figures
	medians  map[string]map[string]stats // period -> figure -> stats
}

func (r *reader) kpis(ctx context.Context, q kpiQuestion) (KPIAnswer, error) {
	kept, err := r.kept(ctx, q.AsOf)
	if err != nil {
		return KPIAnswer{}, err
	}
	return r.kpisFrom(ctx, q, kept)
}

// kpisFrom answers q from the kept counts when kept (as_of is at or after the horizon) and
// at most one filter is set.
func (r *reader) kpisFrom(ctx context.Context, q kpiQuestion, kept bool) (KPIAnswer, error) {
	f, oneFilter := filterOf(q.Owner, q.Channel, q.Segment)
	var (
		src source
		err error
	)
	switch {
	case q.fromParts || !oneFilter:
		src, err = r.partsSource(ctx, q)
	case kept:
		src, err = r.keptSource(ctx, q, f)
	default:
		src, err = r.pastSource(ctx, q, f)
	}
	if err != nil {
		return KPIAnswer{}, err
	}
	answer := KPIAnswer{Period: q.Period, From: q.From, To: q.To, AsOf: q.AsOf.UTC(), Zone: q.Zone.String(), Owner: q.Owner,
		Channel: q.Channel, Segment: q.Segment, Periods: []KPIs{}}
	for _, label := range q.w.labels() {
		_, end, _ := q.w.span(label)
		answer.Periods = append(answer.Periods, kpisOf(label, end, src, q.cutoff))
	}
	return answer, nil
}

// openState names an open task due on due, judged against the cutoff.
func openState(due, cutoff string) string {
	if due < cutoff {
		return figTaskOpen + "/overdue"
	}
	return figTaskOpen + "/later"
}

// partsSource sums the parts standing at as_of.
func (r *reader) partsSource(ctx context.Context, q kpiQuestion) (source, error) {
	parts, err := r.parts(ctx, q.w, kpiFigures, q.AsOf, q.Owner, q.Channel, q.Segment)
	if err != nil {
		return source{}, err
	}
	src := source{byPeriod: map[string]figures{}, byOwner: map[string]map[string]figures{}, medians: map[string]map[string]stats{}}
	measures := periodLengths{}
	for _, p := range parts {
		label := q.w.periodOf(p.Bucket)
		if src.byPeriod[label] == nil {
			src.byPeriod[label] = figures{}
		}
		figure := p.Figure
		if figure == figTaskOpen {
			figure = openState(p.Bucket, q.cutoff)
		}
		src.byPeriod[label].add(figure, p.Count, p.Amount)
		if strings.HasPrefix(p.Figure, figTouch) || strings.HasPrefix(p.Figure, figWon) {
			addOwner(src.byOwner, label, p.Owner, p.Figure, p.Count, p.Amount)
		}
		if isLength(p.Figure) {
			measures.add(label, p.Figure, p.Measure)
		}
	}
	measures.medians(q.w, src.medians)
	return src, nil
}

// periodLengths are the lengths of the two medians' parts, per period label and figure.
type periodLengths map[string]map[string][]int64

func (m periodLengths) add(label, figure string, length int64) {
	if m[label] == nil {
		m[label] = map[string][]int64{}
	}
	m[label][figure] = append(m[label][figure], length)
}

// medians sets the stats of both medians of every period of w in into.
func (m periodLengths) medians(w window, into map[string]map[string]stats) {
	for _, label := range w.labels() {
		into[label] = map[string]stats{}
		for _, figure := range []string{figCycle, figLeadToWon} {
			into[label][figure] = medianOf(m[label][figure])
		}
	}
}

// kpisOf formats the figures of one period.
func kpisOf(label, end string, src source, cutoff string) KPIs {
	f := src.byPeriod[label]
	if f == nil {
		f = figures{}
	}
	k := KPIs{Period: label, End: end, NewLeads: Leads{ByChannel: map[string]int64{}}, Conversions: []Conversion{},
		RevenueWon: map[string]int64{}, AverageWonDeal: map[string]int64{}, Activity: []OwnerResult{}}
	var byChannel map[string]tally
	k.NewLeads.Total, byChannel = f.perCurrency(figLead)
	for ch, t := range byChannel {
		k.NewLeads.ByChannel[ch] = t.count
	}
	for _, p := range conversionPhases() {
		c := Conversion{Phase: string(p), Entered: f[figEntered+string(p)].count, Advanced: f[figAdvanced+string(p)].count}
		c.Rate = round.Ratio(c.Advanced, c.Entered)
		k.Conversions = append(k.Conversions, c)
	}
	k.Deals.Opened = f[figOpened].count
	won, wonBy := f.perCurrency(figWon)
	lost, lostBy := f.perCurrency(figLost)
	k.Deals.Won, k.Deals.Lost = won, lost
	k.Deals.WinRate = round.Ratio(won, won+lost)
	k.Deals.WinRateByAmount = map[string]*float64{}
	for cur, t := range wonBy {
		k.RevenueWon[cur] = t.amount
		k.AverageWonDeal[cur] = meanHalfUp(t.amount, t.count)
	}
	for _, cur := range currencies(wonBy, lostBy) {
		k.Deals.WinRateByAmount[cur] = round.Ratio(wonBy[cur].amount, wonBy[cur].amount+lostBy[cur].amount)
	}
	cycle, toWon := src.medians[label][figCycle], src.medians[label][figLeadToWon]
	k.SalesCycleDays = Median{Count: cycle.count, Median: cycle.median}
	k.LeadToWonDays = Median{Count: toWon.count, Median: toWon.median}
	k.Tasks = TaskFigures{OnTime: f[figTaskOnTime].count, Late: f[figTaskLate].count,
		Overdue: f[figTaskOpen+"/overdue"].count, NotYetDue: f[figTaskOpen+"/later"].count}
	k.Tasks.Due = k.Tasks.OnTime + k.Tasks.Late + k.Tasks.Overdue + k.Tasks.NotYetDue
	owners := src.byOwner[label]
	names := make([]string, 0, len(owners))
	for o := range owners {
		names = append(names, o)
	}
	slices.Sort(names)
	for _, o := range names {
		of := owners[o]
		res := OwnerResult{Owner: o, Touchpoints: map[string]int64{}, RevenueWon: map[string]int64{}}
		_, kinds := of.perCurrency(figTouch)
		for kind, t := range kinds {
			res.Touchpoints[kind] = t.count
		}
		var byCur map[string]tally
		res.DealsWon, byCur = of.perCurrency(figWon)
		for cur, t := range byCur {
			res.RevenueWon[cur] = t.amount
		}
		if len(res.Touchpoints) == 0 && res.DealsWon == 0 {
			continue
		}
		k.Activity = append(k.Activity, res)
	}
	return k
}

// currencies are the currencies of either map, sorted.
func currencies(a, b map[string]tally) []string {
	var cs []string
	for c := range a {
		cs = append(cs, c)
	}
	for c := range b {
		if _, ok := a[c]; !ok {
			cs = append(cs, c)
		}
	}
	slices.Sort(cs)
	return cs
}

func sortInts(s []int64) { slices.Sort(s) }

// ExplainAnswer is the parts of one figure: the facts that make it up, a page at a time, and
// what all of them add up to.
type ExplainAnswer struct {
	Explain string    `json:"explain"`
	AsOf    time.Time `json:"as_of"`
	explain.Page
}

// explainKPI answers the parts of the figure at path q.Explain: "<period>.<figure>", the
// period by its first date, the figure by its place in the period's answer:
//
//	new_leads.total, new_leads.by_channel.<channel>, conversions.<phase>.entered|advanced,
//	deals.opened|won|lost, revenue_won.<currency>, average_won_deal.<currency>,
//	sales_cycle_days, lead_to_won_days, tasks.due|on_time|late|overdue|not_yet_due,
//	activity.<owner>.touchpoints.<kind>, activity.<owner>.deals_won,
//	activity.<owner>.revenue_won.<currency>
//
// Rates are not figures of their own: their parts are those of the figures they divide.
func (r *reader) explainKPI(ctx context.Context, q kpiQuestion) (ExplainAnswer, error) {
	label, rest, _ := strings.Cut(q.Explain, ".")
	from, to, ok := q.w.span(label)
	if !ok {
		return ExplainAnswer{}, domain.Invalid("explain", "%q: %q is not the first date of a period of the answer", q.Explain, label)
	}
	eq := explain.Question{From: from, To: to, AsOf: q.AsOf, Owner: q.Owner, Channel: q.Channel, Segment: q.Segment,
		Limit: q.Limit, Cursor: q.Cursor}
	path := strings.Split(rest, ".")
	bad := domain.Invalid("explain", "%q is not the path of a figure of the KPIs (see the documentation)", q.Explain)
	switch {
	case rest == "new_leads.total":
		eq.Figures = []string{figLead}
	case len(path) == 3 && path[0] == "new_leads" && path[1] == "by_channel":
		eq.Figures = []string{figLead + path[2]}
	case len(path) == 3 && path[0] == "conversions" && (path[2] == "entered" || path[2] == "advanced"):
		eq.Figures = []string{path[2] + "/" + path[1]}
	case rest == "deals.opened":
		eq.Figures = []string{figOpened}
	case rest == "deals.won":
		eq.Figures = []string{figWon}
	case rest == "deals.lost":
		eq.Figures = []string{figLost}
	case len(path) == 2 && (path[0] == "revenue_won" || path[0] == "average_won_deal"):
		eq.Figures = []string{figWon + path[1]}
	case rest == "sales_cycle_days":
		eq.Figures = []string{figCycle}
	case rest == "lead_to_won_days":
		eq.Figures = []string{figLeadToWon}
	case len(path) == 2 && path[0] == "tasks":
		switch path[1] {
		case "due":
			eq.Figures = []string{"task/"}
		case "on_time":
			eq.Figures = []string{figTaskOnTime}
		case "late":
			eq.Figures = []string{figTaskLate}
		case "overdue", "not_yet_due":
			eq.Figures = []string{figTaskOpen}
			want := figTaskOpen + "/overdue"
			if path[1] == "not_yet_due" {
				want = figTaskOpen + "/later"
			}
			eq.Keep = func(p explain.Part) bool { return openState(p.Bucket, q.cutoff) == want }
		default:
			return ExplainAnswer{}, bad
		}
	case len(path) >= 3 && path[0] == "activity":
		eq.Owner = path[1]
		if q.Owner != "" && q.Owner != path[1] {
			return ExplainAnswer{}, bad
		}
		switch {
		case len(path) == 4 && path[2] == "touchpoints":
			eq.Figures = []string{figTouch + path[3]}
		case len(path) == 3 && path[2] == "deals_won":
			eq.Figures = []string{figWon}
		case len(path) == 4 && path[2] == "revenue_won":
			eq.Figures = []string{figWon + path[3]}
		default:
			return ExplainAnswer{}, bad
		}
	default:
		return ExplainAnswer{}, bad
	}
	page, err := explain.Read(ctx, r.tx, r.db.Dialect, r.t.Name(tableParts), eq, isLength)
	if err != nil {
		return ExplainAnswer{}, err
	}
	return ExplainAnswer{Explain: q.Explain, AsOf: q.AsOf.UTC(), Page: page}, nil
}
