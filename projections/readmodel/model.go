// Package readmodel is the contract a read model is written against: it declares its tables
// once (Table, both dialects) and ONE fold, a function from an event to the row changes it
// causes (Upsert, Insert, Delete of a table's row by key). From the fold the package derives
// what the runtime runs:
//
//   - the live path (Model.Apply): the rows the fold reads are read in the live transaction,
//     and the changes of the event are written in it;
//   - the batch path of rebuilds, diffs and time travel (Model.PrepareBatch): a batch is
//     folded over the rows it touches, loaded once, and every changed row is written once,
//     in multi-row statements (new rows copied in on PostgreSQL).
//
// Both run the same fold over the same rows, so a change to the fold changes both: a new event
// type is one more case in one switch.
package readmodel

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
)

// Spec declares a read model.
type Spec struct {
	// Name is the persisted identifier (snake_case); never derived from a Go type name.
	Name string
	// Version changes whenever the tables or the meaning of the fold change: a new version
	// is rebuilt.
	Version int
	// Tables are the read model's tables, created in this order.
	Tables []AnyTable
	// Fold folds one event into rows: it reads the rows it needs and records the changes the
	// event causes. Events of types it does not know are ignored (it returns nil). An error
	// refuses the event: the live runner parks it, a batch is folded again event by event so
	// that the refused event is parked alone.
	Fold func(e *Event, rows *Rows) error
}

// AnyTable is a *Table of any row type.
type AnyTable interface{ table }

// Model is the projection derived from a Spec: it implements projections.Projection (the
// live path) and projections.BatchProjection (the batch path).
type Model struct {
	spec   Spec
	tables []table
	// batchRows and liveRows hold Rows used before, cleared, with the room of their maps
	// and lists: a rebuild would otherwise grow them anew for each batch, and the live
	// runner for each event. Apart, so that an event's Rows is not as large as a batch's.
	batchRows, liveRows sync.Pool
	// fresh holds, by set prefix, what the batch path knows of the sets builders write from
	// empty (see fresh); freshSets counts them, so that the live path checks for none
	// without the lock.
	// lastKept is one more than the events the first pass of the last batch kept, 0 before
	// any batch (see keptRoom).
	lastKept  atomic.Int64
	freshMu   sync.Mutex
	fresh     map[string]*fresh
	freshSets atomic.Int32
}

var (
	_ projections.BatchProjection = (*Model)(nil)
	_ projections.BuildEnder      = (*Model)(nil)
)

// Define returns the projection of spec. It panics on a spec that cannot be right (no name,
// no fold, two tables of one name): specs are constants of the code.
func Define(spec Spec) *Model {
	if spec.Name == "" || spec.Version < 1 || spec.Fold == nil || len(spec.Tables) == 0 {
		panic(fmt.Sprintf("readmodel: incomplete spec %q", spec.Name))
	}
	m := &Model{spec: spec}
	seen := map[string]bool{}
	for _, t := range spec.Tables {
		if seen[t.base()] {
			panic(fmt.Sprintf("readmodel: %s: two tables named %s", spec.Name, t.base()))
		}
		seen[t.base()] = true
		t.place(len(m.tables))
		m.tables = append(m.tables, t)
	}
	return m
}

// Name is the persisted name of the read model.
func (m *Model) Name() string { return m.spec.Name }

// Version of the tables and of the meaning of the fold.
func (m *Model) Version() int { return m.spec.Version }

// Schema creates the tables in set t, each followed by its indexes.
func (m *Model) Schema(d projections.Dialect, t projections.Tables) []string {
	var stmts []string
	for _, tb := range m.tables {
		stmts = append(stmts, tb.schema(d, t)...)
	}
	return stmts
}

// Apply folds one event in the live transaction tx: the rows the fold reads are read from
// tx, and its changes written there.
func (m *Model) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	// The live path writes what a build's batches would not know of.
	m.EndBuild(t)
	rows := m.takeRows(&live{ctx: ctx, tx: tx, set: t})
	defer m.putRows(rows)
	ev := eventOf(&e)
	err := m.spec.Fold(&ev, rows)
	if rows.err != nil {
		return rows.err
	}
	if err != nil {
		return err
	}
	return rows.write(ctx, tx, t, false, nil)
}

// takeRows returns an empty Rows of the read model's tables, for the live path when l is
// set, else for a batch.
func (m *Model) takeRows(l *live) *Rows {
	pool := &m.batchRows
	if l != nil {
		pool = &m.liveRows
	}
	if rows, ok := pool.Get().(*Rows); ok {
		rows.live = l
		return rows
	}
	return newRows(m.tables, l)
}

// putRows gives back rows taken with takeRows, once nothing refers to them.
func (m *Model) putRows(rows *Rows) {
	pool := &m.batchRows
	if rows.live != nil {
		pool = &m.liveRows
	}
	rows.clear()
	pool.Put(rows)
}

// Event is an event as a fold sees it. Its data is read with Decode.
type Event struct {
	// ID is the event's id, for read models that show which events make up a figure.
	ID     string
	Type   string
	Stream string
	// Version is the event's version in its stream (1, 2, ...): what a command's If-Match
	// names after it.
	Version    int64
	Position   int64
	OccurredAt time.Time
	// Actor is who caused the event (its metadata's actor), for read models that show it.
	Actor string

	data    []byte
	batch   *projections.Batch // decodes shared by the read models of a rebuild, when set
	index   int
	decoded any
	// decodedTwice: the event was decoded as a second type, so decoded may not be the one
	// a later pass asks for first: its data stays.
	decodedTwice bool
	// rawRead: the fold read the data as recorded (Data), so a later pass needs it too.
	rawRead bool
}

func eventOf(e *eventstore.Event) Event {
	return Event{ID: e.ID, Type: e.Type, Stream: e.Stream, Version: e.Version, Position: e.Position, OccurredAt: e.OccurredAt,
		Actor: e.Metadata.Actor, data: e.Data}
}

// Data is the event's JSON as recorded: for read models that keep it whole. Shared: read only.
func (e *Event) Data() []byte {
	e.rawRead = true
	return e.data
}

// Decode returns the data of e decoded as JSON into a T. The value is shared (a batch may be
// folded more than once, and the read models of a rebuild decode each event once): read only.
func Decode[T any](e *Event) (*T, error) {
	if v, ok := e.decoded.(*T); ok {
		return v, nil
	}
	var (
		v   *T
		err error
	)
	if e.decoded != nil {
		e.decodedTwice = true
	}
	if e.batch != nil {
		v, err = projections.Decode[T](e.batch, e.index)
	} else {
		v = new(T)
		if err = domain.DecodeData(e.data, v); err != nil {
			err = fmt.Errorf("decode %s: %w", e.Type, err)
		}
	}
	if err != nil {
		return nil, err
	}
	e.decoded = v
	return v, nil
}

// With decodes the data of e as a T (see Decode) and folds it with f: one case of a fold's
// switch on the event type.
func With[T any](e *Event, f func(*T) error) error {
	v, err := Decode[T](e)
	if err != nil {
		return err
	}
	return f(v)
}
