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

// decimal writes v*scale with at most digits decimals (exact arithmetic: the rounding is the
// one of the double's exact value, as Intl.NumberFormat rounds).
func decimal(v float64, scale int64, digits int) string {
	x := new(big.Float).SetPrec(512).SetFloat64(v)
	x.Mul(x, new(big.Float).SetInt64(scale))
	neg := x.Sign() < 0
	x.Abs(x)
	p := int64(1)
	for range digits {
		p *= 10
	}
	x.Mul(x, new(big.Float).SetInt64(p))
	x.Add(x, big.NewFloat(0.5))
	units, _ := x.Int(nil) // floor of a positive number
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
		{showPct(nil), "—"}, {showNum(f(10.82), 1), "10.8"}, {showNum(f(23), 1), "23"}, {showNum(f(1234.96), 1), "1,235"},
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
		s.call(t, "GET", "/v1/analytics/journey-map", "", &a)
		tb.open(t, "journey")
		sameTable(t, "journey steps", tableOf(t, tb, "journey"), a.steps())
		sameTable(t, "journey transitions", tableOf(t, tb, "transitions"), a.transitions())
		tb.clean(t)
	})

	t.Run("churn points equal the API", func(t *testing.T) {
		var a churnPoints
		s.call(t, "GET", "/v1/analytics/churn-points?limit=50", "", &a)
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
		s.call(t, "GET", "/v1/analytics/kpis?period=month&limit=100&from="+from, "", &kpis)
		s.call(t, "GET", "/v1/analytics/forecast?limit=100", "", &forecast)
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
		s.call(t, "GET", "/v1/analytics/rfm", "", &rfm)
		s.call(t, "GET", "/v1/analytics/customers?limit=25", "", &customers)
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
		s.call(t, "GET", "/v1/analytics/customers?limit=50", "", &customers)
		var id string
		var j contactJourney
		for _, c := range customers.Data.List {
			s.call(t, "GET", "/v1/journeys/"+c.ID, "", &j)
			if slices.ContainsFunc(j.Data.Visits, func(v journeyVisit) bool { return v.EnteredAt.UTC().Hour() >= 15 }) {
				id = c.ID
				break
			}
		}
		if id == "" {
			t.Fatal("no customer entered a phase between 15:00 and 24:00 UTC")
		}
		var deals dealsAnswer
		s.call(t, "GET", "/v1/deals?limit=50&contact_id="+id, "", &deals)
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
