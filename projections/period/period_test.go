package period_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/readmodel"
)

func TestStartAndNext(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	won := time.Date(2025, 3, 31, 20, 0, 0, 0, time.UTC) // Tuesday 1 April 05:00 in Tokyo
	tests := []struct {
		kind       period.Kind
		zone       *time.Location
		start, end string // labels of the period of won and of the next one
	}{
		{period.Day, time.UTC, "2025-03-31", "2025-04-01"},
		{period.Day, tokyo, "2025-04-01", "2025-04-02"},
		{period.Week, time.UTC, "2025-03-31", "2025-04-07"}, // Monday 31 March
		{period.Week, tokyo, "2025-03-31", "2025-04-07"},
		{period.Month, time.UTC, "2025-03-01", "2025-04-01"},
		{period.Month, tokyo, "2025-04-01", "2025-05-01"},
		{period.Quarter, time.UTC, "2025-01-01", "2025-04-01"},
		{period.Quarter, tokyo, "2025-04-01", "2025-07-01"},
		{period.Year, tokyo, "2025-01-01", "2026-01-01"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+" "+tt.zone.String(), func(t *testing.T) {
			start := tt.kind.Start(won, tt.zone)
			if got := period.Label(start); got != tt.start {
				t.Errorf("start = %s, want %s", got, tt.start)
			}
			if got := period.Label(tt.kind.Next(start)); got != tt.end {
				t.Errorf("next = %s, want %s", got, tt.end)
			}
			if got := tt.kind.Of(won, tt.zone); got != tt.start {
				t.Errorf("Of = %s, want %s", got, tt.start)
			}
		})
	}
	// A Sunday belongs to the week of the Monday before it.
	if got := period.Week.Of(time.Date(2025, 4, 6, 12, 0, 0, 0, time.UTC), time.UTC); got != "2025-03-31" {
		t.Errorf("week of Sunday 6 April = %s", got)
	}
}

// TestMidnightSkipped: where a clock change skips midnight, a business date begins at the
// change, and the instants of that date are of that date's periods, not the day before's.
func TestMidnightSkipped(t *testing.T) {
	tests := []struct {
		zone  string
		at    time.Time // an instant of the day whose midnight was skipped
		kind  period.Kind
		start time.Time // the day's first instant: the clock change
		label string
		next  string
	}{
		// 1 April 2012, Havana: 00:00 CST became 01:00 CDT at 05:00Z.
		{"America/Havana", time.Date(2012, 4, 1, 16, 0, 0, 0, time.UTC), period.Day, time.Date(2012, 4, 1, 5, 0, 0, 0, time.UTC), "2012-04-01", "2012-04-02"},
		{"America/Havana", time.Date(2012, 4, 1, 16, 0, 0, 0, time.UTC), period.Month, time.Date(2012, 4, 1, 5, 0, 0, 0, time.UTC), "2012-04-01", "2012-05-01"},
		{"America/Havana", time.Date(2012, 4, 1, 16, 0, 0, 0, time.UTC), period.Quarter, time.Date(2012, 4, 1, 5, 0, 0, 0, time.UTC), "2012-04-01", "2012-07-01"},
		// 4 November 2018, São Paulo: 00:00 -03 became 01:00 -02 at 03:00Z.
		{"America/Sao_Paulo", time.Date(2018, 11, 4, 15, 0, 0, 0, time.UTC), period.Day, time.Date(2018, 11, 4, 3, 0, 0, 0, time.UTC), "2018-11-04", "2018-11-05"},
		// Beirut, 25 March 2018: 00:00 EET became 01:00 EEST at 22:00Z the day before.
		{"Asia/Beirut", time.Date(2018, 3, 25, 12, 0, 0, 0, time.UTC), period.Day, time.Date(2018, 3, 24, 22, 0, 0, 0, time.UTC), "2018-03-25", "2018-03-26"},
	}
	for _, tt := range tests {
		t.Run(tt.zone+" "+string(tt.kind), func(t *testing.T) {
			zone, err := time.LoadLocation(tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			start := tt.kind.Start(tt.at, zone)
			if !start.Equal(tt.start) {
				t.Errorf("start = %s, want %s", start.UTC(), tt.start)
			}
			if got := tt.kind.Of(tt.at, zone); got != tt.label {
				t.Errorf("Of = %s, want %s", got, tt.label)
			}
			if got := period.Label(tt.kind.Next(start)); got != tt.next {
				t.Errorf("next = %s, want %s", got, tt.next)
			}
			// The day before ends where this one begins.
			before := period.Day.Start(tt.start.Add(-time.Microsecond), zone)
			if got := period.Day.Next(before); !got.Equal(tt.start) {
				t.Errorf("the day before ends at %s, want %s", got.UTC(), tt.start)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	paris, _ := time.LoadLocation("Europe/Paris")
	if period.Version(4, nil) != 4 || period.Version(4, time.UTC) != 4 {
		t.Errorf("UTC version = %d, want the base", period.Version(4, time.UTC))
	}
	a, b := period.Version(4, tokyo), period.Version(4, paris)
	if a == b || a%1000 != 4 || b%1000 != 4 || a == 4 {
		t.Errorf("versions Tokyo %d, Paris %d: want distinct, ending in the base", a, b)
	}
	if period.Version(4, tokyo) != a {
		t.Error("the version of a zone changes between calls")
	}
}

func TestDefine(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	for _, tc := range []struct {
		name     string
		loc      *time.Location
		wantZone *time.Location
	}{
		{"no zone", nil, time.UTC},
		{"UTC", time.UTC, time.UTC},
		{"Tokyo", tokyo, tokyo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *time.Location
			m := period.Define(tc.loc, 5, func(zone *time.Location) readmodel.Spec {
				got = zone
				type row struct{ id string }
				table := readmodel.NewTable("rows", 1, readmodel.Text("id", func(r *row) *string { return &r.id }))
				return readmodel.Spec{Name: "zoned", Tables: []readmodel.AnyTable{table},
					Fold: func(*readmodel.Event, *readmodel.Rows) error { return nil }}
			})
			if got != tc.wantZone {
				t.Errorf("declared in %v, want %v", got, tc.wantZone)
			}
			if m.Name() != "zoned" || m.Version() != period.Version(5, tc.wantZone) {
				t.Errorf("model %s version %d, want zoned version %d", m.Name(), m.Version(), period.Version(5, tc.wantZone))
			}
		})
	}
}

func TestParse(t *testing.T) {
	if _, err := period.Parse("period", "fortnight"); err == nil {
		t.Error("fortnight parsed")
	}
	if k, err := period.Parse("period", "quarter"); err != nil || k != period.Quarter {
		t.Errorf("quarter = %v, %v", k, err)
	}
}
