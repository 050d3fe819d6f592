package horizon_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

// TestHorizonIsTheLatestTime: after every prefix of a history with back-dated events, the
// horizon is the latest business time folded, not the last one; a question at it or later is
// about now, one a microsecond before it is not, and any is while nothing is folded.
func TestHorizonIsTheLatestTime(t *testing.T) {
	h := horizon.New()
	p := readmodel.Define(readmodel.Spec{Name: "horizon_test", Version: 1, Tables: []readmodel.AnyTable{h.Table()},
		Fold: func(e *readmodel.Event, rows *readmodel.Rows) error {
			h.Reach(rows, e.OccurredAt.UnixMicro())
			return nil
		}})
	events := projectiontest.MustParseHistory(t, `
2024-01-03T00:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"A","channel":"other","owner":"o"}
2024-01-05T00:00:00Z contact-c2 contact.created.v1 {"contact_id":"c2","name":"B","channel":"other","owner":"o"}
2024-01-02T00:00:00Z contact-c3 contact.created.v1 {"contact_id":"c3","name":"C","channel":"other","owner":"o"}
2024-01-04T00:00:00Z contact-c4 contact.created.v1 {"contact_id":"c4","name":"D","channel":"other","owner":"o"}
`)
	projectiontest.ForEachPrefixRun(t, p, events, len(events), func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event) {
		latest := projectiontest.Latest(applied)
		err := db.ReadOnly(context.Background(), func(tx *sql.Tx) error {
			at, ok, err := horizon.Read(context.Background(), tx, tables)
			if err != nil {
				return err
			}
			if ok != (len(applied) > 0) || ok && at != latest.UnixMicro() {
				t.Errorf("horizon %v (%v), want %v", time.UnixMicro(at).UTC(), ok, latest)
			}
			for _, c := range []struct {
				asOf time.Time
				want bool
			}{
				{latest, true},
				{latest.Add(time.Hour), true},
				{latest.Add(-time.Microsecond), len(applied) == 0},
			} {
				now, err := horizon.Covers(context.Background(), tx, tables, c.asOf.UnixMicro())
				if err != nil {
					return err
				}
				if now != c.want {
					t.Errorf("as of %v: about now %v, want %v", c.asOf, now, c.want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
