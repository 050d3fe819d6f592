// Package leadscore is the lead-score read model (projection "lead_score"): every contact's
// lead score (DOMAIN "Lead score at time T"), the hot list and a contact's breakdown.
//
// The score decays with time, so it is not stored as a number: the fold keeps, per contact,
// its attribute points and the level of its touchpoints (leadscore.Level: log2 of the sum of
// weight x 2^(days since the epoch / half-life)), which does not change with the time asked
// about. The decaying points at t are 2^(level - days(t) / half-life): contacts ordered by
// level are ordered by decaying points at every t, and "score at t >= m" is, for contacts
// with attribute points a < m, "level >= days(t) / half-life + log2(m - a)": one index range
// per distinct attribute total (kept in bands), never a rescoring of every contact per
// question. The rows found are then scored exactly from the touchpoints the row keeps.
//
// Settings: the fold folds the lead-scoring settings events it meets in the log and scores
// every later event with them; a change rescores every contact from its touchpoints (weights,
// rules and half-life all apply from the change on). So a rebuild scores as the live system
// did.
//
// Tables (prefix from projections.Tables):
//
//	scores  k ('c'), contact_id, owner, title, segment, channel, attr (attribute points),
//	        level (leadscore.Level x 1e9, rounded down; NoLevel for no points), touches (the
//	        contact's touchpoints: "id kind micros" lines), touch_count, last_touch_at (the
//	        latest touchpoint's business time, microseconds, 0 for none), hot_at (business
//	        time of the last became_hot, microseconds), hot_touchpoint
//	steps   contact_id, from_at, until_at, owner, attr, level: the contact's level over
//	        business time, one row per distinct time of its touchpoints: from_at is that time,
//	        until_at the next one (math.MaxInt64 for the latest), level the level of the
//	        touchpoints that occurred at or before from_at. The row in force at T (from_at <= T <
//	        until_at) is the contact's level at T: a question about an earlier time ranges over
//	        the index (attr, level, from_at, until_at) as a question about now does over the
//	        scores, without reading any contact's touchpoints but those of its page.
//	bands   attr, contacts: how many contacts have these attribute points
//	config  name ('lead_scoring'), value (the settings' JSON)
package leadscore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/leadscore"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Name is the persisted name of the projection.
const Name = "lead_score"

// Projection returns the lead-score read model: its tables and its fold.
func Projection() *readmodel.Model {
	m := newModel()
	return readmodel.Define(readmodel.Spec{
		Name:    Name,
		Version: 2, // 2: the steps, for questions about an earlier time
		Tables:  []readmodel.AnyTable{m.scores, m.steps, m.bands, m.config},
		Fold:    m.fold,
	})
}

// Base names of the tables.
const (
	tableScores = "scores"
	tableSteps  = "steps"
	tableBands  = "bands"
	tableConfig = "config"
)

// everyone is the value of the scores' first key column: Group reads every contact.
const everyone = "c"

const configLeadScoring = "lead_scoring"

// levelScale is the fixed point of the stored level.
const levelScale = 1e9

// noLevel is the stored level of a contact without points.
const noLevel = math.MinInt64

type scoreRow struct {
	k, contactID, owner, title, segment, channel string
	attr, level                                  int64
	touches                                      string
	touchCount, lastTouchAt                      int64
	hotAt                                        sql.NullInt64
	hotTouchpoint                                string
}

type bandRow struct{ attr, contacts int64 }

type stepRow struct {
	contactID       string
	fromAt, untilAt int64
	owner           string
	attr, level     int64
}

// forever is the until_at of a contact's latest step.
const forever = math.MaxInt64

type configRow struct{ name, value string }

type model struct {
	scores *readmodel.Table[scoreRow]
	steps  *readmodel.Table[stepRow]
	bands  *readmodel.Table[bandRow]
	config *readmodel.Table[configRow]
}

func newModel() *model {
	type (
		s = scoreRow
		b = bandRow
		c = configRow
	)
	m := &model{}
	m.scores = readmodel.NewTable(tableScores, 2,
		readmodel.Text("k", func(r *s) *string { return &r.k }),
		readmodel.Text("contact_id", func(r *s) *string { return &r.contactID }),
		readmodel.Text("owner", func(r *s) *string { return &r.owner }),
		readmodel.Text("title", func(r *s) *string { return &r.title }),
		readmodel.Text("segment", func(r *s) *string { return &r.segment }),
		readmodel.Text("channel", func(r *s) *string { return &r.channel }),
		readmodel.BigInt("attr", func(r *s) *int64 { return &r.attr }),
		readmodel.BigInt("level", func(r *s) *int64 { return &r.level }),
		readmodel.Text("touches", func(r *s) *string { return &r.touches }),
		readmodel.BigInt("touch_count", func(r *s) *int64 { return &r.touchCount }),
		readmodel.BigInt("last_touch_at", func(r *s) *int64 { return &r.lastTouchAt }),
		readmodel.NullBigInt("hot_at", func(r *s) *sql.NullInt64 { return &r.hotAt }),
		readmodel.Text("hot_touchpoint", func(r *s) *string { return &r.hotTouchpoint })).
		WithIndexes(
			// The hot list: one range per attribute total; one owner's.
			readmodel.Index{Name: "attr_level", Columns: "attr, level"},
			readmodel.Index{Name: "owner_attr_level", Columns: "owner, attr, level"},
			readmodel.Index{Name: "contact", Columns: "contact_id"},
			// Is the question about now (no touchpoint after it)?
			readmodel.Index{Name: "last_touch", Columns: "last_touch_at"},
		)
	type st = stepRow
	m.steps = readmodel.NewTable(tableSteps, 2,
		readmodel.Text("contact_id", func(r *st) *string { return &r.contactID }),
		readmodel.BigInt("from_at", func(r *st) *int64 { return &r.fromAt }),
		readmodel.BigInt("until_at", func(r *st) *int64 { return &r.untilAt }),
		readmodel.Text("owner", func(r *st) *string { return &r.owner }),
		readmodel.BigInt("attr", func(r *st) *int64 { return &r.attr }),
		readmodel.BigInt("level", func(r *st) *int64 { return &r.level })).
		Clustered().
		WithIndexes(
			// The hot list at an earlier time: one range per attribute total; one owner's.
			// The times are in the index: the rows not in force are skipped in it.
			readmodel.Index{Name: "attr_level", Columns: "attr, level, from_at, until_at"},
			readmodel.Index{Name: "owner_attr_level", Columns: "owner, attr, level, from_at, until_at"},
		)
	m.bands = readmodel.NewTable(tableBands, 1,
		readmodel.BigInt("attr", func(r *b) *int64 { return &r.attr }),
		readmodel.BigInt("contacts", func(r *b) *int64 { return &r.contacts }))
	m.config = readmodel.NewTable(tableConfig, 1,
		readmodel.Text("name", func(r *c) *string { return &r.name }),
		readmodel.Text("value", func(r *c) *string { return &r.value }))
	return m
}

// scoring is the lead-scoring settings the fold is at.
func (m *model) scoring(rows *readmodel.Rows) (settings.LeadScoring, error) {
	c, ok := m.config.Get(rows, configLeadScoring)
	if !ok {
		return settings.Defaults().LeadScoring, nil
	}
	var ls settings.LeadScoring
	if err := json.Unmarshal([]byte(c.value), &ls); err != nil {
		return ls, fmt.Errorf("lead-scoring settings: %w", err)
	}
	return ls, nil
}

func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	switch e.Type {
	case settings.TypeLeadScoringChanged:
		ev, err := readmodel.Decode[settings.LeadScoringChanged](e)
		if err != nil {
			return err
		}
		return m.rescoreAll(rows, ev.LeadScoring)
	case contact.TypeCreated:
		ev, err := readmodel.Decode[contact.Created](e)
		if err != nil {
			return err
		}
		ls, err := m.scoring(rows)
		if err != nil {
			return err
		}
		r := scoreRow{k: everyone, contactID: ev.ContactID, owner: ev.Owner, title: ev.Title, segment: ev.Segment,
			channel: string(ev.Channel), level: noLevel}
		r.attr = int64(leadscore.AttributePoints(r.attributes(), ls))
		m.scores.Upsert(rows, r)
		m.bands.Add(rows, bandRow{attr: r.attr, contacts: 1})
	case contact.TypeDetailsChanged:
		ev, err := readmodel.Decode[contact.DetailsChanged](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.ContactID, func(r *scoreRow) {
			if ev.Title != nil {
				r.title = *ev.Title
			}
			if ev.Segment != nil {
				r.segment = *ev.Segment
			}
		})
	case contact.TypeOwnerChanged:
		ev, err := readmodel.Decode[contact.OwnerChanged](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.ContactID, func(r *scoreRow) { r.owner = ev.To })
	case contact.TypeTouchpointRecorded:
		ev, err := readmodel.Decode[contact.TouchpointRecorded](e)
		if err != nil {
			return err
		}
		tp := leadscore.Touchpoint{ID: ev.TouchpointID, Kind: ev.Kind, At: e.OccurredAt}
		return m.change(rows, ev.ContactID, func(r *scoreRow) { r.touches += encodeTouch(tp) })
	case contact.TypeBecameHot:
		ev, err := readmodel.Decode[contact.BecameHot](e)
		if err != nil {
			return err
		}
		return m.change(rows, ev.ContactID, func(r *scoreRow) {
			r.hotAt, r.hotTouchpoint = sql.NullInt64{Int64: e.OccurredAt.UnixMicro(), Valid: true}, ev.TouchpointID
		})
	}
	return nil
}

// change edits a contact's row and scores it again with the settings the fold is at.
func (m *model) change(rows *readmodel.Rows, contactID string, edit func(*scoreRow)) error {
	r, err := m.scores.Need(rows, everyone, contactID)
	if err != nil {
		return err
	}
	ls, err := m.scoring(rows)
	if err != nil {
		return err
	}
	edit(&r)
	return m.rescore(rows, r, ls)
}

// rescoreAll records new settings and scores every contact with them.
func (m *model) rescoreAll(rows *readmodel.Rows, ls settings.LeadScoring) error {
	b, err := json.Marshal(ls)
	if err != nil {
		return fmt.Errorf("lead-scoring settings: %w", err)
	}
	m.config.Upsert(rows, configRow{name: configLeadScoring, value: string(b)})
	for _, r := range m.scores.Group(rows, everyone) {
		if err := m.rescore(rows, r, ls); err != nil {
			return err
		}
	}
	return nil
}

// rescore computes the row's attribute points and level from its touchpoints and writes it,
// moving it between bands.
func (m *model) rescore(rows *readmodel.Rows, r scoreRow, ls settings.LeadScoring) error {
	tps, err := decodeTouches(r.touches)
	if err != nil {
		return fmt.Errorf("contact %s: %w", r.contactID, err)
	}
	level := leadscore.NoLevel
	r.touchCount, r.lastTouchAt = int64(len(tps)), 0
	for _, tp := range tps {
		level = leadscore.AddLevel(level, ls.Weights[tp.Kind], tp.At, ls.HalfLifeDays)
		r.lastTouchAt = max(r.lastTouchAt, tp.At.UnixMicro())
	}
	old := r.attr
	r.attr = int64(leadscore.AttributePoints(r.attributes(), ls))
	r.level = storeLevel(level)
	m.scores.Upsert(rows, r)
	m.putSteps(rows, r, tps, ls)
	if old != r.attr {
		m.bands.Add(rows, bandRow{attr: old, contacts: -1})
		m.bands.Add(rows, bandRow{attr: r.attr, contacts: 1})
	}
	return nil
}

// putSteps writes the contact's steps from its touchpoints, leaving the rows that are
// already so, and deletes those of times it no longer has.
func (m *model) putSteps(rows *readmodel.Rows, r scoreRow, tps []leadscore.Touchpoint, ls settings.LeadScoring) {
	stored := map[int64]stepRow{}
	for _, s := range m.steps.Group(rows, r.contactID) {
		stored[s.fromAt] = s
	}
	for _, s := range stepsOf(r, tps, ls) {
		if old, ok := stored[s.fromAt]; !ok || old != s {
			m.steps.Upsert(rows, s)
		}
		delete(stored, s.fromAt)
	}
	for at := range stored {
		m.steps.Delete(rows, r.contactID, at)
	}
}

// stepsOf is a contact's level after each distinct time of its touchpoints, in time order.
func stepsOf(r scoreRow, tps []leadscore.Touchpoint, ls settings.LeadScoring) []stepRow {
	sorted := slices.Clone(tps)
	slices.SortStableFunc(sorted, func(a, b leadscore.Touchpoint) int { return a.At.Compare(b.At) })
	var steps []stepRow
	level := leadscore.NoLevel
	for i, tp := range sorted {
		level = leadscore.AddLevel(level, ls.Weights[tp.Kind], tp.At, ls.HalfLifeDays)
		if i+1 < len(sorted) && sorted[i+1].At.Equal(tp.At) {
			continue
		}
		at := tp.At.UnixMicro()
		if n := len(steps); n > 0 {
			steps[n-1].untilAt = at
		}
		steps = append(steps, stepRow{contactID: r.contactID, fromAt: at, untilAt: forever, owner: r.owner,
			attr: r.attr, level: storeLevel(level)})
	}
	return steps
}

func (r scoreRow) attributes() leadscore.Attributes {
	return leadscore.Attributes{Title: r.title, Segment: r.segment, Channel: r.channel}
}

func storeLevel(l float64) int64 {
	if math.IsInf(l, -1) {
		return noLevel
	}
	return int64(math.Floor(l * levelScale))
}

// encodeTouch is one line of the touches column.
func encodeTouch(tp leadscore.Touchpoint) string {
	return tp.ID + " " + string(tp.Kind) + " " + strconv.FormatInt(tp.At.UnixMicro(), 10) + "\n"
}

func decodeTouches(s string) ([]leadscore.Touchpoint, error) {
	var tps []leadscore.Touchpoint
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("touchpoint line %q", line)
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("touchpoint line %q: %w", line, err)
		}
		tps = append(tps, leadscore.Touchpoint{ID: f[0], Kind: contact.TouchpointKind(f[1]), At: time.UnixMicro(us).UTC()})
	}
	return tps, nil
}
