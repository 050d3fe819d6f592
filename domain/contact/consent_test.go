package contact_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

func touchAt(kind string, when time.Time) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.RecordTouchpoint("tp-1", kind, "", when) }
}

func touched(kind contact.TouchpointKind) []domain.Event {
	return []domain.Event{&contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-1", Kind: kind, Phase: contact.Lead}}
}

// TestTouchpointAfterOptOut: the given events occur at domaintest.OccurredAt, so the opt-out
// takes effect then; touchpoints are decided at, before or after that time.
func TestTouchpointAfterOptOut(t *testing.T) {
	t.Parallel()
	optedOut := func(ch contact.ConsentChannel) []domain.Event {
		return append(existing(), &contact.OptedOut{ContactID: contactID, Channel: ch})
	}
	after, before := domaintest.OccurredAt.Add(time.Hour), domaintest.OccurredAt.Add(-time.Second)
	cases := []contactCase{
		{Name: "an email after an email opt-out is refused", Given: optedOut(contact.ConsentEmail), When: touchAt("email", after),
			WantCode: domain.CodeRefused, WantMessage: "contact opted out of email on 2025-04-01T09:30:00Z: no email touchpoint after that"},
		{Name: "an email at the moment of the opt-out is refused", Given: optedOut(contact.ConsentEmail), When: touchAt("email", domaintest.OccurredAt),
			WantCode: domain.CodeRefused, WantMessage: "opted out of email"},
		{Name: "an email back-dated to before the opt-out is history and recorded", Given: optedOut(contact.ConsentEmail), When: touchAt("email", before),
			Then: touched(contact.KindEmail)},
		{Name: "a call after an email opt-out is recorded", Given: optedOut(contact.ConsentEmail), When: touchAt("call", after),
			Then: touched(contact.KindCall)},
		{Name: "an email open after an email opt-out is recorded (a mail sent earlier)", Given: optedOut(contact.ConsentEmail), When: touchAt("email_open", after),
			Then: touched(contact.KindEmailOpen)},
		{Name: "an email click after an email opt-out is recorded", Given: optedOut(contact.ConsentEmail), When: touchAt("email_click", after),
			Then: touched(contact.KindEmailClick)},
		{Name: "an inquiry after every opt-out is recorded (the contact's own doing)",
			Given: append(optedOut(contact.ConsentEmail), &contact.OptedOut{ContactID: contactID, Channel: contact.ConsentPhone}),
			When:  touchAt("inquiry", after), Then: touched(contact.KindInquiry)},
		{Name: "an email before any opt-out is recorded", Given: existing(), When: touchAt("email", after), Then: touched(contact.KindEmail)},
	}
	for kind, ch := range map[contact.TouchpointKind]contact.ConsentChannel{
		contact.KindEmail: contact.ConsentEmail, contact.KindCall: contact.ConsentPhone, contact.KindSMS: contact.ConsentSMS,
		contact.KindPostalMail: contact.ConsentPostal, contact.KindSocialMessage: contact.ConsentSocial,
	} {
		cases = append(cases, contactCase{
			Name: "a " + string(kind) + " touchpoint after a " + string(ch) + " opt-out is refused", Given: optedOut(ch), When: touchAt(string(kind), after),
			WantCode: domain.CodeRefused, WantMessage: "contact opted out of " + string(ch),
		})
	}
	domaintest.Run(t, cases)
}

func TestConsentChannelOf(t *testing.T) {
	t.Parallel()
	want := map[contact.TouchpointKind]contact.ConsentChannel{
		contact.KindEmail: contact.ConsentEmail, contact.KindCall: contact.ConsentPhone, contact.KindSMS: contact.ConsentSMS,
		contact.KindPostalMail: contact.ConsentPostal, contact.KindSocialMessage: contact.ConsentSocial,
	}
	for _, k := range contact.TouchpointKinds() {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			got, ok := contact.ConsentChannelOf(k)
			w, wantOK := want[k]
			if got != w || ok != wantOK {
				t.Errorf("ConsentChannelOf(%s) = %q, %v; want %q, %v", k, got, ok, w, wantOK)
			}
		})
	}
}
