package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/analytics"
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
	tables, err := a.runner.Tables(analytics.Name)
	if err != nil {
		t.Fatal(err)
	}
	// addLeads adds n new leads to every kept count and delta of them, under the server.
	addLeads := func(n int) {
		t.Helper()
		for _, table := range []string{"counts", "deltas"} {
			if _, err := a.runner.DB().SQL.ExecContext(ctx, `UPDATE `+tables.Name(table)+` SET count = count + ? WHERE figure LIKE 'lead/%'`, n); err != nil {
				t.Fatal(err)
			}
		}
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
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

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
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if leads(got) < 103 || string(g) != string(w) {
		t.Fatalf("after a command:\nanswered %s\nread     %s", g, w)
	}
}
