package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/runtime"
)

// TestKPIsAboutNowAreKeptWhileTheTablesDoNotChange: the KPIs about now are read once per
// business date while the tables do not change, and given for every as_of of that date at or
// after the horizon; an as_of asked for before the horizon is kept too. The new-lead counts
// are changed under the server (as no event changes them), so that an answer read from the
// tables shows it and a kept one does not: a second request of the same date, or of the same
// past as_of, does not read the tables; another date does, and so does the next request
// after a command.
func TestKPIsAboutNowAreKeptWhileTheTablesDoNotChange(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	ctx := context.Background()
	create := func(name, at string) string {
		t.Helper()
		r := a.do("POST", "/v1/contacts", appToken, `{"name":"`+name+`","channel":"seminar","owner":"rep-a","occurred_at":"`+at+`"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create contact: %d %s", r.status, r.body)
		}
		return "&min_position=" + strconv.FormatInt(int64(r.json(t)["position"].(float64)), 10)
	}
	tables := analyticsTables(t, a)
	// addLeads adds n new leads to every kept count and delta of them, under the server.
	addLeads := func(n int) {
		t.Helper()
		changeUnderTheServer(t, a, tables.Name("counts"), "count = count + ?", "figure LIKE 'lead/%'", n)
		changeUnderTheServer(t, a, tables.Name("deltas"), "count = count + ?", "figure LIKE 'lead/%'", n)
	}
	kpis := func(query string) analytics.KPIAnswer {
		t.Helper()
		return readData[analytics.KPIAnswer](a, "/v1/analytics/kpis?"+query)
	}
	// read is what reading the tables answers.
	read := func(p analytics.KPIParams) analytics.KPIAnswer {
		t.Helper()
		got, err := analytics.QueryKPIs(ctx, a.runner.DB(), tables, p)
		if err != nil {
			t.Fatal(err)
		}
		return got.(analytics.KPIAnswer)
	}
	leads := func(k analytics.KPIAnswer) int64 { return k.Periods[0].NewLeads.Total }
	at := func(s string) time.Time { return parseTime(t, s) }

	create("Aiko Sato", "2024-01-05T09:00:00Z")
	wait := create("Ren Ito", "2024-01-08T09:00:00Z") // the horizon
	const month = "period=month&from=2024-01-01&as_of="
	for _, asOf := range []string{"2024-01-10T09:00:00Z", "2024-01-10T15:00:00Z", "2024-01-08T09:00:00Z"} {
		if k := kpis(month + asOf + wait); leads(k) != 2 || !k.AsOf.Equal(at(asOf)) {
			t.Fatalf("as of %s before the change: %+v", asOf, k)
		}
	}
	if k := kpis(month + "2024-01-07T12:00:00Z" + wait); leads(k) != 1 {
		t.Fatalf("as of Jan 7, before the horizon: %+v", k)
	}

	addLeads(100)
	if k := read(analytics.KPIParams{Period: "month", From: "2024-01-01", AsOf: at("2024-01-10T12:00:00Z")}); leads(k) != 102 {
		t.Fatalf("the tables, changed: %+v", k)
	}
	for _, tt := range []struct {
		asOf  string
		leads int64
	}{
		{"2024-01-10T12:00:00Z", 2},   // kept: the same date, another time
		{"2024-01-10T23:59:59Z", 2},   // kept
		{"2024-01-07T12:00:00Z", 1},   // kept: the same past as_of
		{"2024-01-11T00:00:00Z", 102}, // another date: read
		{"2024-01-07T12:30:00Z", 101}, // another past as_of: read
	} {
		if k := kpis(month + tt.asOf + wait); leads(k) != tt.leads || !k.AsOf.Equal(at(tt.asOf)) {
			t.Fatalf("as of %s after the change under the server: %d leads (%+v), want %d", tt.asOf, leads(k), k, tt.leads)
		}
	}

	// A command: the next answer reads the tables as they are (once it has reached them).
	wait = create("Mei Kato", "2024-01-09T09:00:00Z")
	const asOf = "2024-01-10T12:00:00Z"
	got := kpis(month + asOf + wait)
	want := read(analytics.KPIParams{Period: "month", From: "2024-01-01", AsOf: at(asOf)})
	if leads(got) < 103 {
		t.Fatalf("after a command: %+v", got)
	}
	sameJSON(t, "after a command", got, want)
}

// TestForecastAboutNowIsKeptWhileTheTablesDoNotChange: the forecast about now is read once
// per business date while the tables do not change, and given for every as_of of that date;
// the amounts of the open deals are changed under the server, so that an answer read from
// the tables shows it and a kept one does not: a second request of the same date does not
// read the tables, another date does, and so does the next request after a command.
func TestForecastAboutNowIsKeptWhileTheTablesDoNotChange(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	ctx := context.Background()
	contactID := a.createContact()
	open := func(amount int, expectedClose string) string {
		t.Helper()
		r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"Licences","amount":`+strconv.Itoa(amount)+
			`,"currency":"JPY","expected_close":"`+expectedClose+`"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("open deal: %d %s", r.status, r.body)
		}
		return "&min_position=" + strconv.FormatInt(int64(r.json(t)["position"].(float64)), 10)
	}
	tables := analyticsTables(t, a)
	forecast := func(query string) analytics.ForecastAnswer {
		t.Helper()
		return readData[analytics.ForecastAnswer](a, "/v1/analytics/forecast?to=2024-12&as_of="+query)
	}
	read := func(asOf string) analytics.ForecastAnswer {
		t.Helper()
		got, err := analytics.QueryForecast(ctx, a.runner.DB(), tables, analytics.ForecastParams{To: "2024-12", AsOf: parseTime(t, asOf)})
		if err != nil {
			t.Fatal(err)
		}
		return got.(analytics.ForecastAnswer)
	}
	january := func(f analytics.ForecastAnswer) int64 {
		if len(f.Months) == 0 || f.Months[0].Month != "2024-01" {
			t.Fatalf("no January: %+v", f)
		}
		return f.Months[0].Total["JPY"].Amount
	}

	wait := open(1000, "2024-01-20")
	if f := forecast("2024-01-10T09:00:00Z" + wait); january(f) != 1000 {
		t.Fatalf("before the change: %+v", f)
	}
	changeUnderTheServer(t, a, tables.Name("forecast"), "amount = amount + ?", "count <> 0", 500)
	if f := read("2024-01-10T12:00:00Z"); january(f) != 1500 {
		t.Fatalf("the tables, changed: %+v", f)
	}
	for _, tt := range []struct {
		asOf   string
		amount int64
	}{
		{"2024-01-10T12:00:00Z", 1000}, // kept: the same date, another time
		{"2024-01-10T23:59:59Z", 1000}, // kept
		{"2024-01-11T00:00:00Z", 1500}, // another date: read
	} {
		if f := forecast(tt.asOf + wait); january(f) != tt.amount || !f.AsOf.Equal(parseTime(t, tt.asOf)) {
			t.Fatalf("as of %s after the change under the server: %+v, want %d in January", tt.asOf, f, tt.amount)
		}
	}

	// A command: the next answer reads the tables as they are (once it has reached them).
	wait = open(2000, "2024-01-25")
	got := forecast("2024-01-10T12:00:00Z" + wait)
	if january(got) != 3500 {
		t.Fatalf("after a command: %+v", got)
	}
	sameJSON(t, "after a command", got, read("2024-01-10T12:00:00Z"))
}

// analyticsTables are the tables the test server's sales analytics are read from.
func analyticsTables(t *testing.T, a *readAPI) projections.Tables {
	t.Helper()
	tables, err := a.runner.Tables(analytics.Name)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// changeUnderTheServer changes rows of table (set, where) without an event: the server does
// not know, and a question answered from the tables shows it.
func changeUnderTheServer(t *testing.T, a *readAPI, table, set, where string, args ...any) {
	t.Helper()
	if _, err := a.runner.DB().SQL.ExecContext(context.Background(), `UPDATE `+table+` SET `+set+` WHERE `+where, args...); err != nil {
		t.Fatal(err)
	}
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sameJSON fails unless got and want are the same in JSON.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\nanswered %s\nread     %s", what, g, w)
	}
}

// TestKeptAnswerGivenWhileTheNextIsRead: after a command, a request without min_position is
// given the answer kept for the earlier state at once, with that answer's position, and starts
// the next reading; a later request gets the new answer. A request with the command's
// position as min_position is never given the earlier answer. With CRM_ANSWER_MAX_STALE=0
// (negative here) every request reads the tables as they are.
func TestKeptAnswerGivenWhileTheNextIsRead(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		maxStale  time.Duration
		earlierOK bool
	}{
		{"given", time.Minute, true},
		{"never given", -1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rs := newReadServer(t, 5*time.Second, func(rm *httpapi.ReadModels) { rm.AnswerMaxStale = c.maxStale })
			srv := describedServer(t, rs.server)
			a := &readAPI{api: &api{t: t, url: srv.URL}, refusing: rs.refusing, store: rs.store, runner: rs.runner}
			create := func(name string) int64 {
				t.Helper()
				r := a.do("POST", "/v1/contacts", appToken, `{"name":"`+name+`","channel":"seminar","owner":"rep-a","occurred_at":"2024-01-05T09:00:00Z"}`)
				if r.status != http.StatusCreated {
					t.Fatalf("create contact: %d %s", r.status, r.body)
				}
				return int64(r.json(t)["position"].(float64))
			}
			kpis := func(query string) (int64, runtime.Freshness) {
				t.Helper()
				var answer struct {
					Data      analytics.KPIAnswer `json:"data"`
					Freshness runtime.Freshness   `json:"freshness"`
				}
				if r := a.read("/v1/analytics/kpis?period=month&from=2024-01-01&to=2024-01-31"+query, &answer); r.status != http.StatusOK {
					t.Fatalf("kpis: %d %s", r.status, r.body)
				}
				return answer.Data.Periods[0].NewLeads.Total, answer.Freshness
			}
			first := create("Aiko Sato")
			if leads, f := kpis("&min_position=" + strconv.FormatInt(first, 10)); leads != 1 || f.Position < first {
				t.Fatalf("first answer: %d leads at %d", leads, f.Position)
			}
			second := create("Ren Ito")
			// The runner's own checkpoint (the count of changes moves with it), not only the
			// stored one, which is committed a moment before.
			if f, err := rs.runner.WaitFor(context.Background(), analytics.Name, second, 30*time.Second); err != nil || f.Position < second {
				t.Fatalf("wait for position %d: %v (at %d)", second, err, f.Position)
			}

			leads, f := kpis("")
			if c.earlierOK {
				if leads != 1 || f.Position >= second {
					t.Fatalf("after the command: %d leads at %d; want the earlier answer, 1 lead below %d", leads, f.Position, second)
				}
				deadline := time.Now().Add(10 * time.Second)
				for leads != 2 {
					if time.Now().After(deadline) {
						t.Fatalf("the next answer was not read in the background: %d leads at %d", leads, f.Position)
					}
					time.Sleep(10 * time.Millisecond)
					leads, f = kpis("")
				}
				if f.Position < second {
					t.Fatalf("the next answer holds %d leads at %d, below %d", leads, f.Position, second)
				}
			} else if leads != 2 || f.Position < second {
				t.Fatalf("after the command: %d leads at %d; want the tables as they are", leads, f.Position)
			}

			// With min_position at the command's position, never the earlier answer.
			third := create("Mei Kato")
			if leads, f := kpis("&min_position=" + strconv.FormatInt(third, 10)); leads != 3 || f.Position < third {
				t.Fatalf("with min_position %d: %d leads at %d", third, leads, f.Position)
			}
		})
	}
}
