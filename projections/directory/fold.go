package directory

import (
	"slices"
	"strings"

	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/projections/readmodel"
)

// fold folds one event into the rows. Events of other types are ignored.
func (m *model) fold(e *readmodel.Event, rows *readmodel.Rows) error {
	switch {
	case strings.HasPrefix(e.Type, "contact."):
		return m.foldContact(e, rows)
	case strings.HasPrefix(e.Type, "deal."):
		return m.foldDeal(e, rows)
	case strings.HasPrefix(e.Type, "account."):
		return m.foldAccount(e, rows)
	case e.Type == settings.TypeStageProbabilitiesChanged:
		return m.probabilities.Fold(e, rows)
	}
	return nil
}

func (m *model) foldContact(e *readmodel.Event, rows *readmodel.Rows) error {
	at := e.OccurredAt.UnixMicro()
	switch e.Type {
	case contact.TypeCreated:
		return readmodel.With(e, func(ev *contact.Created) error {
			c := contactRow{contactID: ev.ContactID, name: ev.Name.Display(), email: ev.Email, phone: ev.Phone,
				company: ev.Company, channel: string(ev.Channel), owner: ev.Owner, segment: ev.Segment,
				phase: string(contact.Lead), phaseRank: int64(contact.Lead.Rank()), phaseSince: at, createdAt: at}
			m.putContact(rows, contactRow{}, withSearch(c))
			return nil
		})
	case contact.TypeDetailsChanged:
		return readmodel.With(e, func(ev *contact.DetailsChanged) error {
			return m.changeContact(rows, ev.ContactID, func(c *contactRow) { applyDetails(c, ev) })
		})
	case contact.TypeOwnerChanged:
		return readmodel.With(e, func(ev *contact.OwnerChanged) error {
			return m.changeContact(rows, ev.ContactID, func(c *contactRow) { c.owner = ev.To })
		})
	case contact.TypePhaseChanged:
		return readmodel.With(e, func(ev *contact.PhaseChanged) error { return m.phaseChanged(rows, ev, at) })
	case contact.TypeTouchpointRecorded, contact.TypeNoteAdded, contact.TypePurchaseRecorded, contact.TypeSurveyRecorded:
		return readmodel.With(e, func(ev *struct {
			ContactID string `json:"contact_id"`
		}) error {
			return m.activity(rows, ev.ContactID, at)
		})
	case contact.TypeOptedOut:
		return readmodel.With(e, func(ev *contact.OptedOut) error {
			return m.changeContact(rows, ev.ContactID, func(c *contactRow) { c.optedOut = addChannel(c.optedOut, string(ev.Channel)) })
		})
	case contact.TypeAccountLinked:
		return readmodel.With(e, func(ev *contact.AccountLinked) error { return m.moveToAccount(rows, ev.ContactID, ev.AccountID) })
	case contact.TypeAccountUnlinked:
		return readmodel.With(e, func(ev *contact.AccountUnlinked) error { return m.moveToAccount(rows, ev.ContactID, "") })
	case contact.TypeMergedInto:
		return readmodel.With(e, func(ev *contact.MergedInto) error { return m.merge(rows, ev.ContactID, ev.Into) })
	}
	return nil
}

// withSearch fills the normalised columns of a contact from its fields.
func withSearch(c contactRow) contactRow {
	c.sortName = Normalize(c.name)
	c.search = searchText(c.name, c.email, c.phone, c.company)
	return c
}

func applyDetails(c *contactRow, ev *contact.DetailsChanged) {
	for _, f := range []struct {
		to   *string
		from *string
	}{{&c.name, contact.DisplayOf(ev.Name)}, {&c.email, ev.Email}, {&c.phone, ev.Phone}, {&c.company, ev.Company}, {&c.segment, ev.Segment}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	*c = withSearch(*c)
}

// addChannel adds channel to a sorted, comma-separated list.
func addChannel(list, channel string) string {
	var channels []string
	if list != "" {
		channels = strings.Split(list, ",")
	}
	if !slices.Contains(channels, channel) {
		channels = append(channels, channel)
		slices.Sort(channels)
	}
	return strings.Join(channels, ",")
}

// changeContact changes the stored row of a contact.
func (m *model) changeContact(rows *readmodel.Rows, id string, change func(*contactRow)) error {
	c, err := m.contacts.Need(rows, id)
	if err != nil {
		return err
	}
	before := c
	change(&c)
	m.putContact(rows, before, c)
	return nil
}

// listed tells whether a contact counts in its account: merged duplicates do not.
func (c contactRow) listed() bool { return c.mergedInto == "" }

func (m *model) phaseChanged(rows *readmodel.Rows, ev *contact.PhaseChanged, at int64) error {
	c, err := m.contacts.Need(rows, ev.ContactID)
	if err != nil {
		return err
	}
	if c.listed() {
		m.countPhase(rows, c.accountID, c.phase, -1)
		m.countPhase(rows, c.accountID, string(ev.To), 1)
	}
	before := c
	c.phase, c.phaseRank, c.phaseSince = string(ev.To), int64(ev.To.Rank()), at
	m.putContact(rows, before, c)
	return nil
}

// activity records something done with a contact at at: the latest is its last activity,
// and its account's (a back-dated event moves neither back).
func (m *model) activity(rows *readmodel.Rows, id string, at int64) error {
	c, err := m.survivor(rows, id)
	if err != nil {
		return err
	}
	if at > c.lastActivity {
		c.lastActivity = at
		m.contacts.Upsert(rows, c)
	}
	m.accountActivity(rows, c.accountID, at)
	return nil
}

// maxMerges bounds the chain of merges followed to a survivor: a survivor cannot have been
// merged when it absorbed a duplicate, so a chain only grows by merging survivors later.
const maxMerges = 64

// survivor is the contact that id counts as: itself, or where its merges led.
func (m *model) survivor(rows *readmodel.Rows, id string) (contactRow, error) {
	c, err := m.contacts.Need(rows, id)
	for i := 0; err == nil && !c.listed() && i < maxMerges; i++ {
		c, err = m.contacts.Need(rows, c.mergedInto)
	}
	return c, err
}

// moveToAccount moves a contact, with its phase, its deals' money and its last activity,
// from its account (if any) to accountID ("" for none).
func (m *model) moveToAccount(rows *readmodel.Rows, id, accountID string) error {
	c, err := m.contacts.Need(rows, id)
	if err != nil {
		return err
	}
	before := c
	if c.listed() {
		m.leaveAccount(rows, c)
		c.accountID = accountID
		m.joinAccount(rows, c)
	} else {
		c.accountID = accountID
	}
	m.putContact(rows, before, c)
	return nil
}

// leaveAccount takes a listed contact, its phase and its deals out of its account's
// roll-ups; joinAccount puts them into them.
func (m *model) leaveAccount(rows *readmodel.Rows, c contactRow) { m.countInAccount(rows, c, -1) }

func (m *model) joinAccount(rows *readmodel.Rows, c contactRow) {
	m.countInAccount(rows, c, 1)
	m.accountActivity(rows, c.accountID, c.lastActivity)
}

func (m *model) countInAccount(rows *readmodel.Rows, c contactRow, sign int64) {
	if c.accountID == "" {
		return
	}
	if a, ok := m.accounts.Get(rows, c.accountID); ok {
		a.contacts += sign
		m.accounts.Upsert(rows, a)
	}
	m.countPhase(rows, c.accountID, c.phase, sign)
	for _, cd := range m.contactDeals.Group(rows, c.contactID) {
		if d, ok := m.deals.Get(rows, cd.dealID); ok {
			m.addMoney(rows, c.accountID, d, sign)
		}
	}
}

// merge folds a duplicate into its survivor: the duplicate leaves its account and the list,
// its deals count for the survivor (and in the survivor's account) from now on.
func (m *model) merge(rows *readmodel.Rows, dupID, intoID string) error {
	dup, err := m.contacts.Need(rows, dupID)
	if err != nil {
		return err
	}
	into, err := m.survivor(rows, intoID)
	if err != nil {
		return err
	}
	if !dup.listed() {
		return nil
	}
	m.leaveAccount(rows, dup)
	for _, cd := range m.contactDeals.Group(rows, dupID) {
		m.contactDeals.Delete(rows, dupID, cd.dealID)
		m.contactDeals.Insert(rows, contactDealRow{contactID: into.contactID, dealID: cd.dealID, openedAt: cd.openedAt})
		if d, ok := m.deals.Get(rows, cd.dealID); ok {
			d.countsFor = into.contactID
			m.deals.Upsert(rows, d)
			m.addMoney(rows, into.accountID, d, 1)
		}
	}
	into.openDeals += dup.openDeals
	into.lastActivity = max(into.lastActivity, dup.lastActivity)
	m.contacts.Upsert(rows, into)
	m.accountActivity(rows, into.accountID, dup.lastActivity)
	before := dup
	dup.mergedInto, dup.openDeals = into.contactID, 0
	m.putContact(rows, before, dup)
	return nil
}

// countPhase adds sign contacts in phase to an account ("" for none: nothing).
func (m *model) countPhase(rows *readmodel.Rows, accountID, phase string, sign int64) {
	if accountID == "" {
		return
	}
	p, ok := m.accountPhases.Get(rows, accountID, phase)
	if !ok {
		p = accountPhaseRow{accountID: accountID, phase: phase}
	}
	p.contacts += sign
	if p.contacts == 0 {
		m.accountPhases.Delete(rows, accountID, phase)
		return
	}
	m.accountPhases.Upsert(rows, p)
}

// accountActivity moves an account's last activity to at when later.
func (m *model) accountActivity(rows *readmodel.Rows, accountID string, at int64) {
	if accountID == "" || at == 0 {
		return
	}
	if a, ok := m.accounts.Get(rows, accountID); ok && at > a.lastActivity {
		a.lastActivity = at
		m.accounts.Upsert(rows, a)
	}
}

func (m *model) foldAccount(e *readmodel.Event, rows *readmodel.Rows) error {
	switch e.Type {
	case account.TypeCreated:
		return readmodel.With(e, func(ev *account.Created) error {
			a := accountRow{accountID: ev.AccountID, name: ev.Name, domain: ev.Domain, industry: ev.Industry,
				size: string(ev.Size), createdAt: e.OccurredAt.UnixMicro()}
			a = withAccountSearch(a)
			m.accounts.Upsert(rows, a)
			m.accountPostings.move(rows, posted{}, a.posted())
			return nil
		})
	case account.TypeDetailsChanged:
		return readmodel.With(e, func(ev *account.DetailsChanged) error {
			a, err := m.accounts.Need(rows, ev.AccountID)
			if err != nil {
				return err
			}
			before := a
			if ev.Name != nil {
				a.name = *ev.Name
			}
			if ev.Domain != nil {
				a.domain = *ev.Domain
			}
			if ev.Industry != nil {
				a.industry = *ev.Industry
			}
			if ev.Size != nil {
				a.size = string(*ev.Size)
			}
			a = withAccountSearch(a)
			m.accounts.Upsert(rows, a)
			m.accountPostings.move(rows, before.posted(), a.posted())
			return nil
		})
	}
	return nil
}

func withAccountSearch(a accountRow) accountRow {
	a.sortName = Normalize(a.name)
	a.search = searchText(a.name, a.domain, a.industry)
	return a
}

// addMoney adds sign times a deal's part to an account's roll-ups in its currency: an open
// deal's amount, in the roll-up and in its stage's row (weighed when asked), a won deal's
// revenue. A row whose figures all come back to zero is removed, so the tables do not depend
// on what came and went.
func (m *model) addMoney(rows *readmodel.Rows, accountID string, d dealRow, sign int64) {
	if accountID == "" || d.status == statusLost {
		return
	}
	r, ok := m.accountMoney.Get(rows, accountID, d.currency)
	if !ok {
		r = accountMoneyRow{accountID: accountID, currency: d.currency}
	}
	switch d.status {
	case statusOpen:
		r.openDeals += sign
		r.openAmount += sign * d.amount
		m.addToStage(rows, accountID, d, sign)
	case statusWon:
		r.wonDeals += sign
		r.wonAmount += sign * d.amount
	}
	if r == (accountMoneyRow{accountID: accountID, currency: d.currency}) {
		m.accountMoney.Delete(rows, accountID, d.currency)
		return
	}
	m.accountMoney.Upsert(rows, r)
}

// addToStage adds sign times an open deal to its account's pipeline in its stage and currency.
func (m *model) addToStage(rows *readmodel.Rows, accountID string, d dealRow, sign int64) {
	s, ok := m.accountStages.Get(rows, accountID, d.currency, d.stage)
	if !ok {
		s = accountStageRow{accountID: accountID, currency: d.currency, stage: d.stage}
	}
	s.deals += sign
	s.amount += sign * d.amount
	if s.deals == 0 && s.amount == 0 {
		m.accountStages.Delete(rows, accountID, d.currency, d.stage)
		return
	}
	m.accountStages.Upsert(rows, s)
}

// posted is what an account's postings are made of: every account is listed.
func (a accountRow) posted() posted {
	return posted{id: a.accountID, search: a.search, sortText: a.sortName, listed: true}
}
