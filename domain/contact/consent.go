package contact

import (
	"time"

	"github.com/eventcrm/crm/domain"
)

// consentChannelOfKind is the written table of which touchpoint kinds reach the contact through
// a channel the contact can opt out of. Only outbound contact by us is listed: a meeting or a
// visit is agreed in person, an inquiry, a support ticket or a download is the contact's own
// doing, and an email open or click is the contact reading a mail sent earlier (perhaps before
// the opt-out), so none of those is refused.
var consentChannelOfKind = map[TouchpointKind]ConsentChannel{
	KindEmail:         ConsentEmail,
	KindCall:          ConsentPhone,
	KindSMS:           ConsentSMS,
	KindPostalMail:    ConsentPostal,
	KindSocialMessage: ConsentSocial,
}

// ConsentChannelOf returns the consent channel a touchpoint kind uses, if it uses one.
func ConsentChannelOf(k TouchpointKind) (ConsentChannel, bool) {
	ch, ok := consentChannelOfKind[k]
	return ch, ok
}

// checkConsent refuses a touchpoint by a channel the contact had opted out of at occurredAt.
// A touchpoint back-dated to before the opt-out is history and is accepted.
func (c *Contact) checkConsent(k TouchpointKind, occurredAt time.Time) error {
	ch, ok := ConsentChannelOf(k)
	if !ok {
		return nil
	}
	since, opted := c.OptedOutAt[ch]
	if !opted || occurredAt.Before(since) {
		return nil
	}
	return domain.Refused("contact opted out of %s on %s: no %s touchpoint after that", ch, since.UTC().Format(time.RFC3339), k)
}
