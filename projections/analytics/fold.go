package analytics

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/lengths"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Figures of the parts (see the package comment).
const (
	figLead       = "lead/"
	figEntered    = "entered/"
	figAdvanced   = "advanced/"
	figOpened     = "opened"
	figWon        = "won/"
	figLost       = "lost/"
	figCycle      = "cycle"
	figLeadToWon  = "lead_to_won"
	figTaskOpen   = "task/open"
	figTaskOnTime = "task/on_time"
	figTaskLate   = "task/late"
	figTouch      = "touch/"
	figNPS        = "nps/"
	figForecast   = "forecast"
)

// Deal statuses.
const (
	statusOpen = "open"
	statusWon  = "won"
	statusLost = "lost"
)

// Grains of the counts.
const (
	grainDay   = "day"
	grainMonth = "month"
)

// isLength tells the figures whose parts measure a length (the medians).
func isLength(figure string) bool { return figure == figCycle || figure == figLeadToWon }

// fold folds one event into the rows. Events of other types are ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	switch e.Type {
	case settings.TypeStageProbabilitiesChanged:
		return m.probabilities.Fold(e, rows)
	case contact.TypeCreated:
		return readmodel.With(e, func(ev *contact.Created) error { return m.created(rows, e, ev) })
	case contact.TypeDetailsChanged:
		return readmodel.With(e, func(ev *contact.DetailsChanged) error {
			if ev.Segment != nil {
				m.changeContact(rows, ev.ContactID, func(c *contactRow) { c.segment = *ev.Segment })
			}
			return nil
		})
	case contact.TypeOwnerChanged:
		return readmodel.With(e, func(ev *contact.OwnerChanged) error {
			m.changeContact(rows, ev.ContactID, func(c *contactRow) { c.owner = ev.To })
			return nil
		})
	case contact.TypePhaseChanged:
		return readmodel.With(e, func(ev *contact.PhaseChanged) error { return m.phaseChanged(rows, e, ev) })
	case contact.TypeTouchpointRecorded:
		return readmodel.With(e, func(ev *contact.TouchpointRecorded) error {
			c, _ := m.contacts.Get(rows, ev.ContactID)
			m.stand(rows, m.contactPart(e, c, ev.ContactID, figTouch+string(ev.Kind)))
			return nil
		})
	case contact.TypeSurveyRecorded:
		return readmodel.With(e, func(ev *contact.SurveyRecorded) error { return m.surveyed(rows, e, ev) })
	case contact.TypeMergedInto:
		return readmodel.With(e, func(ev *contact.MergedInto) error {
			m.merged(rows, ev.ContactID, e.OccurredAt.UnixMicro())
			return nil
		})
	case contact.TypeTaskScheduled:
		return readmodel.With(e, func(ev *contact.TaskScheduled) error {
			tk := taskRow{taskID: ev.TaskID, contactID: ev.ContactID, assignee: ev.Assignee, due: string(ev.Due)}
			m.openTask(rows, e, &tk)
			m.tasks.Upsert(rows, tk)
			return nil
		})
	case contact.TypeTaskCompleted:
		return readmodel.With(e, func(ev *contact.TaskCompleted) error {
			return m.changeTask(rows, e, ev.TaskID, func(tk *taskRow) {
				figure := figTaskOnTime
				if string(domain.DateIn(e.OccurredAt, m.zone)) > tk.due {
					figure = figTaskLate
				}
				p := m.taskPart(rows, e, *tk, figure)
				m.stand(rows, p)
			})
		})
	case contact.TypeTaskRescheduled:
		return readmodel.With(e, func(ev *contact.TaskRescheduled) error {
			return m.changeTask(rows, e, ev.TaskID, func(tk *taskRow) { tk.due = string(ev.To); m.openTask(rows, e, tk) })
		})
	case contact.TypeTaskReassigned:
		return readmodel.With(e, func(ev *contact.TaskReassigned) error {
			return m.changeTask(rows, e, ev.TaskID, func(tk *taskRow) { tk.assignee = ev.To; m.openTask(rows, e, tk) })
		})
	case contact.TypeTaskCancelled:
		return readmodel.With(e, func(ev *contact.TaskCancelled) error {
			return m.changeTask(rows, e, ev.TaskID, func(*taskRow) {})
		})
	}
	return m.foldDeal(e, rows)
}

func (m *model) day(e *readmodel.Event) string { return string(domain.DateIn(e.OccurredAt, m.zone)) }

// contactPart is a part of contact c (or of id, when c is unknown) made by e.
func (m *model) contactPart(e *readmodel.Event, c contactRow, id, figure string) explain.Part {
	return explain.Part{Entity: id, Figure: figure, Position: e.Position, EventID: e.ID, Bucket: m.day(e),
		At: e.OccurredAt.UnixMicro(), Owner: c.owner, Channel: c.channel, Segment: c.segment, Count: 1}
}

func (m *model) created(rows *readmodel.Rows, e *readmodel.Event, ev *contact.Created) error {
	if _, ok := m.contacts.Get(rows, ev.ContactID); ok {
		return fmt.Errorf("contact %s was created already", ev.ContactID)
	}
	c := contactRow{contactID: ev.ContactID, createdAt: e.OccurredAt.UnixMicro(), owner: ev.Owner,
		channel: string(ev.Channel), segment: ev.Segment}
	m.stand(rows, m.contactPart(e, c, ev.ContactID, figLead+string(ev.Channel)))
	c = m.enter(rows, e, c, contact.Lead)
	m.contacts.Upsert(rows, c)
	return nil
}

func (m *model) changeContact(rows *readmodel.Rows, id string, change func(*contactRow)) {
	if c, ok := m.contacts.Get(rows, id); ok {
		change(&c)
		m.contacts.Upsert(rows, c)
	}
}

func (m *model) phaseChanged(rows *readmodel.Rows, e *readmodel.Event, ev *contact.PhaseChanged) error {
	c, err := m.contacts.Need(rows, ev.ContactID)
	if err != nil {
		return err
	}
	m.contacts.Upsert(rows, m.enter(rows, e, c, ev.To))
	return nil
}

// enter records that c entered phase to with e: its first entry into the phase counts in the
// conversions of the phase, and it advances from every earlier phase it had entered and not
// yet advanced from, for the owner and segment of that entry (a conversion's advanced are
// some of its entered, whatever filter asks). Its first entry into won is its lead-to-won.
func (m *model) enter(rows *readmodel.Rows, e *readmodel.Event, c contactRow, to contact.Phase) contactRow {
	rank := to.Rank()
	if rank == 0 {
		return c
	}
	at := e.OccurredAt.UnixMicro()
	for i, p := range contact.Phases()[:rank-1] {
		b := int64(1) << i
		if c.entered&b == 0 || c.advanced&b != 0 {
			continue
		}
		c.advanced |= b
		part := m.contactPart(e, c, c.contactID, figAdvanced+string(p))
		part.Bucket = string(domain.DateIn(timeOf(c.first[i]), m.zone))
		part.Owner, part.Segment = c.firstOwner[i], c.firstSegment[i]
		m.stand(rows, part)
	}
	b := int64(1) << (rank - 1)
	if c.entered&b != 0 {
		return c
	}
	c.entered |= b
	c.first[rank-1] = at
	c.firstOwner[rank-1], c.firstSegment[rank-1] = c.owner, c.segment
	m.stand(rows, m.contactPart(e, c, c.contactID, figEntered+string(to)))
	if to == contact.Won {
		part := m.contactPart(e, c, c.contactID, figLeadToWon)
		part.Measure = at - c.createdAt
		m.stand(rows, part)
	}
	return c
}

// merged revokes the contact facts of a duplicate merged into another contact: from the merge
// on it is no contact of its own (its new lead, phase entries, conversions, lead-to-won and
// survey answers stop counting); its deals, tasks and touchpoints still count.
func (m *model) merged(rows *readmodel.Rows, id string, at int64) {
	for _, p := range m.parts.Group(rows, id) {
		if !strings.HasPrefix(p.Figure, figTouch) {
			m.revoke(rows, p, at)
		}
	}
}

func (m *model) surveyed(rows *readmodel.Rows, e *readmodel.Event, ev *contact.SurveyRecorded) error {
	c, _ := m.contacts.Get(rows, ev.ContactID)
	category := npsCategory(ev.NPS)
	at := e.OccurredAt.UnixMicro()
	for _, kind := range period.Kinds() {
		label := kind.Of(e.OccurredAt, m.zone)
		part := m.contactPart(e, c, ev.ContactID, figNPS+string(kind)+"/"+category)
		part.Bucket = label
		l, ok := m.latest.Get(rows, ev.ContactID, string(kind), label)
		if ok && (l.at > at || (l.at == at && l.position > e.Position)) {
			// Back-dated behind the latest answer: it was the latest only until that one.
			part.Until = sql.NullInt64{Int64: l.at, Valid: true}
			m.parts.Upsert(rows, part)
			continue
		}
		if ok {
			if old, found := m.parts.Get(rows, ev.ContactID, figNPS+string(kind)+"/"+l.category, l.position); found {
				m.revoke(rows, old, at)
			}
		}
		m.stand(rows, part)
		m.latest.Upsert(rows, latestRow{contactID: ev.ContactID, grain: string(kind), period: label, position: e.Position,
			at: at, category: category})
	}
	return nil
}

// npsCategory is the category of a score: promoter 9-10, passive 7-8, detractor 0-6.
func npsCategory(score int) string {
	switch {
	case score >= 9:
		return "promoter"
	case score >= 7:
		return "passive"
	}
	return "detractor"
}

// taskPart is a part of task tk made by e, counted on its due date for its assignee.
func (m *model) taskPart(rows *readmodel.Rows, e *readmodel.Event, tk taskRow, figure string) explain.Part {
	c, _ := m.contacts.Get(rows, tk.contactID)
	p := m.contactPart(e, c, tk.taskID, figure)
	p.Bucket, p.Owner = tk.due, tk.assignee
	return p
}

// openTask counts tk open from e on (on its due date, for its assignee).
func (m *model) openTask(rows *readmodel.Rows, e *readmodel.Event, tk *taskRow) {
	m.stand(rows, m.taskPart(rows, e, *tk, figTaskOpen))
	tk.openPosition = e.Position
}

// changeTask revokes the open part of a task still open and records change.
func (m *model) changeTask(rows *readmodel.Rows, e *readmodel.Event, id string, change func(*taskRow)) error {
	tk, err := m.tasks.Need(rows, id)
	if err != nil {
		return err
	}
	if tk.openPosition == 0 {
		return nil // done or cancelled already
	}
	if p, ok := m.parts.Get(rows, id, figTaskOpen, tk.openPosition); ok {
		m.revoke(rows, p, e.OccurredAt.UnixMicro())
	}
	tk.openPosition = 0
	change(&tk)
	m.tasks.Upsert(rows, tk)
	return nil
}

// stand records part p and adds it to the figures it counts in.
func (m *model) stand(rows *readmodel.Rows, p explain.Part) {
	m.parts.Upsert(rows, p)
	m.contribute(rows, p, 1, m.date(p.At))
	m.horizon.Reach(rows, p.At)
}

// revoke records that part p stops counting at business time at, and takes it away from the
// figures it counted in. A part revoked already stays as it is.
func (m *model) revoke(rows *readmodel.Rows, p explain.Part, at int64) {
	if p.Until.Valid {
		return
	}
	p.Until = sql.NullInt64{Int64: at, Valid: true}
	m.parts.Upsert(rows, p)
	// A part revoked before it was made (back-dated events) never stood: it is taken back
	// on the date it was made.
	m.contribute(rows, p, -1, m.date(max(at, p.At)))
	m.horizon.Reach(rows, at)
}

// date is the business date of a business time in microseconds.
func (m *model) date(micros int64) string { return string(domain.DateIn(timeOf(micros), m.zone)) }

// contribute adds part p (sign 1) to, or takes it (sign -1) from, the kept figures: the
// forecast; the NPS counts of its kind of period; the counts of its day and of its month (and,
// but for tasks, of its week, quarter and year) for every contact and for its owner, channel and
// segment, the same in the lengths of a median, and those of its day and month in the deltas
// known on business date known (and in the late ones when that period had ended by then).
func (m *model) contribute(rows *readmodel.Rows, p explain.Part, sign int64, known string) {
	if p.Figure == figForecast {
		month := ""
		if p.Bucket != "" {
			month = p.Bucket[:8] + "01"
		}
		for _, g := range [][2]string{{grainDay, p.Bucket}, {grainMonth, month}} {
			m.forecast.Add(rows, forecastRow{grain: g[0], bucket: g[1], owner: p.Owner, currency: p.Currency,
				stage: string(stageOfOrdinal(p.Measure)), count: sign * p.Count, amount: sign * p.Amount})
		}
		return
	}
	type grain struct{ grain, period, figure string }
	var grains []grain
	nps := strings.HasPrefix(p.Figure, figNPS)
	switch {
	case nps:
		kind, category, _ := strings.Cut(strings.TrimPrefix(p.Figure, figNPS), "/")
		grains = []grain{{kind, p.Bucket, figNPS + category}}
	case strings.HasPrefix(p.Figure, "task/"):
		grains = []grain{{grainDay, p.Bucket, p.Figure}, {grainMonth, p.Bucket[:8] + "01", p.Figure}}
	default:
		grains = []grain{{grainDay, p.Bucket, p.Figure}, {grainMonth, p.Bucket[:8] + "01", p.Figure}}
		for _, kind := range []period.Kind{period.Week, period.Quarter, period.Year} {
			grains = append(grains, grain{string(kind), kind.Of(domain.Date(p.Bucket).Time(), time.UTC), p.Figure})
		}
	}
	for _, g := range grains {
		for _, d := range dims(p) {
			m.counts.Add(rows, countRow{grain: g.grain, period: g.period, dim: d.dim, value: d.value, figure: g.figure,
				count: sign * p.Count, amount: sign * p.Amount})
			if nps {
				continue
			}
			if g.grain == grainDay || g.grain == grainMonth { // the others are kept as of now only
				delta := deltaRow{dim: d.dim, value: d.value, grain: g.grain, period: g.period, figure: g.figure,
					known: known, count: sign * p.Count, amount: sign * p.Amount}
				m.deltas.Add(rows, delta)
				if g.period < endedBefore(g.grain, known) {
					m.late.Add(rows, delta)
				}
			}
			if !isLength(p.Figure) {
				continue
			}
			for _, b := range lengths.Bins(p.Measure) {
				m.bins.Add(rows, binRow{grain: g.grain, period: g.period, dim: d.dim, value: d.value, figure: g.figure,
					width: b.Width, bin: b.Bin, count: sign})
				m.bins.Add(rows, binRow{grain: g.grain, period: g.period, dim: d.dim, value: d.value, figure: g.figure,
					width: b.Width * coarseBins, bin: b.Bin / coarseBins, count: sign})
			}
			m.exact.Add(rows, exactRow{figure: g.figure, dim: d.dim, value: d.value, grain: g.grain, period: g.period,
				micros: max(p.Measure, 0), count: sign})
		}
	}
}

// endedBefore is the first period of grain (day or month) that has not ended by business date
// date: the periods before it have.
func endedBefore(grain, date string) string {
	if grain == grainMonth {
		return date[:8] + "01"
	}
	return date
}

type dimValue struct{ dim, value string }

// dims are the copies a part counts in: every contact's, and its owner's, channel's and
// segment's when it has one. The touchpoints and wins of the activity per owner also count
// per channel and owner and per segment and owner ("<channel>\x1f<owner>"), so that the
// activity of one channel or segment reads its owners' rows.
func dims(p explain.Part) []dimValue {
	ds := make([]dimValue, 1, 6)
	for _, d := range []dimValue{{"owner", p.Owner}, {"channel", p.Channel}, {"segment", p.Segment}} {
		if d.value != "" {
			ds = append(ds, d)
		}
	}
	if activity(p.Figure) {
		for _, d := range []dimValue{{"channel", p.Channel}, {"segment", p.Segment}} {
			if d.value != "" {
				ds = append(ds, dimValue{d.dim + ownerSuffix, d.value + ownerSeparator + p.Owner})
			}
		}
	}
	return ds
}

// The copies of the activity per owner of a channel or segment: dim "channel_owner", value
// channel + ownerSeparator + owner.
const (
	ownerSuffix    = "_owner"
	ownerSeparator = "\x1f"
)

// activity tells the figures of the activity per owner.
func activity(figure string) bool {
	return strings.HasPrefix(figure, figTouch) || strings.HasPrefix(figure, figWon)
}
