package domain_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/domaintest"
)

func TestParseDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		valid bool
	}{
		{"2025-04-01", true},
		{"2024-02-29", true},
		{"2000-02-29", true},
		{"1999-12-31", true},
		{"0001-01-01", true},
		{"2025-02-29", false},
		{"1900-02-29", false},
		{"2025-04-31", false},
		{"2025-13-01", false},
		{"2025-00-10", false},
		{"2025-04-00", false},
		{"2025-4-1", false},
		{"25-04-01", false},
		{"2025/04/01", false},
		{"01/04/2025", false},
		{"2025-04-01T00:00:00Z", false},
		{" 2025-04-01", false},
		{"2025-04-01 ", false},
		{"", false},
		{"today", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseDate("due", tc.in)
			if !tc.valid {
				domaintest.CheckError(t, err, domain.CodeInvalid, `due: "`+tc.in+`" is not a date of the form YYYY-MM-DD`)
				if got != "" {
					t.Errorf("ParseDate returned %q along with an error", got)
				}
				return
			}
			if err != nil || got != domain.Date(tc.in) {
				t.Errorf("ParseDate(%q) = %q, %v", tc.in, got, err)
			}
		})
	}
}

func TestDateOfAndTime(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	tests := []struct {
		name string
		t    time.Time
		want domain.Date
	}{
		{"UTC", time.Date(2025, 4, 1, 23, 59, 59, 0, time.UTC), "2025-04-01"},
		{"Tokyo morning is the previous UTC day", time.Date(2025, 4, 1, 8, 0, 0, 0, tokyo), "2025-03-31"},
		{"Tokyo after 09:00 is the same UTC day", time.Date(2025, 4, 1, 9, 0, 0, 0, tokyo), "2025-04-01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := domain.DateOf(tc.t); got != tc.want {
				t.Errorf("DateOf(%v) = %q; want %q", tc.t, got, tc.want)
			}
		})
	}
	if got, want := domain.Date("2025-04-01").Time(), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time() = %v; want %v", got, want)
	}
}

func TestDateIn(t *testing.T) {
	t.Parallel()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-03-31T15:30Z is already April 1st in Tokyo (UTC+9): a month boundary crossed there
	// and not in UTC.
	at := time.Date(2026, 3, 31, 15, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		loc  *time.Location
		want domain.Date
	}{{time.UTC, "2026-03-31"}, {tokyo, "2026-04-01"}} {
		if got := domain.DateIn(at, tc.loc); got != tc.want {
			t.Errorf("DateIn(%v, %v) = %q, want %q", at, tc.loc, got, tc.want)
		}
	}
}
