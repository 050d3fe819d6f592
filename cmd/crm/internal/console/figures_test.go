package console_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shownCell is one figure of a table as the page holds it: the value the API answered
// (data-value) and the text shown.
type shownCell struct {
	Value string `json:"v"`
	Text  string `json:"t"`
}

// shownTable is a table of the page by row key (data-key) and field (data-field).
type shownTable map[string]map[string]shownCell

// tableOf reads the figures of the page's table data-table=name.
func tableOf(t testing.TB, tb *tab, name string) shownTable {
	t.Helper()
	raw := eval[string](t, tb, fmt.Sprintf(`JSON.stringify(Object.fromEntries([...document.querySelectorAll('table[data-table=%q] tbody tr[data-key]')]
		.map(tr => [tr.dataset.key, Object.fromEntries([...tr.querySelectorAll('[data-field]')].map(td => [td.dataset.field, { v: td.dataset.value, t: td.textContent }]))])))`, name))
	var got shownTable
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("table %s: %v in %s", name, err, raw)
	}
	return got
}

// sameTable fails for every row, figure or text of the page that differs from want, built
// from the API's answer.
func sameTable(t testing.TB, what string, got, want shownTable) {
	t.Helper()
	if len(want) == 0 {
		t.Errorf("%s: the API answered no rows: nothing compared", what)
	}
	for key, row := range want {
		shown, ok := got[key]
		if !ok {
			t.Errorf("%s: row %s is not shown", what, key)
			continue
		}
		for field, cell := range row {
			if shown[field] != cell {
				t.Errorf("%s, row %s, %s: shown %+v, the API's %+v", what, key, field, shown[field], cell)
			}
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("%s: row %s is shown, the API has none", what, key)
		}
	}
}

// Figures as en-US shows them (Intl.NumberFormat): thousands grouped, at most digits
// decimals rounded half away from zero on the number's exact value, none when they are zero.

func showInt(n int64) string { return grouped(n) }

func showNum(v *float64, digits int) string {
	if v == nil {
		return "—"
	}
	return decimal(*v, 1, digits)
}

func showPct(v *float64) string {
	if v == nil {
		return "—"
	}
	return decimal(*v, 100, 1) + "%"
}

// decimal writes v*scale with at most digits decimals, rounded half away from zero as
// Intl.NumberFormat rounds: on the shortest decimal that reads back as v (12.35 shows 12.4,
// though the double is a little under 12.35).
func decimal(v float64, scale int64, digits int) string {
	x, ok := new(big.Rat).SetString(strconv.FormatFloat(v, 'g', -1, 64))
	if !ok {
		panic(fmt.Sprintf("decimal %v", v))
	}
	neg := x.Sign() < 0
	x.Abs(x)
	p := int64(1)
	for range digits {
		p *= 10
	}
	x.Mul(x, new(big.Rat).SetInt64(scale*p))
	x.Add(x, big.NewRat(1, 2))
	units := new(big.Int).Quo(x.Num(), x.Denom()) // floor of a positive number
	whole := new(big.Int).Quo(units, big.NewInt(p))
	frac := new(big.Int).Rem(units, big.NewInt(p))
	s := grouped(whole.Int64())
	if digits > 0 && frac.Sign() != 0 {
		f := fmt.Sprintf("%0*d", digits, frac.Int64())
		s += "." + strings.TrimRight(f, "0")
	}
	if neg && units.Sign() != 0 {
		s = "-" + s
	}
	return s
}

// figure values as the page keeps them: JavaScript's String() of the answer's number, "" for null.
func valInt(n int64) string { return strconv.FormatInt(n, 10) }
func valNum(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}

type amount struct {
	Currency string
	Amount   int64
}

// moneyCell is amounts of several currencies: "JPY:1;USD:2" and "¥1 / $0.02".
func moneyCell(list []amount) shownCell {
	var v, s []string
	for _, a := range list {
		v = append(v, a.Currency+":"+strconv.FormatInt(a.Amount, 10))
		s = append(s, formatMoney(a.Amount, a.Currency))
	}
	return shownCell{strings.Join(v, ";"), strings.Join(s, " / ")}
}

func sortedAmounts(m map[string]int64) []amount {
	var list []amount
	for c, a := range m {
		list = append(list, amount{c, a})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Currency < list[j].Currency })
	return list
}

func intCell(n int64) shownCell     { return shownCell{valInt(n), showInt(n)} }
func pctCell(v *float64) shownCell  { return shownCell{valNum(v), showPct(v)} }
func daysCell(v *float64) shownCell { return shownCell{valNum(v), showNum(v, 1)} }
func textCell(v string) shownCell   { return shownCell{v, v} }

func TestShownFigures(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		got, want string
	}{
		{showPct(f(0.623)), "62.3%"}, {showPct(f(0.5)), "50%"}, {showPct(f(1)), "100%"}, {showPct(f(0.0625)), "6.3%"},
		{showPct(nil), "—"}, {showNum(f(10.82), 1), "10.8"}, {showNum(f(12.35), 1), "12.4"}, {showPct(f(0.1235)), "12.4%"}, {showNum(f(23), 1), "23"}, {showNum(f(1234.96), 1), "1,235"},
		{valNum(f(0.6184)), "0.6184"}, {valNum(f(23)), "23"}, {valNum(nil), ""},
		{moneyCell([]amount{{"JPY", 12919392}, {"USD", 2582038}}).Text, "¥12,919,392 / $25,820.38"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// journeyMap is the answer of /v1/analytics/journey-map.
type journeyMap struct {
	Data struct {
		ByPhase struct {
			Steps []struct {
				Name       string   `json:"name"`
				Entered    int64    `json:"entered"`
				Advanced   int64    `json:"advanced"`
				Conversion *float64 `json:"conversion"`
				MedianDays *float64 `json:"median_days"`
			} `json:"steps"`
			Transitions []struct {
				From  string `json:"from"`
				To    string `json:"to"`
				Count int64  `json:"count"`
			} `json:"transitions"`
		} `json:"by_phase"`
	} `json:"data"`
}

func (a journeyMap) steps() shownTable {
	want := shownTable{}
	for _, s := range a.Data.ByPhase.Steps {
		want[s.Name] = map[string]shownCell{"entered": intCell(s.Entered), "advanced": intCell(s.Advanced),
			"conversion": pctCell(s.Conversion), "median_days": daysCell(s.MedianDays)}
	}
	return want
}

func (a journeyMap) transitions() shownTable {
	want := shownTable{}
	for _, x := range a.Data.ByPhase.Transitions {
		want[x.From+">"+x.To] = map[string]shownCell{"count": intCell(x.Count)}
	}
	return want
}

// churnPoints is the answer of /v1/analytics/churn-points.
type churnPoints struct {
	Data struct {
		Phases []struct {
			Rank    int64    `json:"rank"`
			Phase   string   `json:"phase"`
			Entered int64    `json:"entered"`
			Lost    int64    `json:"lost"`
			Churned int64    `json:"churned"`
			Dormant int64    `json:"dormant"`
			DropOff *float64 `json:"drop_off_rate"`
		} `json:"phases"`
		LostDeals []struct {
			Stage   string  `json:"stage"`
			Reason  string  `json:"reason"`
			Count   int64   `json:"count"`
			Amounts []money `json:"amounts"`
		} `json:"lost_deals"`
	} `json:"data"`
}

func (a churnPoints) phases() shownTable {
	want := shownTable{}
	for _, p := range a.Data.Phases {
		want[p.Phase] = map[string]shownCell{"rank": intCell(p.Rank), "entered": intCell(p.Entered), "lost": intCell(p.Lost),
			"churned": intCell(p.Churned), "dormant": intCell(p.Dormant), "drop_off_rate": pctCell(p.DropOff)}
	}
	return want
}

func (a churnPoints) lost() shownTable {
	want := shownTable{}
	for _, x := range a.Data.LostDeals {
		var list []amount
		for _, m := range x.Amounts {
			list = append(list, amount{m.Currency, m.Amount})
		}
		want[x.Stage+"/"+x.Reason] = map[string]shownCell{"count": intCell(x.Count), "amounts": moneyCell(list)}
	}
	return want
}

// figures: what the analytics pages show equals the answers of their endpoints, asked with
// the same parameters over HTTP.
func figures(t *testing.T, s *server, tb *tab) {
	t.Run("journey map equals the API", func(t *testing.T) {
		var a journeyMap
		s.fresh(t, "/v1/analytics/journey-map", &a)
		tb.open(t, "journey")
		sameTable(t, "journey steps", tableOf(t, tb, "journey"), a.steps())
		sameTable(t, "journey transitions", tableOf(t, tb, "transitions"), a.transitions())
		tb.clean(t)
	})

	t.Run("churn points equal the API", func(t *testing.T) {
		var a churnPoints
		s.fresh(t, "/v1/analytics/churn-points?limit=50", &a)
		tb.open(t, "churn")
		sameTable(t, "churn phases", tableOf(t, tb, "churn"), a.phases())
		sameTable(t, "lost deals", tableOf(t, tb, "lost"), a.lost())
		tb.clean(t)
	})

	t.Run("KPIs and forecast equal the API", func(t *testing.T) {
		tokyo, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			t.Fatal(err)
		}
		from := fmt.Sprintf("%d-01-01", time.Now().In(tokyo).Year()-3)
		var kpis struct {
			Data struct {
				Zone    string `json:"zone"`
				Periods []struct {
					Period   string `json:"period"`
					NewLeads struct {
						Total int64 `json:"total"`
					} `json:"new_leads"`
					Deals struct {
						Opened  int64    `json:"opened"`
						Won     int64    `json:"won"`
						Lost    int64    `json:"lost"`
						WinRate *float64 `json:"win_rate"`
					} `json:"deals"`
					RevenueWon map[string]int64 `json:"revenue_won"`
				} `json:"periods"`
			} `json:"data"`
		}
		var forecast struct {
			Data struct {
				Months []struct {
					Month string                  `json:"month"`
					Total map[string]forecastCell `json:"total"`
				} `json:"months"`
				Overdue struct {
					Total map[string]forecastCell `json:"total"`
				} `json:"overdue"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/analytics/kpis?period=month&limit=100&from="+from, &kpis)
		s.fresh(t, "/v1/analytics/forecast?limit=100", &forecast)
		if kpis.Data.Zone != "Asia/Tokyo" {
			t.Errorf("KPIs in zone %q", kpis.Data.Zone)
		}
		tb.open(t, "kpis")
		want := shownTable{}
		for _, p := range kpis.Data.Periods {
			if p.NewLeads.Total == 0 && p.Deals.Opened == 0 && p.Deals.Won == 0 && p.Deals.Lost == 0 {
				continue // the page leaves out empty periods
			}
			want[p.Period] = map[string]shownCell{"new_leads": intCell(p.NewLeads.Total), "opened": intCell(p.Deals.Opened),
				"won": intCell(p.Deals.Won), "lost": intCell(p.Deals.Lost), "win_rate": pctCell(p.Deals.WinRate),
				"revenue_won": moneyCell(sortedAmounts(p.RevenueWon))}
		}
		sameTable(t, "KPIs per month", tableOf(t, tb, "kpis"), want)
		want = shownTable{}
		for _, m := range forecast.Data.Months {
			want[m.Month] = forecastRow(m.Total)
		}
		want["overdue"] = forecastRow(forecast.Data.Overdue.Total)
		sameTable(t, "forecast", tableOf(t, tb, "forecast"), want)
		tb.clean(t)
	})

	t.Run("customer value and RFM grid equal the API", func(t *testing.T) {
		var rfm struct {
			Data struct {
				Customers int64 `json:"customers"`
				Segments  []struct {
					Segment   string  `json:"segment"`
					Customers int64   `json:"customers"`
					Revenue   []money `json:"revenue"`
				} `json:"segments"`
				Grid []struct {
					R, F      int
					Customers int64 `json:"customers"`
				} `json:"grid"`
			} `json:"data"`
		}
		var customers struct {
			Data struct {
				List []struct {
					ID         string `json:"contact_id"`
					Orders     int64  `json:"orders"`
					Currencies []struct {
						Currency string `json:"currency"`
						LTV      int64  `json:"ltv"`
					} `json:"currencies"`
					R, F, M int
					Segment string `json:"segment"`
				} `json:"list"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/analytics/rfm", &rfm)
		s.fresh(t, "/v1/analytics/customers?limit=25", &customers)
		tb.open(t, "value")
		cells := map[string]shownCell{}
		raw := eval[string](t, tb, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('#rfm-grid td[data-cell]')].map(td => [td.dataset.cell, { v: td.dataset.value, t: td.textContent }])))`)
		if err := json.Unmarshal([]byte(raw), &cells); err != nil {
			t.Fatal(err)
		}
		if len(cells) != 25 || len(rfm.Data.Grid) != 25 {
			t.Errorf("RFM grid: %d cells shown, the API has %d", len(cells), len(rfm.Data.Grid))
		}
		var sum int64
		for _, g := range rfm.Data.Grid {
			sum += g.Customers
			if got := cells[fmt.Sprintf("%d/%d", g.R, g.F)]; got != intCell(g.Customers) {
				t.Errorf("RFM cell R%d F%d: shown %+v, the API has %d", g.R, g.F, got, g.Customers)
			}
		}
		if sum != rfm.Data.Customers || sum == 0 {
			t.Errorf("the RFM grid holds %d customers, the answer %d", sum, rfm.Data.Customers)
		}
		want := shownTable{}
		for _, sg := range rfm.Data.Segments {
			var list []amount
			for _, m := range sg.Revenue {
				list = append(list, amount{m.Currency, m.Amount})
			}
			want[sg.Segment] = map[string]shownCell{"customers": intCell(sg.Customers), "revenue": moneyCell(list)}
		}
		sameTable(t, "segments", tableOf(t, tb, "segments"), want)
		want = shownTable{}
		for _, c := range customers.Data.List {
			var list []amount
			for _, x := range c.Currencies {
				list = append(list, amount{x.Currency, x.LTV})
			}
			want[c.ID] = map[string]shownCell{"orders": intCell(c.Orders), "ltv": moneyCell(list),
				"rfm": textCell(fmt.Sprintf("%d%d%d %s", c.R, c.F, c.M, c.Segment))}
		}
		sameTable(t, "customers", tableOf(t, tb, "customers"), want)
		tb.clean(t)
	})

	t.Run("tasks due and overdue equal the API", func(t *testing.T) {
		var a struct {
			Data struct {
				BusinessDate string `json:"business_date"`
				Tasks        []struct {
					ID  string `json:"task_id"`
					Due string `json:"due"`
				} `json:"tasks"`
				Counts []struct {
					Assignee string `json:"assignee"`
					Open     int64  `json:"open"`
					Overdue  int64  `json:"overdue"`
					Done     int64  `json:"done"`
				} `json:"counts"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/tasks?status=open&limit=100", &a)
		tokyo, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			t.Fatal(err)
		}
		if today := time.Now().In(tokyo).Format("2006-01-02"); a.Data.BusinessDate != today {
			t.Errorf("the business date is %s, today in Tokyo %s", a.Data.BusinessDate, today)
		}
		tb.open(t, "tasks")
		want := shownTable{}
		for _, c := range a.Data.Counts {
			want[c.Assignee] = map[string]shownCell{"open": intCell(c.Open), "overdue": intCell(c.Overdue), "done": intCell(c.Done)}
		}
		sameTable(t, "task counts", tableOf(t, tb, "task-counts"), want)
		want = shownTable{}
		for _, x := range a.Data.Tasks {
			due, err := time.Parse("2006-01-02", x.Due)
			if err != nil {
				t.Fatal(err)
			}
			want[x.ID] = map[string]shownCell{"due": {x.Due, due.Format("01/02/2006")}}
		}
		sameTable(t, "open tasks", tableOf(t, tb, "tasks"), want)
		tb.clean(t)
	})

	t.Run("a contact's figures and dates in the business zone", func(t *testing.T) {
		tokyo, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			t.Fatal(err)
		}
		// A customer whose journey has a phase entered between 15:00 and 24:00 UTC: the
		// next day in Tokyo, so a date shown in UTC would differ.
		var customers struct {
			Data struct {
				List []struct {
					ID string `json:"contact_id"`
				} `json:"list"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/analytics/customers?limit=50", &customers)
		var id string
		var j contactJourney
		for _, c := range customers.Data.List {
			s.fresh(t, "/v1/journeys/"+c.ID, &j)
			if slices.ContainsFunc(j.Data.Visits, func(v journeyVisit) bool { return v.EnteredAt.UTC().Hour() >= 15 }) {
				id = c.ID
				break
			}
		}
		if id == "" {
			t.Fatal("no customer entered a phase between 15:00 and 24:00 UTC")
		}
		var deals dealsAnswer
		s.fresh(t, "/v1/deals?limit=50&contact_id="+id, &deals)
		tb.open(t, "contacts/"+id)
		checkContact(t, tb, j, deals, tokyo)
		tb.clean(t)
	})
}

type forecastCell struct {
	Count    int64 `json:"count"`
	Amount   int64 `json:"amount"`
	Weighted int64 `json:"weighted"`
}

func forecastRow(total map[string]forecastCell) map[string]shownCell {
	var count int64
	amounts, weighted := map[string]int64{}, map[string]int64{}
	for c, x := range total {
		count += x.Count
		amounts[c], weighted[c] = x.Amount, x.Weighted
	}
	return map[string]shownCell{"count": intCell(count), "amount": moneyCell(sortedAmounts(amounts)), "weighted": moneyCell(sortedAmounts(weighted))}
}

type journeyVisit struct {
	Seq       int64     `json:"seq"`
	Phase     string    `json:"phase"`
	EnteredAt time.Time `json:"entered_at"`
}

// contactJourney is the answer of /v1/journeys/{id}.
type contactJourney struct {
	Data struct {
		Phase  string         `json:"phase"`
		Visits []journeyVisit `json:"visits"`
	} `json:"data"`
}

type dealsAnswer struct {
	Data struct {
		Deals []struct {
			ID     string `json:"deal_id"`
			Stage  string `json:"stage"`
			Amount money  `json:"amount"`
		} `json:"deals"`
	} `json:"data"`
}

// checkContact compares the contact page's journey (phases and the dates they were entered,
// in zone) and deals with the API's answers.
func checkContact(t *testing.T, tb *tab, j contactJourney, deals dealsAnswer, zone *time.Location) {
	t.Helper()
	var shown []struct {
		Key   string `json:"key"`
		Phase string `json:"phase"`
		Value string `json:"v"`
		Text  string `json:"t"`
	}
	raw := eval[string](t, tb, `JSON.stringify([...document.querySelectorAll('#contact-journey li')].map(li => ({ key: li.dataset.key, phase: li.dataset.phase,
		v: li.querySelector('time').dataset.value, t: li.querySelector('time').textContent })))`)
	if err := json.Unmarshal([]byte(raw), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown) != len(j.Data.Visits) {
		t.Errorf("journey: %d visits shown, the API has %d", len(shown), len(j.Data.Visits))
	}
	for i, v := range j.Data.Visits {
		if i >= len(shown) {
			break
		}
		want := v.EnteredAt.In(zone).Format("01/02/2006")
		if got := shown[i]; got.Key != valInt(v.Seq) || got.Phase != v.Phase || got.Text != want {
			t.Errorf("journey visit %d: shown %+v, the API has %s entered %s (%s in %s)", v.Seq, got, v.Phase, v.EnteredAt, want, zone)
		}
	}
	want := shownTable{}
	for _, d := range deals.Data.Deals {
		want[d.ID] = map[string]shownCell{"stage": {d.Stage, strings.ReplaceAll(d.Stage, "_", " ")}, "amount": moneyCell([]amount{{d.Amount.Currency, d.Amount.Amount}})}
	}
	if len(deals.Data.Deals) > 0 {
		sameTable(t, "deals", tableOf(t, tb, "deals"), want)
	} else if got := tableOf(t, tb, "deals"); len(got) != 0 {
		t.Errorf("deals shown %v, the API has none", got)
	}
}

// asOfParam is the end of a business date in Asia/Tokyo, as the page asks for it.
func asOfParam(day string) string { return url.QueryEscape(day + "T23:59:59+09:00") }

// travelTo moves the time slider of the current page to position at and waits for the page.
func (tb *tab) travelTo(t testing.TB, at int64) {
	t.Helper()
	tb.waitRender(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.querySelector('#travel-slider');
		s.value = %d; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); })()`, at)))
	contains(t, "freshness", text(t, tb, "#freshness"), fmt.Sprintf("as known at position %s", grouped(at)))
}

// travelAsOf asks the current page as of a business date, knownAt (a wall-clock time in the
// business zone, or "") as known then. The fields are filled and applied in one script: the
// page may render its time-travel bar anew between two steps of the browser (a freshness
// update), and a field found in one step is then gone in the next.
func (tb *tab) travelAsOf(t testing.TB, day, knownAt string) {
	t.Helper()
	tb.waitRender(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		document.querySelector('#travel-asof').value = %q;
		document.querySelector('#travel-known').value = %q;
		document.querySelector('#travel-apply').click(); })()`, day, knownAt)))
}

// live ends the time travel.
func (tb *tab) live(t testing.TB) {
	t.Helper()
	tb.waitRender(t, chromedp.Click(chromedp.CSS("#travel-live")))
	if got := eval[string](t, tb, `document.querySelector('#freshness').textContent`); strings.Contains(got, "as known at") {
		t.Errorf("still travelling: %s", got)
	}
}

// travel: the time slider's position, known-at time and as-of date on the journey map, churn
// points, a contact's page and the board show what the API answers for them. seedHead is the
// seeded log's last position; seeded is a wall-clock second in Tokyo after the seed and before
// the suite's first command.
func travel(t *testing.T, s *server, tb *tab, seedHead int64, seeded time.Time) {
	const day = "2025-12-31"
	t.Run("journey map at a position and as of a date", func(t *testing.T) {
		tb.open(t, "journey")
		at := seedHead / 2
		var past, asOf, now journeyMap
		s.call(t, "GET", fmt.Sprintf("/v1/analytics/journey-map?at_position=%d", at), "", &past)
		s.fresh(t, "/v1/analytics/journey-map", &now)
		if fmt.Sprint(past.steps()) == fmt.Sprint(now.steps()) {
			t.Fatalf("the journey map at position %d is the one of now: the test would show nothing", at)
		}
		tb.travelTo(t, at)
		sameTable(t, fmt.Sprintf("journey steps at %d", at), tableOf(t, tb, "journey"), past.steps())
		sameTable(t, fmt.Sprintf("journey transitions at %d", at), tableOf(t, tb, "transitions"), past.transitions())
		tb.live(t)
		s.fresh(t, "/v1/analytics/journey-map?as_of="+asOfParam(day), &asOf)
		if fmt.Sprint(asOf.steps()) == fmt.Sprint(now.steps()) {
			t.Fatalf("the journey map as of %s is the one of now: the test would show nothing", day)
		}
		tb.travelAsOf(t, day, "")
		sameTable(t, "journey steps as of "+day, tableOf(t, tb, "journey"), asOf.steps())
		sameTable(t, "journey transitions as of "+day, tableOf(t, tb, "transitions"), asOf.transitions())
		tb.live(t)
		sameTable(t, "journey steps now", tableOf(t, tb, "journey"), now.steps())
		tb.clean(t)
	})

	t.Run("churn points at a position and as of a date", func(t *testing.T) {
		tb.open(t, "churn")
		at := seedHead * 3 / 4 // lost deals come late in the seeded history
		var past, asOf churnPoints
		s.call(t, "GET", fmt.Sprintf("/v1/analytics/churn-points?limit=50&at_position=%d", at), "", &past)
		tb.travelTo(t, at)
		sameTable(t, fmt.Sprintf("churn phases at %d", at), tableOf(t, tb, "churn"), past.phases())
		sameTable(t, fmt.Sprintf("lost deals at %d", at), tableOf(t, tb, "lost"), past.lost())
		tb.live(t)
		s.fresh(t, "/v1/analytics/churn-points?limit=50&as_of="+asOfParam(day), &asOf)
		if fmt.Sprint(asOf.phases()) == fmt.Sprint(past.phases()) {
			t.Fatalf("the churn points as of %s are those at position %d: the test would show nothing", day, at)
		}
		tb.travelAsOf(t, day, "")
		sameTable(t, "churn phases as of "+day, tableOf(t, tb, "churn"), asOf.phases())
		sameTable(t, "lost deals as of "+day, tableOf(t, tb, "lost"), asOf.lost())
		tb.live(t)
		tb.clean(t)
	})

	t.Run("a contact at a position and as of a date", func(t *testing.T) {
		tokyo, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			t.Fatal(err)
		}
		var customers struct {
			Data struct {
				List []struct {
					ID string `json:"contact_id"`
				} `json:"list"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/analytics/customers?limit=1", &customers)
		id := customers.Data.List[0].ID
		var h struct {
			Events []struct {
				Position int64  `json:"position"`
				Type     string `json:"type"`
			} `json:"events"`
		}
		s.call(t, "GET", "/v1/contacts/"+id+"/history", "", &h)
		at := h.Events[len(h.Events)/2].Position // half of the contact's history known
		var j contactJourney
		var deals dealsAnswer
		var timeline struct {
			Data struct {
				Entries []struct {
					Position int64 `json:"position"`
				} `json:"entries"`
			} `json:"data"`
		}
		s.call(t, "GET", fmt.Sprintf("/v1/journeys/%s?at_position=%d", id, at), "", &j)
		s.call(t, "GET", fmt.Sprintf("/v1/deals?limit=50&contact_id=%s&at_position=%d", id, at), "", &deals)
		s.call(t, "GET", fmt.Sprintf("/v1/contacts/%s/timeline?limit=30&at_position=%d", id, at), "", &timeline)
		tb.open(t, "contacts/"+id)
		tb.travelTo(t, at)
		checkContact(t, tb, j, deals, tokyo)
		var want []int64
		for _, e := range timeline.Data.Entries {
			want = append(want, e.Position)
			if e.Position > at {
				t.Errorf("the API's timeline at %d has an entry at %d", at, e.Position)
			}
		}
		got := eval[[]int64](t, tb, `[...document.querySelectorAll('#timeline li')].map(li => +li.dataset.position)`)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("timeline at %d: shown %v, the API has %v", at, got, want)
		}
		tb.live(t)

		var record struct {
			Phase string `json:"phase"`
		}
		s.call(t, "GET", fmt.Sprintf("/v1/contacts/%s?as_of=%s", id, asOfParam(day)), "", &record)
		s.fresh(t, fmt.Sprintf("/v1/journeys/%s?as_of=%s", id, asOfParam(day)), &j)
		s.fresh(t, fmt.Sprintf("/v1/deals?limit=50&contact_id=%s", id), &deals)
		tb.travelAsOf(t, day, "")
		checkContact(t, tb, j, deals, tokyo)
		if got := eval[string](t, tb, `document.querySelector('#contact-phase-now').dataset.value`); got != record.Phase || got != j.Data.Phase {
			t.Errorf("phase as of %s: shown %s, the API has %s (journey %s)", day, got, record.Phase, j.Data.Phase)
		}
		tb.live(t)
		tb.clean(t)
	})

	t.Run("the board as known at a time", func(t *testing.T) {
		known := seeded.In(time.FixedZone("JST", 9*3600))
		var then, now boardAnswer
		s.call(t, "GET", "/v1/pipeline/board?limit=50&known_at="+url.QueryEscape(known.Format(time.RFC3339)), "", &then)
		s.fresh(t, "/v1/pipeline/board?limit=50", &now)
		tb.open(t, "board")
		tb.travelAsOf(t, "", known.Format("2006-01-02T15:04:05"))
		differs := false
		for i, st := range then.Data.Stages {
			if shown := text(t, tb, fmt.Sprintf(`.column[data-stage=%q] [data-count]`, st.Stage)); shown != fmt.Sprintf("Deals: %d", st.Count) {
				t.Errorf("%s known at %s: shown %q, the API has %d", st.Stage, known, shown, st.Count)
			}
			cards := eval[[]string](t, tb, fmt.Sprintf(`[...document.querySelectorAll('.column[data-stage=%q] .card')].map(c => c.dataset.deal)`, st.Stage))
			var want []string
			for _, c := range st.Cards {
				want = append(want, c.DealID)
			}
			if !slices.Equal(cards, want) {
				t.Errorf("%s known at %s: cards %v, the API has %v", st.Stage, known, cards, want)
			}
			differs = differs || st.Count != now.Data.Stages[i].Count
		}
		if !differs {
			t.Error("the board known before the suite's moves is the board of now: the test shows nothing")
		}
		tb.live(t)
		tb.clean(t)
	})
}
