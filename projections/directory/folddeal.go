package directory

import (
	"fmt"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/dealchange"
	"github.com/eventcrm/crm/projections/readmodel"
)

// Statuses of a deal.
const (
	statusOpen = "open"
	statusWon  = "won"
	statusLost = "lost"
)

func (m *model) foldDeal(e *readmodel.Event, rows *readmodel.Rows) error {
	switch e.Type {
	case deal.TypeOpened:
		return readmodel.With(e, func(ev *deal.Opened) error { return m.opened(rows, ev, e.OccurredAt.UnixMicro()) })
	case deal.TypeStageChanged, deal.TypeAmountChanged, deal.TypeExpectedCloseChanged, deal.TypeOwnerChanged:
		return dealchange.Fold(e, rows, (*dealRow).attributes, m.changeDeal)
	case deal.TypeWon:
		return readmodel.With(e, func(ev *deal.Won) error {
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) {
				d.status, d.stage, d.closedOn = statusWon, string(deal.StageWon), string(ev.ClosedAt)
				d.amount, d.currency = ev.Amount.Amount, ev.Amount.Currency
			})
		})
	case deal.TypeLost:
		return readmodel.With(e, func(ev *deal.Lost) error {
			closed := string(domain.DateIn(e.OccurredAt, m.zone))
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) {
				d.status, d.stage, d.closedOn, d.lostReason = statusLost, string(deal.StageLost), closed, string(ev.Reason)
			})
		})
	case deal.TypeReopened:
		return readmodel.With(e, func(ev *deal.Reopened) error {
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) {
				d.status, d.stage, d.closedOn, d.lostReason = statusOpen, string(ev.To), "", ""
			})
		})
	case deal.TypeTitleChanged:
		return readmodel.With(e, func(ev *deal.TitleChanged) error {
			return m.changeDeal(rows, ev.DealID, func(d *dealRow) { d.title = ev.To })
		})
	}
	return nil
}

// opened lists a new deal, counted for the contact's survivor (a deal opened for a contact
// before its merge was recorded counts where the contact went).
func (m *model) opened(rows *readmodel.Rows, ev *deal.Opened, at int64) error {
	c, err := m.survivor(rows, ev.ContactID)
	if err != nil {
		return fmt.Errorf("contact of deal %s: %w", ev.DealID, err)
	}
	d := withDealSearch(dealRow{dealID: ev.DealID, contactID: ev.ContactID, countsFor: c.contactID, title: ev.Title,
		owner: ev.Owner, amount: ev.Amount.Amount, currency: ev.Amount.Currency, stage: string(ev.Stage),
		status: statusOpen, expectedClose: string(ev.ExpectedClose), openedAt: at})
	m.deals.Upsert(rows, d)
	m.dealCounts.Add(rows, dealCountRow{status: d.status, deals: 1})
	m.dealPostings.move(rows, posted{}, d.posted())
	m.contactDeals.Insert(rows, contactDealRow{contactID: c.contactID, dealID: d.dealID, openedAt: at})
	c.openDeals++
	m.contacts.Upsert(rows, c)
	if c.listed() {
		m.addMoney(rows, c.accountID, d, 1)
	}
	return nil
}

// changeDeal changes a deal and moves its contact's open deals and its account's roll-ups
// with it: its part before the change is taken out, its part after put in.
func (m *model) changeDeal(rows *readmodel.Rows, id string, change func(*dealRow)) error {
	d, err := m.deals.Need(rows, id)
	if err != nil {
		return err
	}
	c, err := m.contacts.Need(rows, d.countsFor)
	if err != nil {
		return err
	}
	wasOpen := d.status == statusOpen
	m.addMoney(rows, c.accountID, d, -1)
	before := d
	change(&d)
	d = withDealSearch(d)
	m.addMoney(rows, c.accountID, d, 1)
	m.deals.Upsert(rows, d)
	if d.status != before.status {
		m.dealCounts.Add(rows, dealCountRow{status: before.status, deals: -1})
		m.dealCounts.Add(rows, dealCountRow{status: d.status, deals: 1})
	}
	m.dealPostings.move(rows, before.posted(), d.posted())
	if isOpen := d.status == statusOpen; isOpen != wasOpen {
		if isOpen {
			c.openDeals++
		} else {
			c.openDeals--
		}
		m.contacts.Upsert(rows, c)
	}
	return nil
}

func withDealSearch(d dealRow) dealRow {
	d.sortTitle = Normalize(d.title)
	d.search = searchText(d.title)
	return d
}

// posted is what a deal's postings are made of: every deal is listed.
func (d dealRow) posted() posted {
	return posted{id: d.dealID, search: d.search, sortNum: d.openedAt, listed: true}
}

// attributes points at the attributes of the deal that dealchange.Fold changes.
func (d *dealRow) attributes() dealchange.Deal {
	return dealchange.Deal{Stage: &d.stage, ExpectedClose: &d.expectedClose, Owner: &d.owner, Amount: &d.amount, Currency: &d.currency}
}
