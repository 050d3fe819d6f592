package churn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections"
)

// The batch path of rebuilds: the same fold as Apply, over rows loaded once per batch and
// written once each (multi-row upserts of whole rows, so a row's last image wins as Apply's
// statements would leave it). Anything Apply would refuse, or a row it cannot know from
// what it loaded, makes the batch fail: the rebuild then applies it event by event.

var _ projections.BatchProjection = Projection{}

// errUnsure: the batch met a case it does not fold itself.
var errUnsure = errors.New("churn batch: case left to Apply")

type opKind int

const (
	opCreate opKind = iota
	opRename
	opPhase
	opTouchpoint
	opSurvey
	opSchedule
	opComplete
	opLost
	opReopen
)

// op is one event as the churn points fold it, in few words: the batches in flight hold one
// per event.
type op struct {
	kind    opKind
	at      int64
	n       int64 // nps, overdue_at, amount of a loss
	pos     int64 // position of a touchpoint or a survey
	contact string
	id      string // task or deal id
	// create: name, cohort, channel; rename: name; phase: to; task: due; loss: from stage,
	// reason, currency.
	a, b, c string
}

type prepared struct {
	ops      []op
	contacts []string // contacts whose row the batch reads
	tasks    []string // contacts whose tasks the batch reads
	deals    []string // deals whose losses the batch reads
}

// PrepareBatch decodes the events the churn points fold.
func (Projection) PrepareBatch(batch *projections.Batch) (projections.PreparedBatch, error) {
	events := batch.Events()
	b := &prepared{ops: make([]op, 0, len(events))}
	seenContact, seenTasks, seenDeal := map[string]bool{}, map[string]bool{}, map[string]bool{}
	once := func(seen map[string]bool, list *[]string, id string) {
		if !seen[id] {
			seen[id] = true
			*list = append(*list, id)
		}
	}
	for i, e := range events {
		at := e.OccurredAt.UnixMicro()
		switch e.Type {
		case contact.TypeCreated:
			ev, err := projections.Decode[contact.Created](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opCreate, at: at, contact: ev.ContactID, a: ev.Name,
				b: e.OccurredAt.UTC().Format(CohortLayout), c: string(ev.Channel)})
			once(seenContact, &b.contacts, ev.ContactID)
		case contact.TypeDetailsChanged:
			ev, err := projections.Decode[contact.DetailsChanged](batch, i)
			if err != nil {
				return nil, err
			}
			if ev.Name != nil {
				b.ops = append(b.ops, op{kind: opRename, at: at, contact: ev.ContactID, a: *ev.Name})
				once(seenContact, &b.contacts, ev.ContactID)
			}
		case contact.TypePhaseChanged:
			ev, err := projections.Decode[contact.PhaseChanged](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opPhase, at: at, contact: ev.ContactID, a: string(ev.To)})
			once(seenContact, &b.contacts, ev.ContactID)
		case contact.TypeTouchpointRecorded:
			ev, err := projections.Decode[contact.TouchpointRecorded](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opTouchpoint, at: at, contact: ev.ContactID, pos: e.Position})
		case contact.TypeSurveyRecorded:
			ev, err := projections.Decode[contact.SurveyRecorded](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opSurvey, at: at, contact: ev.ContactID, n: int64(ev.NPS), pos: e.Position})
		case contact.TypeTaskScheduled:
			ev, err := projections.Decode[contact.TaskScheduled](batch, i)
			if err != nil {
				return nil, err
			}
			due, err := time.Parse(time.DateOnly, string(ev.Due))
			if err != nil {
				return nil, fmt.Errorf("due date of task %s: %w", ev.TaskID, err)
			}
			b.ops = append(b.ops, op{kind: opSchedule, at: at, contact: ev.ContactID, id: ev.TaskID, a: string(ev.Due),
				n: due.AddDate(0, 0, 1).UnixMicro()})
		case contact.TypeTaskCompleted:
			ev, err := projections.Decode[contact.TaskCompleted](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opComplete, at: at, contact: ev.ContactID, id: ev.TaskID})
			once(seenTasks, &b.tasks, ev.ContactID)
		case deal.TypeLost:
			ev, err := projections.Decode[deal.Lost](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opLost, at: at, id: ev.DealID, contact: ev.ContactID, n: ev.Amount.Amount,
				a: string(ev.FromStage), b: string(ev.Reason), c: ev.Amount.Currency})
			once(seenDeal, &b.deals, ev.DealID)
		case deal.TypeReopened:
			ev, err := projections.Decode[deal.Reopened](batch, i)
			if err != nil {
				return nil, err
			}
			b.ops = append(b.ops, op{kind: opReopen, at: at, id: ev.DealID})
			once(seenDeal, &b.deals, ev.DealID)
		}
	}
	return b, nil
}

type contactRow struct {
	name            string
	createdAt       int64
	cohort, channel string
	lastSeq         int64
	dirty           bool
	stored          bool // the row is in the table already
}

type visitKey struct {
	contact string
	seq     int64
}

type visitRow struct {
	phase   string
	entered int64
	left    sql.NullInt64
	next    sql.NullString
	dirty   bool
	stored  bool // the row is in the table already
}

type taskKey struct{ contact, task string }

type taskRow struct {
	due                    string
	overdueAt, scheduledAt int64
	completedAt            sql.NullInt64
	stored                 bool // the row is in the table already
}

type lossRow struct {
	seq                          int64
	contactID, fromStage, reason string
	amount                       int64
	currency                     string
	lostAt                       int64
	reopenedAt                   sql.NullInt64
	dirty                        bool
	stored                       bool // the row is in the table already
}

// Apply folds the batch into set t.
func (b *prepared) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables) error {
	contacts := make(map[string]*contactRow, len(b.contacts))
	visits := make(map[visitKey]*visitRow, len(b.contacts))
	known := make(map[visitKey]bool, len(b.contacts))
	if err := loadContacts(ctx, tx, t, b.contacts, contacts, visits, known); err != nil {
		return err
	}
	tasks := map[taskKey]*taskRow{}
	tasksKnown := make(map[string]bool, len(b.tasks))
	if err := loadTasks(ctx, tx, t, b.tasks, tasks, tasksKnown); err != nil {
		return err
	}
	losses := make(map[string][]*lossRow, len(b.deals))
	if err := loadLosses(ctx, tx, t, b.deals, losses); err != nil {
		return err
	}
	open := func(id string, seq int64, phase contact.Phase, at int64) {
		k := visitKey{id, seq}
		visits[k] = &visitRow{phase: string(phase), entered: at, dirty: true, stored: visits[k] != nil && visits[k].stored}
		known[k] = true
	}
	var touchRows, surveyRows []any
	// taskOrder lists the tasks to write, once each.
	var taskOrder []taskKey
	inOrder := map[taskKey]bool{}
	changed := func(k taskKey) {
		if !inOrder[k] {
			inOrder[k] = true
			taskOrder = append(taskOrder, k)
		}
	}
	for i := range b.ops {
		o := &b.ops[i]
		switch o.kind {
		case opCreate:
			c := contacts[o.contact]
			contacts[o.contact] = &contactRow{name: o.a, createdAt: o.at, cohort: o.b, channel: o.c, lastSeq: 1, dirty: true,
				stored: c != nil && c.stored}
			open(o.contact, 1, contact.Lead, o.at)
		case opRename:
			if c := contacts[o.contact]; c != nil {
				c.name, c.dirty = o.a, true
			}
		case opPhase:
			c := contacts[o.contact]
			if c == nil {
				return errUnsure // Apply: "contact was not created"
			}
			k := visitKey{o.contact, c.lastSeq}
			switch v := visits[k]; {
			case v != nil:
				v.left = sql.NullInt64{Int64: o.at, Valid: true}
				v.next = sql.NullString{String: o.a, Valid: true}
				v.dirty = true
			case !known[k]:
				return errUnsure
			}
			open(o.contact, c.lastSeq+1, contact.Phase(o.a), o.at)
			c.lastSeq++
			c.dirty = true
		case opTouchpoint:
			touchRows = append(touchRows, o.pos, o.contact, o.at)
		case opSurvey:
			surveyRows = append(surveyRows, o.pos, o.contact, o.n, o.at)
		case opSchedule:
			k := taskKey{o.contact, o.id}
			tasks[k] = &taskRow{due: o.a, overdueAt: o.n, scheduledAt: o.at, stored: tasks[k] != nil && tasks[k].stored}
			changed(k)
		case opComplete:
			k := taskKey{o.contact, o.id}
			switch tk := tasks[k]; {
			case tk != nil:
				tk.completedAt = sql.NullInt64{Int64: o.at, Valid: true}
				changed(k)
			case !tasksKnown[o.contact]:
				return errUnsure
			}
		case opLost:
			rows := losses[o.id]
			seq := int64(len(rows)) + 1
			for _, r := range rows {
				if r.seq == seq {
					return errUnsure // Apply's INSERT would fail on the key
				}
			}
			losses[o.id] = append(rows, &lossRow{seq: seq, contactID: o.contact, fromStage: o.a, reason: o.b, amount: o.n,
				currency: o.c, lostAt: o.at, dirty: true})
		case opReopen:
			for _, r := range losses[o.id] {
				if !r.reopenedAt.Valid {
					r.reopenedAt = sql.NullInt64{Int64: o.at, Valid: true}
					r.dirty = true
				}
			}
		}
	}

	// Rows already stored are upserted, new ones inserted (copied on PostgreSQL). A row
	// thought new but stored after all fails the insert: the batch then goes to Apply.
	var contactRows [2][]any
	for _, id := range b.contacts {
		c := contacts[id]
		if c == nil || !c.dirty {
			continue
		}
		i := bit(c.stored)
		contactRows[i] = append(contactRows[i], id, c.name, c.createdAt, c.cohort, c.channel, c.lastSeq)
	}
	if err := insertBoth(ctx, tx, t.Name(tableContacts), []string{"contact_id", "name", "created_at", "cohort", "channel", "last_seq"},
		1, contactRows); err != nil {
		return err
	}
	var visitRows [2][]any
	for k, v := range visits {
		if v.dirty {
			i := bit(v.stored)
			visitRows[i] = append(visitRows[i], k.contact, k.seq, v.phase, v.entered, projections.NullInt64(v.left.Int64, v.left.Valid),
				projections.NullString(v.next.String, v.next.Valid))
		}
	}
	if err := insertBoth(ctx, tx, t.Name(tableVisits), []string{"contact_id", "seq", "phase", "entered_at", "left_at", "next_phase"},
		2, visitRows); err != nil {
		return err
	}
	// An event is applied once per set: its touchpoint and its survey are new (Apply's DO
	// NOTHING never applies; were one stored, the insert fails and Apply decides).
	if err := tx.Insert(ctx, t.Name(tableTouchpoints), []string{"position", "contact_id", "occurred_at"}, 1,
		projections.ConflictFail, touchRows); err != nil {
		return err
	}
	if err := tx.Insert(ctx, t.Name(tableSurveys), []string{"position", "contact_id", "nps", "occurred_at"}, 1,
		projections.ConflictFail, surveyRows); err != nil {
		return err
	}
	var taskRows [2][]any
	for _, k := range taskOrder {
		tk := tasks[k]
		i := bit(tk.stored)
		taskRows[i] = append(taskRows[i], k.contact, k.task, tk.due, tk.overdueAt, tk.scheduledAt,
			projections.NullInt64(tk.completedAt.Int64, tk.completedAt.Valid))
	}
	if err := insertBoth(ctx, tx, t.Name(tableTasks), []string{"contact_id", "task_id", "due", "overdue_at", "scheduled_at",
		"completed_at"}, 2, taskRows); err != nil {
		return err
	}
	var lossRows [2][]any
	for _, id := range b.deals {
		for _, r := range losses[id] {
			if r.dirty {
				i := bit(r.stored)
				lossRows[i] = append(lossRows[i], id, r.seq, r.contactID, r.fromStage, r.reason, r.amount, r.currency, r.lostAt,
					projections.NullInt64(r.reopenedAt.Int64, r.reopenedAt.Valid))
			}
		}
	}
	return insertBoth(ctx, tx, t.Name(tableDealLosses), []string{"deal_id", "seq", "contact_id", "from_stage", "reason", "amount",
		"currency", "lost_at", "reopened_at"}, 2, lossRows)
}

// insertBoth inserts rows[0] (new) and upserts rows[1] (stored).
func insertBoth(ctx context.Context, tx *projections.Tx, table string, columns []string, key int, rows [2][]any) error {
	if err := tx.Insert(ctx, table, columns, key, projections.ConflictFail, rows[0]); err != nil {
		return err
	}
	return tx.Insert(ctx, table, columns, key, projections.ConflictUpdate, rows[1])
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// loadContacts reads the stored contacts of ids with their latest visit.
func loadContacts(ctx context.Context, tx *projections.Tx, t projections.Tables, ids []string, contacts map[string]*contactRow,
	visits map[visitKey]*visitRow, known map[visitKey]bool) error {
	if len(ids) == 0 {
		return nil
	}
	cond, arg, err := tx.InKeys("c.contact_id", ids)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT c.contact_id, c.name, c.created_at, c.cohort, c.channel, c.last_seq,
		v.seq, v.phase, v.entered_at, v.left_at, v.next_phase
		FROM `+t.Name(tableContacts)+` c LEFT JOIN `+t.Name(tableVisits)+` v ON v.contact_id = c.contact_id AND v.seq = c.last_seq
		WHERE `+cond, arg)
	if err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id      string
			c       contactRow
			seq     sql.NullInt64
			phase   sql.NullString
			entered sql.NullInt64
			v       visitRow
		)
		if err := rows.Scan(&id, &c.name, &c.createdAt, &c.cohort, &c.channel, &c.lastSeq, &seq, &phase, &entered, &v.left, &v.next); err != nil {
			return fmt.Errorf("load contacts: %w", err)
		}
		c.stored = true
		contacts[id] = &c
		k := visitKey{id, c.lastSeq}
		known[k] = true
		if seq.Valid {
			v.phase, v.entered, v.stored = phase.String, entered.Int64, true
			visits[k] = &v
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load contacts: %w", err)
	}
	return nil
}

// loadTasks reads every stored task of the contacts ids.
func loadTasks(ctx context.Context, tx *projections.Tx, t projections.Tables, ids []string, tasks map[taskKey]*taskRow, known map[string]bool) error {
	if len(ids) == 0 {
		return nil
	}
	cond, arg, err := tx.InKeys("contact_id", ids)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT contact_id, task_id, due, overdue_at, scheduled_at, completed_at FROM `+t.Name(tableTasks)+` WHERE `+cond, arg)
	if err != nil {
		return fmt.Errorf("load tasks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k  taskKey
			tk taskRow
		)
		if err := rows.Scan(&k.contact, &k.task, &tk.due, &tk.overdueAt, &tk.scheduledAt, &tk.completedAt); err != nil {
			return fmt.Errorf("load tasks: %w", err)
		}
		tk.stored = true
		tasks[k] = &tk
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load tasks: %w", err)
	}
	for _, id := range ids {
		known[id] = true
	}
	return nil
}

// loadLosses reads every stored loss of the deals ids, in seq order.
func loadLosses(ctx context.Context, tx *projections.Tx, t projections.Tables, ids []string, losses map[string][]*lossRow) error {
	if len(ids) == 0 {
		return nil
	}
	cond, arg, err := tx.InKeys("deal_id", ids)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT deal_id, seq, contact_id, from_stage, reason, amount, currency, lost_at, reopened_at
		FROM `+t.Name(tableDealLosses)+` WHERE `+cond+` ORDER BY deal_id, seq`, arg)
	if err != nil {
		return fmt.Errorf("load losses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			r  lossRow
		)
		if err := rows.Scan(&id, &r.seq, &r.contactID, &r.fromStage, &r.reason, &r.amount, &r.currency, &r.lostAt, &r.reopenedAt); err != nil {
			return fmt.Errorf("load losses: %w", err)
		}
		r.stored = true
		losses[id] = append(losses[id], &r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load losses: %w", err)
	}
	return nil
}
