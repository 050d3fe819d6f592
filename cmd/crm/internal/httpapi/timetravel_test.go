package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
)

func TestReadModelsTravelInLogTime(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	contactID := a.createContact()
	before := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"Annual plan","amount":120000,"currency":"JPY"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("open deal: %d %s", r.status, r.body)
	}
	opened := int64(r.json(t)["position"].(float64))
	pos := func(n int64) string { return "at_position=" + strconv.FormatInt(n, 10) }

	// The board as the log stood before the deal, then with it; known_at before and now.
	for _, c := range []struct {
		query string
		at    int64
		count int
	}{
		{pos(opened - 1), opened - 1, 0},
		{pos(opened), opened, 1},
		{pos(opened + 100), opened, 1},
		{"known_at=" + url.QueryEscape(before.Format(time.RFC3339Nano)), opened - 1, 0},
		{"known_at=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano)) + "&as_of=2100-01-01T00:00:00Z", opened, 1},
		{pos(opened) + "&as_of=2000-01-01T00:00:00Z", opened, 0}, // bitemporal: not yet opened in business time
	} {
		var b answer[board.Answer]
		r := a.read("/v1/pipeline/board?"+c.query, &b)
		if r.status != http.StatusOK {
			t.Fatalf("board %s: %d %s", c.query, r.status, r.body)
		}
		if b.Freshness.AtPosition == nil || *b.Freshness.AtPosition != c.at || b.Freshness.Position != c.at ||
			r.header.Get(httpapi.HeaderAtPosition) != strconv.FormatInt(c.at, 10) {
			t.Fatalf("board %s: freshness %+v, want at %d", c.query, b.Freshness, c.at)
		}
		if got := b.Data.Stages[0].Count; got != c.count {
			t.Fatalf("board %s: %d deals, want %d", c.query, got, c.count)
		}
	}
	if r := a.read("/v1/journeys/"+contactID+"?at_position=0", nil); r.status != http.StatusNotFound {
		t.Fatalf("journey before the contact: %d %s", r.status, r.body)
	}
	var j answer[journey.ContactAnswer]
	if r := a.read("/v1/journeys/"+contactID+"?"+pos(opened), &j); r.status != http.StatusOK || len(j.Data.Visits) != 1 {
		t.Fatalf("journey: %d %s", r.status, r.body)
	}
	var m answer[journey.Answer]
	if r := a.read("/v1/analytics/journey-map?"+pos(opened), &m); r.status != http.StatusOK || m.Freshness.AtPosition == nil {
		t.Fatalf("journey map: %d %s", r.status, r.body)
	}
	var c answer[churn.Answer]
	if r := a.read("/v1/analytics/churn-points?"+pos(opened), &c); r.status != http.StatusOK || len(c.Data.Phases) != 7 {
		t.Fatalf("churn points: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"?at_position=x", "?at_position=-1", "?known_at=yesterday", "?at_position=1&known_at=2024-01-01T00:00:00Z",
		"?at_position=1&min_position=1"} {
		if r := a.read("/v1/pipeline/board"+bad, nil); r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s", bad, r.status, r.body)
		}
	}
}

// TestCSVExportTravelsInLogTime exports the board as the log stood at a past position: the
// same cards as the JSON answer at that position, with the position in the headers.
func TestCSVExportTravelsInLogTime(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	contactID := a.createContact()
	r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"年間契約","amount":120000,"currency":"JPY"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("open deal: %d %s", r.status, r.body)
	}
	opened := int64(r.json(t)["position"].(float64))
	for _, c := range []struct {
		at    int64
		cards int
	}{{opened - 1, 0}, {opened, 1}} {
		query := "?format=csv&as_of=2100-01-01T00:00:00Z&at_position=" + strconv.FormatInt(c.at, 10)
		r := a.do("GET", "/v1/pipeline/board"+query, appToken, "")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("board CSV at %d: %d %s", c.at, r.status, r.body)
		}
		if got := r.header.Get(httpapi.HeaderAtPosition); got != strconv.FormatInt(c.at, 10) {
			t.Errorf("board CSV at %d: %s %q", c.at, httpapi.HeaderAtPosition, got)
		}
		records, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
		if err != nil {
			t.Fatalf("board CSV at %d: %v", c.at, err)
		}
		if len(records) != 1+c.cards {
			t.Fatalf("board CSV at %d: %d cards, want %d: %q", c.at, len(records)-1, c.cards, r.body)
		}
		var b answer[board.Answer]
		if r := a.read("/v1/pipeline/board?as_of=2100-01-01T00:00:00Z&at_position="+strconv.FormatInt(c.at, 10), &b); r.status != http.StatusOK {
			t.Fatalf("board at %d: %d %s", c.at, r.status, r.body)
		}
		if got := b.Data.Stages[0].Count; got != c.cards {
			t.Fatalf("JSON board at %d: %d cards, CSV %d", c.at, got, c.cards)
		}
		if c.cards == 1 && !strings.Contains(string(r.body), "年間契約") {
			t.Errorf("board CSV at %d lacks the deal: %q", c.at, r.body)
		}
	}
}
