package board

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
)

// Present is the board as of any time at or after the latest business time in its tables
// (its Horizon). From then on only the days in stage change with as_of: which deals are open,
// in which stage, their totals and the stage velocity are the same for every such time. So a
// Present read once answers the board for every later as_of (At), until the tables change;
// it is what a server keeps to answer "the board now" without reading the tables each time.
type Present struct {
	// Horizon is the latest time an interval was entered or left, in microseconds since the
	// Unix epoch (0 for empty tables).
	Horizon int64
	answer  Answer

	encodeOnce sync.Once
	encoded    *encodedPresent
	encodeErr  error
}

// QueryPresent reads the board's present from the tables of set t, for the parameters other
// than AsOf (ignored). Invalid parameters return a domain error with code invalid naming the
// parameter.
func QueryPresent(ctx context.Context, db *projections.DB, t projections.Tables, params Params) (*Present, error) {
	qn, err := params.check()
	if err != nil {
		return nil, err
	}
	q := query{db: db, t: t, owner: params.Owner, present: true}
	p := &Present{}
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		q.tx = tx
		if p.Horizon, err = q.horizon(ctx); err != nil {
			return err
		}
		p.answer, err = q.answer(ctx, qn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// horizon is the latest entered_at or left_at of any interval: both indexed by stage, so this
// costs two index probes per open stage.
func (q *query) horizon(ctx context.Context) (int64, error) {
	var latest int64
	probe := func(stmt string, args ...any) error {
		var at sql.NullInt64
		if err := q.tx.QueryRowContext(ctx, q.db.Dialect.Rebind(stmt), args...).Scan(&at); err != nil {
			return fmt.Errorf("horizon of the board: %w", err)
		}
		latest = max(latest, at.Int64)
		return nil
	}
	for _, s := range deal.OpenStages() {
		if err := probe(`SELECT MAX(entered_at) FROM `+q.t.Name(tableIntervals)+` WHERE stage = ?`, string(s)); err != nil {
			return 0, err
		}
		if err := probe(`SELECT MAX(left_at) FROM `+q.t.Name(tableIntervals)+` WHERE stage = ? AND left_at IS NOT NULL`, string(s)); err != nil {
			return 0, err
		}
	}
	return latest, nil
}

// Covers reports whether At and AppendJSON answer for asOf: a time at or after the horizon.
func (p *Present) Covers(asOf time.Time) bool {
	return !asOf.IsZero() && asOf.UnixMicro() >= p.Horizon
}

// At answers the board as of asOf from the present, exactly as Query would, when asOf is at
// or after the horizon; ok is false otherwise (the board then needs Query). The answer is a
// copy: the Present can be shared by concurrent callers.
func (p *Present) At(asOf time.Time) (answer Answer, ok bool) {
	if asOf.IsZero() {
		return Answer{}, false
	}
	asOf = asOf.UTC()
	at := asOf.UnixMicro()
	if at < p.Horizon {
		return Answer{}, false
	}
	answer = p.answer
	answer.AsOf = asOf
	answer.Stages = slices.Clone(p.answer.Stages)
	for i, col := range answer.Stages {
		cards := slices.Clone(col.Cards)
		for j := range cards {
			cards[j].DaysInStage = (at - cards[j].StageEnteredAt.UnixMicro()) / microsPerDay
		}
		answer.Stages[i].Cards = cards
	}
	return answer, true
}

// AppendJSON appends the JSON of At(asOf) to dst, byte for byte what encoding/json writes for
// it, from JSON encoded once per Present: only as_of and the days in stage are written per
// call. ok is false when At would refuse asOf.
func (p *Present) AppendJSON(dst []byte, asOf time.Time) (_ []byte, ok bool) {
	if asOf.IsZero() {
		return dst, false
	}
	asOf = asOf.UTC()
	at := asOf.UnixMicro()
	if at < p.Horizon {
		return dst, false
	}
	p.encodeOnce.Do(p.encode)
	if p.encodeErr != nil {
		// Not reached (an answer of strings and numbers always encodes): fall back to encoding.
		a, _ := p.At(asOf)
		b, err := json.Marshal(a)
		return append(dst, b...), err == nil
	}
	e := p.encoded
	dst = append(dst, e.parts[0]...)
	dst = asOf.AppendFormat(append(dst, '"'), time.RFC3339Nano)
	dst = append(dst, '"')
	for i, entered := range e.enteredAt {
		dst = append(dst, e.parts[i+1]...)
		dst = strconv.AppendInt(dst, (at-entered)/microsPerDay, 10)
	}
	return append(dst, e.parts[len(e.parts)-1]...), true
}

// encodedPresent is the JSON of a Present cut where as_of and each card's days in stage go:
// parts[0], as_of, parts[1], days of card 0, parts[2], ..., days of the last card, the last part.
type encodedPresent struct {
	parts     [][]byte
	enteredAt []int64 // of each card, in the order of the JSON
}

// daysMark is a days-in-stage value no card has (days are never negative past the horizon),
// written where each card's days go and then cut out.
const daysMark = -987654321987

func (p *Present) encode() {
	a := p.answer
	a.AsOf = time.Time{}
	a.Stages = slices.Clone(p.answer.Stages)
	var enteredAt []int64
	for i, col := range a.Stages {
		cards := slices.Clone(col.Cards)
		for j := range cards {
			cards[j].DaysInStage = daysMark
			enteredAt = append(enteredAt, cards[j].StageEnteredAt.UnixMicro())
		}
		a.Stages[i].Cards = cards
	}
	b, err := json.Marshal(a)
	if err != nil {
		p.encodeErr = err
		return
	}
	asOfMark := []byte(`{"as_of":"0001-01-01T00:00:00Z"`)
	if !bytes.HasPrefix(b, asOfMark) {
		p.encodeErr = fmt.Errorf("encoded board does not start with as_of: %.40s", b)
		return
	}
	e := &encodedPresent{parts: [][]byte{[]byte(`{"as_of":`)}, enteredAt: enteredAt}
	rest := b[len(asOfMark):]
	daysField := []byte(`"days_in_stage":` + strconv.FormatInt(daysMark, 10))
	for range enteredAt {
		i := bytes.Index(rest, daysField)
		if i < 0 {
			p.encodeErr = errors.New("encoded board lacks the days of a card")
			return
		}
		e.parts = append(e.parts, rest[:i+len(`"days_in_stage":`)])
		rest = rest[i+len(daysField):]
	}
	e.parts = append(e.parts, rest)
	p.encoded = e
}
