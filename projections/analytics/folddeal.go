package analytics

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/dealchange"
	"github.com/eventcrm/crm/projections/explain"
	"github.com/eventcrm/crm/projections/readmodel"
)

func timeOf(micros int64) time.Time { return time.UnixMicro(micros) }

// foldDeal folds the events of deals.
func (m *model) foldDeal(e *readmodel.Event, rows *readmodel.Rows) error {
	switch e.Type {
	case deal.TypeOpened:
		return readmodel.With(e, func(ev *deal.Opened) error {
			if _, ok := m.deals.Get(rows, ev.DealID); ok {
				return fmt.Errorf("deal %s was opened already", ev.DealID)
			}
			d := dealRow{dealID: ev.DealID, contactID: ev.ContactID, owner: ev.Owner, openedAt: e.OccurredAt.UnixMicro(),
				openedPosition: e.Position, openedID: e.ID, amount: ev.Amount.Amount, currency: ev.Amount.Currency,
				stage: string(ev.Stage), expectedClose: string(ev.ExpectedClose), status: statusOpen}
			m.stand(rows, m.dealPart(rows, e, d, figOpened))
			m.deals.Upsert(rows, d)
			m.forecastDeal(rows, dealRow{}, d)
			return nil
		})
	case deal.TypeStageChanged, deal.TypeAmountChanged, deal.TypeExpectedCloseChanged, deal.TypeOwnerChanged:
		return dealchange.Fold(e, rows, (*dealRow).attributes, m.changeDeal)
	case deal.TypeWon:
		return readmodel.With(e, func(ev *deal.Won) error {
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) {
				d.status, d.stage = statusWon, string(deal.StageWon)
				won := m.dealPart(rows, e, *d, figWon+ev.Amount.Currency)
				won.Amount, won.Currency = ev.Amount.Amount, ev.Amount.Currency
				m.stand(rows, won)
				cycle := m.dealPart(rows, e, *d, figCycle)
				cycle.Measure = e.OccurredAt.UnixMicro() - d.openedAt
				m.stand(rows, cycle)
			})
		})
	case deal.TypeLost:
		return readmodel.With(e, func(ev *deal.Lost) error {
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) {
				d.status, d.stage = statusLost, string(deal.StageLost)
				lost := m.dealPart(rows, e, *d, figLost+ev.Amount.Currency)
				lost.Amount, lost.Currency = ev.Amount.Amount, ev.Amount.Currency
				m.stand(rows, lost)
			})
		})
	case deal.TypeReopened:
		return readmodel.With(e, func(ev *deal.Reopened) error {
			at := e.OccurredAt.UnixMicro()
			for _, p := range m.parts.Group(rows, ev.DealID) {
				if strings.HasPrefix(p.Figure, figWon) || strings.HasPrefix(p.Figure, figLost) || p.Figure == figCycle {
					m.revoke(rows, p, at)
				}
			}
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) { d.status, d.stage = statusOpen, string(ev.To) })
		})
	}
	return nil
}

// dealPart is a part of deal d made by e: for the deal's owner, and its contact's channel and
// segment at the time.
func (m *model) dealPart(rows *readmodel.Rows, e *readmodel.Event, d dealRow, figure string) explain.Part {
	c, _ := m.contacts.Get(rows, d.contactID)
	p := m.contactPart(e, c, d.dealID, figure)
	p.Owner = d.owner
	return p
}

// changeDeal records change to a deal and moves it in the forecast.
func (m *model) changeDeal(rows *readmodel.Rows, id string, change func(*dealRow)) error {
	d, err := m.deals.Need(rows, id)
	if err != nil {
		return err
	}
	before := d
	change(&d)
	m.deals.Upsert(rows, d)
	m.forecastDeal(rows, before, d)
	return nil
}

// forecastDeal moves a deal in the forecast from its state before (nothing when it was not
// open) to after: an open deal is one part, on its expected close date, for its owner.
func (m *model) forecastDeal(rows *readmodel.Rows, before, after dealRow) {
	part := func(d dealRow) explain.Part {
		c, _ := m.contacts.Get(rows, d.contactID)
		return explain.Part{Entity: d.dealID, Figure: figForecast, Position: d.openedPosition, EventID: d.openedID,
			Bucket: d.expectedClose, At: d.openedAt, Owner: d.owner, Channel: c.channel, Segment: c.segment, Count: 1,
			Amount: d.amount, Currency: d.currency, Measure: stageOrdinal(deal.Stage(d.stage))}
	}
	var was, is explain.Part
	if before.status == statusOpen {
		// As counted: the contact's segment may have changed since.
		was, _ = m.parts.Get(rows, before.dealID, figForecast, before.openedPosition)
	}
	if after.status == statusOpen {
		is = part(after)
	}
	if was == is {
		return
	}
	if was.Entity != "" {
		m.contribute(rows, was, -1, "")
		if is.Entity == "" {
			m.parts.Delete(rows, was.Entity, was.Figure, was.Position)
		}
	}
	if is.Entity != "" {
		m.parts.Upsert(rows, is)
		m.contribute(rows, is, 1, "")
	}
}

// stageOrdinal is what a forecast part keeps as its measure: the place of the deal's open
// stage in the pipeline (1 for the first), 0 for any other. The kept sums are by stage, so
// that the question weighs them with the probabilities in force at its as_of.
func stageOrdinal(s deal.Stage) int64 {
	return int64(slices.Index(deal.OpenStages(), s) + 1)
}

// stageOfOrdinal is the stage of a forecast part's measure ("" when none).
func stageOfOrdinal(ordinal int64) deal.Stage {
	stages := deal.OpenStages()
	if ordinal < 1 || ordinal > int64(len(stages)) {
		return ""
	}
	return stages[ordinal-1]
}

// attributes points at the attributes of the deal that dealchange.Fold changes.
func (d *dealRow) attributes() dealchange.Deal {
	return dealchange.Deal{Stage: &d.stage, ExpectedClose: &d.expectedClose, Owner: &d.owner, Amount: &d.amount, Currency: &d.currency}
}
