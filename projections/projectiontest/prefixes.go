package projectiontest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// ForEachPrefix runs test, on both dialects, over the read model of p after about steps+1
// prefixes of events (none, then every len/steps events, and all of them), each applied to a
// table set of its own: questions asked of the state in the middle of a history meet every
// stage of it.
func ForEachPrefix(t *testing.T, p projections.Projection, events []eventstore.Event, steps int,
	test func(t *testing.T, db *projections.DB, tables projections.Tables, applied []eventstore.Event)) {
	t.Helper()
	ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		for k := 0; k <= len(events); k += max(1, len(events)/steps) {
			tables := projections.TablesFor(p, fmt.Sprintf("g%d", k+1))
			MustApply(t, db, p, tables, events[:k])
			test(t, db, tables, events[:k])
		}
	})
}

// JSON is v encoded as encoding/json does, for comparing answers.
func JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
