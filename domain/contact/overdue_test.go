package contact_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
)

func TestOverdue(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		due  domain.Date
		at   time.Time
		zone *time.Location
		want bool
	}{
		{"due yesterday", "2024-03-01", time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC), nil, true},
		{"due today, end of the day", "2024-03-02", time.Date(2024, 3, 2, 23, 59, 59, 0, time.UTC), nil, false},
		{"due tomorrow", "2024-03-03", time.Date(2024, 3, 2, 12, 0, 0, 0, time.UTC), nil, false},
		// In UTC, 08:00 in Tokyo on 3 March is still 2 March.
		{"UTC date of another zone", "2024-03-02", time.Date(2024, 3, 3, 8, 0, 0, 0, time.FixedZone("JST", 9*3600)), nil, false},
		// In the business zone Asia/Tokyo, 23:00 UTC on 2 March is 3 March already.
		{"business date in Tokyo", "2024-03-02", time.Date(2024, 3, 2, 23, 0, 0, 0, time.UTC), tokyo, true},
		{"nil zone is UTC", "2024-03-02", time.Date(2024, 3, 2, 23, 0, 0, 0, time.UTC), nil, false},
		{"a year before", "2023-12-31", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := contact.Overdue(tt.due, tt.at, tt.zone); got != tt.want {
				t.Errorf("Overdue(%s, %s) = %v, want %v", tt.due, tt.at, got, tt.want)
			}
		})
	}
}
