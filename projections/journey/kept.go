package journey

import (
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/lengths"
	"github.com/eventcrm/crm/projections/readmodel"
)

// The kept map: what Query answers about now, kept up to date by the fold for every contact
// and for each cohort, channel, owner and segment (a dim and its value). Each event changes
// a few rows per dim: a phase change closes a stay (its length goes into the stay bins), adds a
// move, and may add an entered or advanced contact; a touchpoint adds to the mix. A new owner
// or segment moves the contact's whole share from the old value's rows to the new one's,
// recomputed from its visits and touchpoint mix. Nothing depends on the clock: relative times
// are never kept.

// Dims of the kept map: the contacts a row counts.
const (
	dimAll     = ""
	dimCohort  = "cohort"
	dimChannel = "channel"
	dimOwner   = "owner"
	dimSegment = "segment"
)

// Groupings of the kept map.
const (
	groupingPhase = "phase"
	groupingStage = "stage"
)

type contactMixRow struct {
	contactID, phase, kind string
	count                  int64
}

type stepRow struct {
	dim, value, grouping, step string
	entered, advanced, closed  int64
}

type moveRow struct {
	dim, value, grouping, from, to string
	count                          int64
}

type keptMixRow struct {
	dim, value, phase, kind string
	count                   int64
}

type stayBinRow struct {
	dim, value, grouping, step string
	width, bin, count          int64
}

type stayRow struct {
	grouping, step string
	micros         int64
	contactID      string
	count          int64
}

func (m *model) declareKept() {
	type (
		cm = contactMixRow
		st = stepRow
		mv = moveRow
		mx = keptMixRow
		sb = stayBinRow
		sr = stayRow
	)
	m.contactMix = readmodel.NewTable(tableContactMix, 3,
		readmodel.Text("contact_id", func(r *cm) *string { return &r.contactID }),
		readmodel.Text("phase", func(r *cm) *string { return &r.phase }),
		readmodel.Text("kind", func(r *cm) *string { return &r.kind }),
		readmodel.Integer("count", func(r *cm) *int64 { return &r.count })).
		Clustered()
	m.steps = readmodel.NewTable(tableSteps, 4,
		readmodel.Text("dim", func(r *st) *string { return &r.dim }),
		readmodel.Text("value", func(r *st) *string { return &r.value }),
		readmodel.Text("grouping", func(r *st) *string { return &r.grouping }),
		readmodel.Text("step", func(r *st) *string { return &r.step }),
		readmodel.Integer("entered", func(r *st) *int64 { return &r.entered }),
		readmodel.Integer("advanced", func(r *st) *int64 { return &r.advanced }),
		readmodel.Integer("closed", func(r *st) *int64 { return &r.closed })).
		Clustered()
	m.moves = readmodel.NewTable(tableMoves, 5,
		readmodel.Text("dim", func(r *mv) *string { return &r.dim }),
		readmodel.Text("value", func(r *mv) *string { return &r.value }),
		readmodel.Text("grouping", func(r *mv) *string { return &r.grouping }),
		readmodel.Text("from_step", func(r *mv) *string { return &r.from }),
		readmodel.Text("to_step", func(r *mv) *string { return &r.to }),
		readmodel.Integer("count", func(r *mv) *int64 { return &r.count })).
		Clustered()
	m.mix = readmodel.NewTable(tableMix, 4,
		readmodel.Text("dim", func(r *mx) *string { return &r.dim }),
		readmodel.Text("value", func(r *mx) *string { return &r.value }),
		readmodel.Text("phase", func(r *mx) *string { return &r.phase }),
		readmodel.Text("kind", func(r *mx) *string { return &r.kind }),
		readmodel.Integer("count", func(r *mx) *int64 { return &r.count })).
		Clustered()
	m.stayBins = readmodel.NewTable(tableStayBins, 6,
		readmodel.Text("dim", func(r *sb) *string { return &r.dim }),
		readmodel.Text("value", func(r *sb) *string { return &r.value }),
		readmodel.Text("grouping", func(r *sb) *string { return &r.grouping }),
		readmodel.Text("step", func(r *sb) *string { return &r.step }),
		readmodel.Integer("width", func(r *sb) *int64 { return &r.width }),
		readmodel.BigInt("bin", func(r *sb) *int64 { return &r.bin }),
		readmodel.Integer("count", func(r *sb) *int64 { return &r.count })).
		Clustered()
	m.stays = readmodel.NewTable(tableStays, 4,
		readmodel.Text("grouping", func(r *sr) *string { return &r.grouping }),
		readmodel.Text("step", func(r *sr) *string { return &r.step }),
		readmodel.BigInt("micros", func(r *sr) *int64 { return &r.micros }),
		readmodel.Text("contact_id", func(r *sr) *string { return &r.contactID }),
		readmodel.Integer("count", func(r *sr) *int64 { return &r.count })).
		Clustered()
	m.horizon = horizon.New()
	// built once: every phase change walks them, and building them allocates their maps
	m.groupings = keptGroupings()
}

// dimValue is the rows of one dim and value: the contacts a kept row counts.
type dimValue struct{ dim, value string }

// dimsOf are the rows a contact counts in: every contact, its cohort, channel, owner, segment.
func dimsOf(c contactRow) []dimValue {
	return []dimValue{{dimAll, ""}, {dimCohort, c.cohort}, {dimChannel, c.channel}, {dimOwner, c.owner}, {dimSegment, c.segment}}
}

// keptGrouping is a grouping with what the fold needs of it: its name and where a contact
// keeps its bits.
type keptGrouping struct {
	name string
	g    grouping
	rank map[string]int
}

func keptGroupings() []keptGrouping {
	var out []keptGrouping
	for _, kg := range []struct {
		name string
		g    grouping
	}{{groupingPhase, byPhase()}, {groupingStage, byStage()}} {
		rank := map[string]int{}
		for i, s := range kg.g.steps {
			rank[s] = i + 1
		}
		out = append(out, keptGrouping{name: kg.name, g: kg.g, rank: rank})
	}
	return out
}

// bits returns the contact's entered and advanced bit sets of grouping kg.
func (kg keptGrouping) bits(c *contactRow) (seen, advanced *int64) {
	if kg.name == groupingPhase {
		return &c.phaseSeen, &c.phaseAdvanced
	}
	return &c.stageSeen, &c.stageAdvanced
}

// keepCreated counts a new contact: it entered lead (and awareness).
func (m *model) keepCreated(rows *readmodel.Rows, e *readmodel.Event, c contactRow, at int64) contactRow {
	dims := dimsOf(c)
	for _, kg := range m.groupings {
		m.enterStep(rows, e, dims, kg, &c, kg.g.bucket(contact.Lead))
	}
	c.stage, c.stageSince = byStage().bucket(contact.Lead), at
	return c
}

// keepPhaseChange counts the contact's move from visit v to phase to at time at, in each
// grouping: the stay it leaves (when the new phase falls in another step), the move, and the
// step it enters. It returns the contact with its bits and current stage updated.
func (m *model) keepPhaseChange(rows *readmodel.Rows, e *readmodel.Event, c contactRow, v visitRow, to contact.Phase, at int64) contactRow {
	dims := dimsOf(c)
	for _, kg := range m.groupings {
		from, since := kg.g.bucket(contact.Phase(v.Phase)), v.EnteredAt
		if kg.name == groupingStage {
			from, since = c.stage, c.stageSince
		}
		next := kg.g.bucket(to)
		if next == from {
			continue // the stay goes on
		}
		if kg.rank[from] > 0 {
			m.addStay(rows, dims, kg.name, from, at-since, 1)
			m.addExactStay(rows, c.contactID, kg.name, from, at-since, 1)
			m.stand(rows, e, c.contactID, kg.name+figStay+from, max(at-since, 0))
		}
		m.addMove(rows, dims, kg.name, from, next, 1)
		m.stand(rows, e, c.contactID, kg.name+figMove+from+"/"+next, 0)
		m.enterStep(rows, e, dims, kg, &c, next)
		if kg.name == groupingStage {
			c.stage, c.stageSince = next, at
		}
	}
	return c
}

// enterStep counts the contact as entered in step, and as advanced from every earlier step
// it entered before: a stay in a later step is an advance from each of them.
func (m *model) enterStep(rows *readmodel.Rows, e *readmodel.Event, dims []dimValue, kg keptGrouping, c *contactRow, step string) {
	r := kg.rank[step]
	if r == 0 {
		return // an exit
	}
	seen, advanced := kg.bits(c)
	bit := int64(1) << (r - 1)
	newAdvanced := *seen & (bit - 1) &^ *advanced
	if *seen&bit == 0 {
		m.addStep(rows, dims, kg.name, step, 1, 0)
		m.stand(rows, e, c.contactID, kg.name+figEntered+step, 0)
	}
	for i, s := range kg.g.steps {
		if newAdvanced&(1<<i) != 0 {
			m.addStep(rows, dims, kg.name, s, 0, 1)
			m.stand(rows, e, c.contactID, kg.name+figAdvanced+s, 0)
		}
	}
	*seen |= bit
	*advanced |= newAdvanced
}

// keepTouchpoint counts a touchpoint of the contact in the phase recorded on it.
func (m *model) keepTouchpoint(rows *readmodel.Rows, e *readmodel.Event, c contactRow, phase, kind string) {
	m.stand(rows, e, c.contactID, figMix+phase+"/"+kind, 0)
	cm, _ := m.contactMix.Get(rows, c.contactID, phase, kind)
	cm.contactID, cm.phase, cm.kind = c.contactID, phase, kind
	cm.count++
	m.contactMix.Upsert(rows, cm)
	if !c.mergedAt.Valid {
		m.addMix(rows, dimsOf(c), phase, kind, 1)
	}
}

// keepMoved moves the contact's share of the kept map in dim from value from to value to (a
// new owner or segment): its steps, moves and stays, recomputed from its visits, and its
// touchpoint mix. A merged duplicate has no share left to move.
func (m *model) keepMoved(rows *readmodel.Rows, c contactRow, dim, from, to string) {
	if c.mergedAt.Valid {
		return
	}
	visits, mix := m.visitsOf(rows, c.contactID), m.contactMix.Group(rows, c.contactID)
	for _, side := range []struct {
		value string
		sign  int64
	}{{from, -1}, {to, 1}} {
		dims := []dimValue{{dim, side.value}}
		for _, kg := range m.groupings {
			m.addShare(rows, dims, kg, c, visits, side.sign)
		}
		for _, r := range mix {
			m.addMix(rows, dims, r.phase, r.kind, side.sign*r.count)
		}
	}
}

// keepMerged takes the whole share of a duplicate merged into another contact out of the kept
// map, in every dim it counts in: its steps, moves and stays (their bins and exact lengths),
// recomputed from its visits, and its touchpoint mix. From the merge on it is no contact of
// its own, and the kept map answers about now only, at or after every merge folded.
func (m *model) keepMerged(rows *readmodel.Rows, c contactRow) {
	visits, dims := m.visitsOf(rows, c.contactID), dimsOf(c)
	for _, kg := range m.groupings {
		m.addShare(rows, dims, kg, c, visits, -1)
		for _, s := range staysOf(visits, kg.g) {
			if s.closed && kg.rank[s.bucket] > 0 {
				m.addExactStay(rows, c.contactID, kg.name, s.bucket, s.left-s.entered, -1)
			}
		}
	}
	for _, r := range m.contactMix.Group(rows, c.contactID) {
		m.addMix(rows, dims, r.phase, r.kind, -r.count)
	}
}

// visitsOf are the visits of the contact, in visit order, closed when left.
func (m *model) visitsOf(rows *readmodel.Rows, contactID string) []visit {
	var visits []visit
	for _, v := range m.visits.Table().Group(rows, contactID) {
		visits = append(visits, visit{phase: contact.Phase(v.Phase), entered: v.EnteredAt, left: v.LeftAt.Int64, closed: v.LeftAt.Valid})
	}
	return visits
}

// addShare adds (sign 1) or takes away (sign -1) the contact's steps, moves and stays in
// grouping kg.
func (m *model) addShare(rows *readmodel.Rows, dims []dimValue, kg keptGrouping, c contactRow, visits []visit, sign int64) {
	seen, advanced := kg.bits(&c)
	for i, s := range kg.g.steps {
		var e, a int64
		if *seen&(1<<i) != 0 {
			e = sign
		}
		if *advanced&(1<<i) != 0 {
			a = sign
		}
		if e != 0 || a != 0 {
			m.addStep(rows, dims, kg.name, s, e, a)
		}
	}
	stays := staysOf(visits, kg.g)
	for i, s := range stays {
		if i > 0 {
			m.addMove(rows, dims, kg.name, stays[i-1].bucket, s.bucket, sign)
		}
		if s.closed && kg.rank[s.bucket] > 0 {
			m.addStay(rows, dims, kg.name, s.bucket, s.left-s.entered, sign)
		}
	}
}

// The counters of the kept map are added to with Add: an event reads none of them (a phase
// change touches some sixty), so a rebuild loads none. A row that comes back to zero stays;
// the queries filter it.

func (m *model) addStep(rows *readmodel.Rows, dims []dimValue, grouping, step string, entered, advanced int64) {
	for _, d := range dims {
		m.steps.Add(rows, stepRow{dim: d.dim, value: d.value, grouping: grouping, step: step, entered: entered, advanced: advanced})
	}
}

func (m *model) addMove(rows *readmodel.Rows, dims []dimValue, grouping, from, to string, n int64) {
	for _, d := range dims {
		m.moves.Add(rows, moveRow{dim: d.dim, value: d.value, grouping: grouping, from: from, to: to, count: n})
	}
}

func (m *model) addMix(rows *readmodel.Rows, dims []dimValue, phase, kind string, n int64) {
	for _, d := range dims {
		m.mix.Add(rows, keptMixRow{dim: d.dim, value: d.value, phase: phase, kind: kind, count: n})
	}
}

// addStay adds n stays of length micros (a negative one, possible only with back-dated
// events, counts as 0) in step: to its closed count and its day bin (see package lengths).
func (m *model) addStay(rows *readmodel.Rows, dims []dimValue, grouping, step string, micros, n int64) {
	bins := lengths.Bins(max(micros, 0))
	for _, d := range dims {
		m.steps.Add(rows, stepRow{dim: d.dim, value: d.value, grouping: grouping, step: step, closed: n})
		for _, b := range bins {
			m.stayBins.Add(rows, stayBinRow{dim: d.dim, value: d.value, grouping: grouping, step: step,
				width: b.Width, bin: b.Bin, count: n})
		}
	}
}

// addExactStay adds n stays of the contact to the exact lengths, kept once (not per dim):
// a question finds those of its contacts by joining them, so a new owner or segment moves
// nothing here.
func (m *model) addExactStay(rows *readmodel.Rows, contactID, grouping, step string, micros, n int64) {
	micros = max(micros, 0)
	m.stays.Add(rows, stayRow{grouping: grouping, step: step, micros: micros, contactID: contactID, count: n})
}

// Figures of the parts (see the package comment), after the grouping's name.
const (
	figEntered  = "/entered/"
	figAdvanced = "/advanced/"
	figStay     = "/stay/"
	figMove     = "/move/"
	figMix      = "mix/"
)

// partsShape is how the parts are kept: with their measure, keyed by position (they are never
// read by the fold).
func partsShape() explain.Shape { return explain.Shape{Measure: true, ByPosition: true} }

// stand records the part of figure made by event e for the contact, with measure (the length
// of a stay). A part is never read nor revoked: its key (contact, figure, position) is new.
func (m *model) stand(rows *readmodel.Rows, e *readmodel.Event, contactID, figure string, measure int64) {
	m.parts.Upsert(rows, explain.Part{Entity: contactID, Figure: figure, Position: e.Position, EventID: e.ID,
		At: e.OccurredAt.UnixMicro(), Count: 1, Measure: measure})
}
