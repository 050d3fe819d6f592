package readmodel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/readmodel"
)

// ledger is a small read model that uses every kind of row change: accounts upserted and
// deleted, their entries keyed by (account, seq) read as a group and deleted with it, notes
// keyed by position inserted (the first wins).
type ledger struct {
	accounts *readmodel.Table[account]
	entries  *readmodel.Table[entry]
	notes    *readmodel.Table[note]
}

type account struct {
	id, owner string
	balance   int64
	entries   int64
}

type entry struct {
	account string
	seq     int64
	amount  int64
	memo    sql.NullString
}

type note struct {
	position int64
	account  string
	text     string
}

func newLedger() *readmodel.Model {
	l := &ledger{
		accounts: readmodel.NewTable("accounts", 1,
			readmodel.Text("account_id", func(r *account) *string { return &r.id }),
			readmodel.Text("owner", func(r *account) *string { return &r.owner }),
			readmodel.BigInt("balance", func(r *account) *int64 { return &r.balance }),
			readmodel.Integer("entries", func(r *account) *int64 { return &r.entries })).
			Clustered(),
		entries: readmodel.NewTable("entries", 2,
			readmodel.Text("account_id", func(r *entry) *string { return &r.account }),
			readmodel.Integer("seq", func(r *entry) *int64 { return &r.seq }),
			readmodel.BigInt("amount", func(r *entry) *int64 { return &r.amount }),
			readmodel.NullText("memo", func(r *entry) *sql.NullString { return &r.memo })).
			WithIndexes(readmodel.Index{Name: "big", Columns: "amount", Where: "amount > 100"}),
		notes: readmodel.NewTable("notes", 1,
			readmodel.Position("position", func(r *note) *int64 { return &r.position }),
			readmodel.Text("account_id", func(r *note) *string { return &r.account }),
			readmodel.Text("text", func(r *note) *string { return &r.text })),
	}
	return readmodel.Define(readmodel.Spec{Name: "ledger", Version: 1,
		Tables: []readmodel.AnyTable{l.accounts, l.entries, l.notes}, Fold: l.fold})
}

type ledgerEvent struct {
	Account string `json:"account"`
	Owner   string `json:"owner"`
	Amount  int64  `json:"amount"`
	Memo    string `json:"memo"`
	Text    string `json:"text"`
}

func (l *ledger) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	ev, err := readmodel.Decode[ledgerEvent](e)
	if err != nil {
		return err
	}
	switch e.Type {
	case "opened":
		l.accounts.Upsert(rows, account{id: ev.Account, owner: ev.Owner})
	case "renamed":
		// Blind: the batch path takes the row for new and learns otherwise from the write.
		l.accounts.Upsert(rows, account{id: ev.Account, owner: ev.Owner})
	case "credited":
		a, err := l.accounts.Need(rows, ev.Account)
		if err != nil {
			return err
		}
		a.entries++
		a.balance += ev.Amount
		l.entries.Upsert(rows, entry{account: a.id, seq: a.entries, amount: ev.Amount,
			memo: sql.NullString{String: ev.Memo, Valid: ev.Memo != ""}})
		l.accounts.Upsert(rows, a)
	case "closed":
		for _, en := range l.entries.Group(rows, ev.Account) {
			l.entries.Delete(rows, en.account, en.seq)
		}
		l.accounts.Delete(rows, ev.Account)
	case "noted":
		l.notes.Insert(rows, note{position: e.Position, account: ev.Account, text: ev.Text})
		l.notes.Insert(rows, note{position: e.Position, account: ev.Account, text: "a second insert is ignored"})
	}
	return nil
}

const ledgerHistory = `
2024-01-01T00:00:00Z a opened {"account":"a","owner":"ann"}
2024-01-01T00:00:01Z b opened {"account":"b","owner":"bob"}
2024-01-01T00:00:02Z a credited {"account":"a","amount":50,"memo":"first"}
2024-01-01T00:00:03Z a credited {"account":"a","amount":150}
2024-01-01T00:00:04Z b credited {"account":"b","amount":7}
2024-01-01T00:00:05Z a noted {"account":"a","text":"hello"}
2024-01-01T00:00:06Z a closed {"account":"a"}
2024-01-01T00:00:07Z b credited {"account":"b","amount":300}
2024-01-01T00:00:08Z a opened {"account":"a","owner":"amy"}
2024-01-01T00:00:09Z a credited {"account":"a","amount":1}
2024-01-01T00:00:10Z c closed {"account":"c"}
2024-01-01T00:00:11Z b noted {"account":"b","text":"bye"}
2024-01-01T00:00:12Z b closed {"account":"b"}
2024-01-01T00:00:13Z a credited {"account":"a","amount":2,"memo":"last"}
`

// batchOnly hides the live path: a batch that falls back to it parks its events.
type batchOnly struct{ *readmodel.Model }

func (batchOnly) Apply(context.Context, *projections.Tx, projections.Tables, eventstore.Event) error {
	return errors.New("the batch path left this event to the live path")
}

// The live path and the batch path are derived from one fold: in batches of any size the
// tables end as the live path leaves them, event by event, without falling back.
func TestBatchPathEqualsLivePath(t *testing.T) {
	events := projectiontest.MustParseHistory(t, ledgerHistory)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newLedger()
		live := projections.TablesFor(m, "live")
		projectiontest.MustApply(t, db, m, live, nil)
		for _, e := range events {
			if _, err := db.Apply(ctx, m, live, []eventstore.Event{e}); err != nil {
				t.Fatalf("apply %d: %v", e.Position, err)
			}
		}
		want := projectiontest.Dump(t, db, live)
		if got := len(want["entries"]); got != 2 {
			t.Fatalf("live entries = %v, want the two of the reopened account a", want["entries"])
		}
		for _, size := range []int{1, 2, 3, 5, len(events)} {
			t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
				set := projections.TablesFor(m, fmt.Sprintf("bulk%d", size))
				projectiontest.MustApply(t, db, m, set, nil)
				for i := 0; i < len(events); i += size {
					if _, err := db.ApplyBatch(ctx, batchOnly{m}, set, events[i:min(i+size, len(events))]); err != nil {
						t.Fatal(err)
					}
				}
				if n := parked(t, db, set); n > 0 {
					t.Errorf("%d events left to the live path", n)
				}
				if got := projectiontest.Dump(t, db, set); !reflect.DeepEqual(got, want) {
					t.Errorf("batch path differs from the live path\n--- batch\n%v\n--- live\n%v", got, want)
				}
			})
		}
	})
}

// A row the batch path took for new but found stored makes the batch fall back to the live
// path, which upserts it: the tables end the same, nothing is parked.
func TestBatchPathFallsBackOnAStoredRowTakenForNew(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2024-01-01T00:00:00Z a opened {"account":"a","owner":"ann"}
2024-01-01T00:00:01Z a credited {"account":"a","amount":5}
2024-01-01T00:00:02Z a renamed {"account":"a","owner":"amy"}
2024-01-01T00:00:03Z a credited {"account":"a","amount":6}
`)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newLedger()
		live := projections.TablesFor(m, "live")
		projectiontest.MustApply(t, db, m, live, events)
		set := projections.TablesFor(m, "bulk")
		projectiontest.MustApply(t, db, m, set, nil)
		for _, chunk := range [][]eventstore.Event{events[:2], events[2:]} {
			if _, err := db.ApplyBatch(ctx, m, set, chunk); err != nil {
				t.Fatal(err)
			}
		}
		if n := parked(t, db, set); n > 0 {
			t.Errorf("%d events parked", n)
		}
		if got, want := projectiontest.Dump(t, db, set), projectiontest.Dump(t, db, live); !reflect.DeepEqual(got, want) {
			t.Errorf("batch path differs from the live path\n--- batch\n%v\n--- live\n%v", got, want)
		}
	})
}

// An event the fold refuses fails the live transaction, and is parked alone by the batch
// path: the events around it are applied. A row the fold needs and does not find (an account
// credited before it was opened) is refused as ErrNoRow, naming the table and the key, on both
// paths.
func TestRefusedEventIsParkedAlone(t *testing.T) {
	events := projectiontest.MustParseHistory(t, `
2024-01-01T00:00:00Z a opened {"account":"a","owner":"ann"}
2024-01-01T00:00:01Z z credited {"account":"z","amount":5}
2024-01-01T00:00:02Z a credited {"account":"a","amount":6}
`)
	projectiontest.ForEachDialect(t, func(t *testing.T, db *projections.DB) {
		ctx := context.Background()
		m := newLedger()
		live := projections.TablesFor(m, "live")
		projectiontest.MustApply(t, db, m, live, nil)
		_, err := db.Apply(ctx, m, live, events)
		var ae *projections.ApplyError
		if !errors.As(err, &ae) || ae.Event.Position != 2 {
			t.Fatalf("live apply = %v, want the refusal of event 2", err)
		}
		const named = "table accounts, key [z]"
		if !errors.Is(err, readmodel.ErrNoRow) || !strings.Contains(err.Error(), named) {
			t.Errorf("live refusal = %v, want ErrNoRow naming %q", err, named)
		}
		set := projections.TablesFor(m, "bulk")
		projectiontest.MustApply(t, db, m, set, nil)
		if _, err := db.ApplyBatch(ctx, m, set, events); err != nil {
			t.Fatal(err)
		}
		if n := parked(t, db, set); n != 1 {
			t.Errorf("%d events parked, want 1", n)
		}
		var reason string
		if err := db.SQL.QueryRowContext(ctx, db.Dialect.Rebind(`SELECT error FROM projection_parked WHERE table_set = ?`),
			set.Prefix()).Scan(&reason); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(reason, named) {
			t.Errorf("parked for %q, want the reason naming %q", reason, named)
		}
		got := projectiontest.Dump(t, db, set)["accounts"]
		if want := []string{"account_id=a | owner=ann | balance=6 | entries=1"}; !reflect.DeepEqual(got, want) {
			t.Errorf("accounts = %v, want %v", got, want)
		}
	})
}

func parked(t *testing.T, db *projections.DB, set projections.Tables) int {
	t.Helper()
	var n int
	if err := db.SQL.QueryRowContext(context.Background(), db.Dialect.Rebind(`SELECT count(*) FROM projection_parked WHERE table_set = ?`),
		set.Prefix()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The schema is derived from the declaration, for each dialect.
func TestSchema(t *testing.T) {
	set := projections.TablesWithPrefix("ledger_v1_")
	tests := []struct {
		dialect projections.Dialect
		want    []string
	}{
		{projections.SQLite, []string{
			"CREATE TABLE IF NOT EXISTS ledger_v1_accounts (\n\taccount_id TEXT PRIMARY KEY,\n\towner TEXT NOT NULL,\n\tbalance BIGINT NOT NULL,\n\tentries INTEGER NOT NULL) WITHOUT ROWID",
			"CREATE TABLE IF NOT EXISTS ledger_v1_entries (\n\taccount_id TEXT NOT NULL,\n\tseq INTEGER NOT NULL,\n\tamount BIGINT NOT NULL,\n\tmemo TEXT,\n\tPRIMARY KEY (account_id, seq))",
			"CREATE INDEX IF NOT EXISTS ledger_v1_entries_big ON ledger_v1_entries (amount) WHERE amount > 100",
			"CREATE TABLE IF NOT EXISTS ledger_v1_notes (\n\tposition INTEGER PRIMARY KEY,\n\taccount_id TEXT NOT NULL,\n\ttext TEXT NOT NULL)",
		}},
		{projections.Postgres, []string{
			"CREATE TABLE IF NOT EXISTS ledger_v1_accounts (\n\taccount_id TEXT COLLATE \"C\" PRIMARY KEY,\n\towner TEXT COLLATE \"C\" NOT NULL,\n\tbalance BIGINT NOT NULL,\n\tentries INTEGER NOT NULL)",
			"CREATE TABLE IF NOT EXISTS ledger_v1_entries (\n\taccount_id TEXT COLLATE \"C\" NOT NULL,\n\tseq INTEGER NOT NULL,\n\tamount BIGINT NOT NULL,\n\tmemo TEXT COLLATE \"C\",\n\tPRIMARY KEY (account_id, seq))",
			"CREATE INDEX IF NOT EXISTS ledger_v1_entries_big ON ledger_v1_entries (amount) WHERE amount > 100",
			"CREATE TABLE IF NOT EXISTS ledger_v1_notes (\n\tposition BIGINT PRIMARY KEY,\n\taccount_id TEXT COLLATE \"C\" NOT NULL,\n\ttext TEXT COLLATE \"C\" NOT NULL)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.dialect.String(), func(t *testing.T) {
			if got := newLedger().Schema(tt.dialect, set); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("schema =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
