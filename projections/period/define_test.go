package period_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/readmodel"
)

func TestDefine(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
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
