package projectiontest

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseHistory(t *testing.T) {
	history := `
# a comment
2024-01-02T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1", "name":"A B"}

2024-01-03T09:00:00.5+01:00 deal-d1 deal.opened.v1 {}
2024-01-04T09:00:00Z contact-c1 contact.touchpoint_recorded.v1 actor=rep-a {"contact_id":"c1"}
`
	events, err := ParseHistory(strings.NewReader(history))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	want := []struct {
		id, stream, typ, data, actor string
		version, position            int64
		at                           time.Time
	}{
		{"evt-1", "contact-c1", "contact.created.v1", `{"contact_id":"c1", "name":"A B"}`, "", 1, 1, time.Date(2024, 1, 2, 9, 0, 0, 0, time.UTC)},
		{"evt-2", "deal-d1", "deal.opened.v1", `{}`, "", 1, 2, time.Date(2024, 1, 3, 8, 0, 0, 5e8, time.UTC)},
		{"evt-3", "contact-c1", "contact.touchpoint_recorded.v1", `{"contact_id":"c1"}`, "rep-a", 2, 3, time.Date(2024, 1, 4, 9, 0, 0, 0, time.UTC)},
	}
	for i, w := range want {
		e := events[i]
		typ, data := e.Stored() // read as the newest version, as a store read through the codec gives it
		if e.ID != w.id || e.Stream != w.stream || typ != w.typ || string(data) != w.data || e.Metadata.Actor != w.actor ||
			e.Version != w.version || e.Position != w.position || !e.OccurredAt.Equal(w.at) ||
			e.OccurredAt.Location() != time.UTC || !e.RecordedAt.Equal(w.at) {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
	}
}

func TestParseHistoryRejectsBadLines(t *testing.T) {
	tests := []struct{ name, line string }{
		{"too few fields", "2024-01-02T09:00:00Z contact-c1 contact.created.v1"},
		{"bad time", "2024-01-02 contact-c1 contact.created.v1 {}"},
		{"bad json", `2024-01-02T09:00:00Z contact-c1 contact.created.v1 {"a":}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseHistory(strings.NewReader(tt.line)); err == nil || !strings.Contains(err.Error(), "line 1") {
				t.Errorf("error = %v, want one naming line 1", err)
			}
		})
	}
}

// A written history reads back as its events, each at the time it was written at (to the
// microsecond), and Generated puts its events in time order, numbered anew.
func TestWrittenAndGeneratedHistories(t *testing.T) {
	start := time.Date(2024, 1, 2, 9, 0, 0, 0, time.UTC)
	w := NewWritten(rand.New(rand.NewPCG(1, 1)), start)
	w.Line("contact-c1", "contact.created.v1", `{"contact_id":"c1","name":"A"}`)
	w.At = w.At.Add(1500 * time.Microsecond)
	w.Line("contact-c1", "contact.touchpoint_recorded.v1", `{"contact_id":"c1","touchpoint_id":"t1","kind":"call","phase":"lead"}`)
	if p := w.Pick("x", "y"); p != "x" && p != "y" {
		t.Errorf("Pick = %q, not one of the list", p)
	}
	events := MustParseHistory(t, w.String())
	if len(events) != 2 || !events[0].OccurredAt.Equal(start) || !events[1].OccurredAt.Equal(start.Add(1500*time.Microsecond)) ||
		events[1].Type != "contact.touchpoint_recorded.v1" {
		t.Errorf("written history read back as %+v", events)
	}

	g := NewGenerated(1)
	g.Add("contact-c2", "contact.created.v1", start.Add(time.Hour), `{"contact_id":"c2","name":"B"}`)
	g.Add("contact-c1", "contact.created.v1", start, `{"contact_id":"c1","name":"A"}`)
	if !g.Latest.Equal(start.Add(time.Hour)) {
		t.Errorf("latest = %v, want %v", g.Latest, start.Add(time.Hour))
	}
	g.InTimeOrder(t)
	if g.Events[0].Stream != "contact-c1" || g.Events[0].Position != 1 || g.Events[1].Stream != "contact-c2" || g.Events[1].Position != 2 {
		t.Errorf("in time order: %+v", g.Events)
	}
}
