package contact_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/domaintest"
)

const contactID = "c-1"

type contactCase = domaintest.Case[contact.Contact]

// created is the Created event of the contact every row starts from.
func created() *contact.Created {
	return &contact.Created{
		ContactID: contactID, Name: contact.PersonName{Family: "Aiko Tanaka"}, Email: "aiko@example.jp", Phone: "+81 3-1234-5678",
		Company: "Tanaka Shoji", Title: "Buyer", Channel: contact.ChannelSeminar, Owner: "alice", Segment: "smb",
	}
}

// inPhase is the history of a contact that was created and then put in phase p.
func inPhase(p contact.Phase) []domain.Event {
	events := []domain.Event{created()}
	if p != contact.Lead {
		events = append(events, &contact.PhaseChanged{ContactID: contactID, From: contact.Lead, To: p, Rule: contact.RuleSkipForward, Reason: "given"})
	}
	return events
}

func existing() []domain.Event { return inPhase(contact.Lead) }

func ptr[T any](v T) *T { return &v }

// validCreate is a Create command that passes validation.
func validCreate() contact.Create {
	return contact.Create{ContactID: contactID, Name: "Aiko Tanaka", Channel: "web_form", Owner: "alice"}
}

func createWith(change func(*contact.Create)) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) {
		cmd := validCreate()
		change(&cmd)
		return c.Create(cmd)
	}
}

func update(cmd contact.Update) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.Update(cmd) }
}

func TestCreate(t *testing.T) {
	t.Parallel()
	cases := []contactCase{
		{
			Name: "a lead with every field is created, trimmed",
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.Create(contact.Create{
					ContactID: contactID, Name: "  Aiko Tanaka ", Email: " aiko@example.jp", Phone: "+81 3-1234-5678",
					Company: "Tanaka Shoji", Title: "Buyer", Channel: "seminar", Owner: " alice ", Segment: "smb",
				})
			},
			Then: []domain.Event{created()},
		},
		{
			Name: "a lead with only the required fields is created",
			When: createWith(func(*contact.Create) {}),
			Then: []domain.Event{&contact.Created{ContactID: contactID, Name: contact.PersonName{Family: "Aiko Tanaka"}, Channel: contact.ChannelWebForm, Owner: "alice"}},
		},
		{
			Name: "a name of 500 Japanese characters is accepted",
			When: createWith(func(c *contact.Create) { c.Name = strings.Repeat("田", 500) }),
			Then: []domain.Event{&contact.Created{ContactID: contactID, Name: contact.PersonName{Family: strings.Repeat("田", 500)}, Channel: contact.ChannelWebForm, Owner: "alice"}},
		},
		{
			Name: "phone with parentheses and dots is accepted",
			When: createWith(func(c *contact.Create) { c.Phone = "(03) 1234.5678" }),
			Then: []domain.Event{&contact.Created{ContactID: contactID, Name: contact.PersonName{Family: "Aiko Tanaka"}, Phone: "(03) 1234.5678", Channel: contact.ChannelWebForm, Owner: "alice"}},
		},
		{
			Name:        "create twice is a conflict",
			Given:       existing(),
			When:        createWith(func(*contact.Create) {}),
			WantCode:    domain.CodeConflict,
			WantMessage: "contact c-1 exists already",
		},
		{
			Name:        "create twice is a conflict even with an invalid command",
			Given:       existing(),
			When:        createWith(func(c *contact.Create) { c.Name = "" }),
			WantCode:    domain.CodeConflict,
			WantMessage: "exists already",
		},
		{Name: "empty id is invalid", When: createWith(func(c *contact.Create) { c.ContactID = "" }), WantCode: domain.CodeInvalid, WantMessage: "id: is required"},
		{Name: "empty name is invalid", When: createWith(func(c *contact.Create) { c.Name = "" }), WantCode: domain.CodeInvalid, WantMessage: "name: must not be empty"},
		{Name: "blank name is invalid", When: createWith(func(c *contact.Create) { c.Name = " \t " }), WantCode: domain.CodeInvalid, WantMessage: "name: must not be empty"},
		{Name: "name of 501 characters is invalid", When: createWith(func(c *contact.Create) { c.Name = strings.Repeat("a", 501) }), WantCode: domain.CodeInvalid, WantMessage: "name: is longer than 500 characters"},
		{Name: "name of 501 Japanese characters is invalid", When: createWith(func(c *contact.Create) { c.Name = strings.Repeat("田", 501) }), WantCode: domain.CodeInvalid, WantMessage: "name: is longer than 500 characters"},
		{Name: "email without @ is invalid", When: createWith(func(c *contact.Create) { c.Email = "aiko" }), WantCode: domain.CodeInvalid, WantMessage: `email: "aiko" is not an email address`},
		{Name: "email without domain is invalid", When: createWith(func(c *contact.Create) { c.Email = "aiko@" }), WantCode: domain.CodeInvalid, WantMessage: "is not an email address"},
		{Name: "email with display name is invalid", When: createWith(func(c *contact.Create) { c.Email = "Aiko <aiko@example.jp>" }), WantCode: domain.CodeInvalid, WantMessage: "is not an email address"},
		{Name: "email of 501 characters is invalid", When: createWith(func(c *contact.Create) { c.Email = strings.Repeat("a", 490) + "@example.jp" }), WantCode: domain.CodeInvalid, WantMessage: "email: is longer than 500 characters"},
		{Name: "phone with letters is invalid", When: createWith(func(c *contact.Create) { c.Phone = "03-CALL-NOW" }), WantCode: domain.CodeInvalid, WantMessage: `phone: "03-CALL-NOW" is not a phone number`},
		{Name: "phone without digits is invalid", When: createWith(func(c *contact.Create) { c.Phone = "- ." }), WantCode: domain.CodeInvalid, WantMessage: "phone: \"- .\" is not a phone number"},
		{Name: "phone of 501 characters is invalid", When: createWith(func(c *contact.Create) { c.Phone = strings.Repeat("1", 501) }), WantCode: domain.CodeInvalid, WantMessage: "phone: is longer than 500 characters"},
		{Name: "company of 501 characters is invalid", When: createWith(func(c *contact.Create) { c.Company = strings.Repeat("x", 501) }), WantCode: domain.CodeInvalid, WantMessage: "company: is longer than 500 characters"},
		{Name: "title of 501 characters is invalid", When: createWith(func(c *contact.Create) { c.Title = strings.Repeat("x", 501) }), WantCode: domain.CodeInvalid, WantMessage: "title: is longer than 500 characters"},
		{Name: "segment of 501 characters is invalid", When: createWith(func(c *contact.Create) { c.Segment = strings.Repeat("x", 501) }), WantCode: domain.CodeInvalid, WantMessage: "segment: is longer than 500 characters"},
		{Name: "empty channel is invalid", When: createWith(func(c *contact.Create) { c.Channel = "" }), WantCode: domain.CodeInvalid, WantMessage: `channel: "" is not a lead channel`},
		{Name: "unknown channel is invalid", When: createWith(func(c *contact.Create) { c.Channel = "television" }), WantCode: domain.CodeInvalid, WantMessage: `channel: "television" is not a lead channel (web_form, seminar, exhibition, direct_mail, social_ad, referral, other)`},
		{Name: "channel in upper case is invalid", When: createWith(func(c *contact.Create) { c.Channel = "WEB_FORM" }), WantCode: domain.CodeInvalid, WantMessage: "is not a lead channel"},
		{Name: "empty owner is invalid", When: createWith(func(c *contact.Create) { c.Owner = "" }), WantCode: domain.CodeInvalid, WantMessage: "owner: is required"},
		{Name: "blank owner is invalid", When: createWith(func(c *contact.Create) { c.Owner = "  " }), WantCode: domain.CodeInvalid, WantMessage: "owner: is required"},
	}
	for _, ch := range contact.Channels() {
		cases = append(cases, contactCase{
			Name: "channel " + string(ch) + " is accepted",
			When: createWith(func(c *contact.Create) { c.Channel = string(ch) }),
			Then: []domain.Event{&contact.Created{ContactID: contactID, Name: contact.PersonName{Family: "Aiko Tanaka"}, Channel: ch, Owner: "alice"}},
		})
	}
	domaintest.Run(t, cases)
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "update of a missing contact is not found", When: update(contact.Update{Name: ptr("Aiko")}), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "update with no fields is refused", Given: existing(), When: update(contact.Update{}), WantCode: domain.CodeRefused, WantMessage: "the update changes nothing"},
		{
			Name:  "update to the current values is refused",
			Given: existing(),
			When: update(contact.Update{Name: ptr("Aiko Tanaka"), Email: ptr("aiko@example.jp"), Phone: ptr("+81 3-1234-5678"),
				Company: ptr("Tanaka Shoji"), Title: ptr("Buyer"), Segment: ptr("smb"), Owner: ptr("alice")}),
			WantCode:    domain.CodeRefused,
			WantMessage: "the update changes nothing",
		},
		{Name: "update to the current values with spaces is refused", Given: existing(), When: update(contact.Update{Name: ptr(" Aiko Tanaka "), Owner: ptr(" alice")}), WantCode: domain.CodeRefused, WantMessage: "changes nothing"},
		{
			Name:  "a changed name is recorded alone",
			Given: existing(),
			When:  update(contact.Update{Name: ptr("Aiko Suzuki")}),
			Then:  []domain.Event{&contact.DetailsChanged{ContactID: contactID, Name: &contact.PersonName{Family: "Aiko Suzuki"}}},
		},
		{
			Name:  "only the changed fields are recorded",
			Given: existing(),
			When: update(contact.Update{Name: ptr("Aiko Tanaka"), Email: ptr("aiko@tanaka.example"), Phone: ptr("+81 3-1234-5678"),
				Company: ptr("Tanaka Shoji"), Title: ptr("Head of Purchasing"), Segment: ptr("smb")}),
			Then: []domain.Event{&contact.DetailsChanged{ContactID: contactID, Email: ptr("aiko@tanaka.example"), Title: ptr("Head of Purchasing")}},
		},
		{
			Name:  "every detail changed is recorded, trimmed",
			Given: existing(),
			When: update(contact.Update{Name: ptr(" A. Tanaka "), Email: ptr("a@t.example"), Phone: ptr("03-0000-0000"),
				Company: ptr("Tanaka KK"), Title: ptr("CEO"), Segment: ptr("enterprise")}),
			Then: []domain.Event{&contact.DetailsChanged{ContactID: contactID, Name: &contact.PersonName{Family: "A. Tanaka"}, Email: ptr("a@t.example"), Phone: ptr("03-0000-0000"),
				Company: ptr("Tanaka KK"), Title: ptr("CEO"), Segment: ptr("enterprise")}},
		},
		{
			Name:  "clearing optional fields is recorded as empty values",
			Given: existing(),
			When:  update(contact.Update{Email: ptr(""), Phone: ptr(""), Company: ptr(" "), Title: ptr(""), Segment: ptr("")}),
			Then:  []domain.Event{&contact.DetailsChanged{ContactID: contactID, Email: ptr(""), Phone: ptr(""), Company: ptr(""), Title: ptr(""), Segment: ptr("")}},
		},
		{
			Name:  "an owner change emits OwnerChanged",
			Given: existing(),
			When:  update(contact.Update{Owner: ptr(" bob ")}),
			Then:  []domain.Event{&contact.OwnerChanged{ContactID: contactID, From: "alice", To: "bob"}},
		},
		{
			Name:  "an owner change with unchanged details emits only OwnerChanged",
			Given: existing(),
			When:  update(contact.Update{Name: ptr("Aiko Tanaka"), Owner: ptr("bob")}),
			Then:  []domain.Event{&contact.OwnerChanged{ContactID: contactID, From: "alice", To: "bob"}},
		},
		{
			Name:  "details and owner changed emit DetailsChanged then OwnerChanged",
			Given: existing(),
			When:  update(contact.Update{Segment: ptr("enterprise"), Owner: ptr("bob")}),
			Then: []domain.Event{
				&contact.DetailsChanged{ContactID: contactID, Segment: ptr("enterprise")},
				&contact.OwnerChanged{ContactID: contactID, From: "alice", To: "bob"},
			},
		},
		{
			Name:  "the owner change is decided from the current owner",
			Given: append(existing(), &contact.OwnerChanged{ContactID: contactID, From: "alice", To: "bob"}),
			When:  update(contact.Update{Owner: ptr("carol")}),
			Then:  []domain.Event{&contact.OwnerChanged{ContactID: contactID, From: "bob", To: "carol"}},
		},
		{Name: "empty owner is invalid", Given: existing(), When: update(contact.Update{Owner: ptr(" ")}), WantCode: domain.CodeInvalid, WantMessage: "owner: must not be empty"},
		{Name: "empty name is invalid", Given: existing(), When: update(contact.Update{Name: ptr("")}), WantCode: domain.CodeInvalid, WantMessage: "name: must not be empty"},
		{Name: "bad email is invalid", Given: existing(), When: update(contact.Update{Email: ptr("aiko(at)example.jp")}), WantCode: domain.CodeInvalid, WantMessage: "email: \"aiko(at)example.jp\" is not an email address"},
		{Name: "bad phone is invalid", Given: existing(), When: update(contact.Update{Phone: ptr("call me")}), WantCode: domain.CodeInvalid, WantMessage: "phone: \"call me\" is not a phone number"},
		{Name: "long company is invalid", Given: existing(), When: update(contact.Update{Company: ptr(strings.Repeat("c", 501))}), WantCode: domain.CodeInvalid, WantMessage: "company: is longer than 500 characters"},
		{Name: "long title is invalid", Given: existing(), When: update(contact.Update{Title: ptr(strings.Repeat("t", 501))}), WantCode: domain.CodeInvalid, WantMessage: "title: is longer than 500 characters"},
		{Name: "long segment is invalid", Given: existing(), When: update(contact.Update{Segment: ptr(strings.Repeat("s", 501))}), WantCode: domain.CodeInvalid, WantMessage: "segment: is longer than 500 characters"},
		{Name: "an invalid field refuses the whole update", Given: existing(), When: update(contact.Update{Name: ptr("Aiko Suzuki"), Email: ptr("nope"), Owner: ptr("bob")}), WantCode: domain.CodeInvalid, WantMessage: "email:"},
	})
}

func TestChangePhaseCommand(t *testing.T) {
	t.Parallel()
	// The rules themselves are in rules_test.go; these rows cover the command around them.
	domaintest.Run(t, []contactCase{
		{
			Name: "phase change of a missing contact is not found",
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("approach", "")
			},
			WantCode: domain.CodeNotFound, WantMessage: "contact not found",
		},
		{
			Name:  "unknown phase is invalid",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("negotiation", "")
			},
			WantCode: domain.CodeInvalid, WantMessage: `phase: "negotiation" is not a phase`,
		},
		{
			Name:  "empty phase is invalid",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("", "reason")
			},
			WantCode: domain.CodeInvalid, WantMessage: `phase: "" is not a phase`,
		},
		{
			Name:  "phase in upper case is invalid",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("APPROACH", "")
			},
			WantCode: domain.CodeInvalid, WantMessage: "is not a phase",
		},
		{
			Name:  "the reason is trimmed",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("proposal", "  asked for a quote at once \n")
			},
			Then: []domain.Event{&contact.PhaseChanged{ContactID: contactID, From: contact.Lead, To: contact.Proposal, Rule: contact.RuleSkipForward, Reason: "asked for a quote at once"}},
		},
		{
			Name:  "a blank reason is no reason",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("proposal", "   ")
			},
			WantCode: domain.CodeInvalid, WantMessage: "reason: a move from lead to proposal (skip_forward) needs a reason",
		},
		{
			Name:  "the move is decided from the current phase",
			Given: append(inPhase(contact.Discovery), &contact.PhaseChanged{ContactID: contactID, From: contact.Discovery, To: contact.Proposal, Rule: contact.RuleForward}),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.ChangePhase("won", "")
			},
			Then: []domain.Event{&contact.PhaseChanged{ContactID: contactID, From: contact.Proposal, To: contact.Won, Rule: contact.RuleForward}},
		},
	})
}

func TestRecordTouchpoint(t *testing.T) {
	t.Parallel()
	cases := []contactCase{
		{
			Name: "touchpoint on a missing contact is not found",
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "call", "", domaintest.OccurredAt)
			},
			WantCode: domain.CodeNotFound, WantMessage: "contact not found",
		},
		{
			Name:  "a touchpoint records the current phase",
			Given: inPhase(contact.Discovery),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "meeting", "budget confirmed", domaintest.OccurredAt)
			},
			Then: []domain.Event{&contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-1", Kind: contact.KindMeeting, Note: "budget confirmed", Phase: contact.Discovery}},
		},
		{
			Name:  "a touchpoint on a lost contact is recorded in phase lost",
			Given: inPhase(contact.Lost),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "email_open", "", domaintest.OccurredAt)
			},
			Then: []domain.Event{&contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-1", Kind: contact.KindEmailOpen, Phase: contact.Lost}},
		},
		{
			Name:  "a note of 10000 Japanese characters is accepted",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "call", strings.Repeat("話", 10000), domaintest.OccurredAt)
			},
			Then: []domain.Event{&contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-1", Kind: contact.KindCall, Note: strings.Repeat("話", 10000), Phase: contact.Lead}},
		},
		{
			Name:  "a note of 10001 characters is invalid",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "call", strings.Repeat("n", 10001), domaintest.OccurredAt)
			},
			WantCode: domain.CodeInvalid, WantMessage: "note: is longer than 10000 characters",
		},
		{
			Name:  "unknown kind is invalid",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "fax", "", domaintest.OccurredAt)
			},
			WantCode: domain.CodeInvalid, WantMessage: `kind: "fax" is not a touchpoint kind`,
		},
		{
			Name:  "empty kind is invalid",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", "", "", domaintest.OccurredAt)
			},
			WantCode: domain.CodeInvalid, WantMessage: `kind: "" is not a touchpoint kind`,
		},
	}
	for _, k := range contact.TouchpointKinds() {
		cases = append(cases, contactCase{
			Name:  "kind " + string(k) + " is accepted",
			Given: existing(),
			When: func(c *contact.Contact) ([]domain.Event, error) {
				return c.RecordTouchpoint("tp-1", string(k), "", domaintest.OccurredAt)
			},
			Then: []domain.Event{&contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-1", Kind: k, Phase: contact.Lead}},
		})
	}
	domaintest.Run(t, cases)
}

func purchase(amount int64, currency, product, plan string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) {
		return c.RecordPurchase("p-1", amount, currency, product, plan)
	}
}

func TestRecordPurchase(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "purchase by a missing contact is not found", When: purchase(1000, "JPY", "Widget", ""), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{
			Name:  "a purchase is recorded, product and plan trimmed",
			Given: inPhase(contact.Won),
			When:  purchase(1_200_000, "JPY", " CRM Suite ", " pro "),
			Then:  []domain.Event{&contact.PurchaseRecorded{ContactID: contactID, PurchaseID: "p-1", Amount: domain.Money{Amount: 1_200_000, Currency: "JPY"}, Product: "CRM Suite", Plan: "pro"}},
		},
		{
			Name:  "a purchase without plan is recorded",
			Given: existing(),
			When:  purchase(1999, "USD", "Widget", ""),
			Then:  []domain.Event{&contact.PurchaseRecorded{ContactID: contactID, PurchaseID: "p-1", Amount: domain.Money{Amount: 1999, Currency: "USD"}, Product: "Widget"}},
		},
		{Name: "zero amount is invalid", Given: existing(), When: purchase(0, "JPY", "Widget", ""), WantCode: domain.CodeInvalid, WantMessage: "amount: a purchase must have a positive amount"},
		{Name: "negative amount is invalid", Given: existing(), When: purchase(-1, "JPY", "Widget", ""), WantCode: domain.CodeInvalid, WantMessage: "amount: amount -1 is negative"},
		{Name: "lower-case currency is invalid", Given: existing(), When: purchase(100, "jpy", "Widget", ""), WantCode: domain.CodeInvalid, WantMessage: `amount: "jpy" is not an ISO 4217 currency code`},
		{Name: "made-up currency is invalid", Given: existing(), When: purchase(100, "ABC", "Widget", ""), WantCode: domain.CodeInvalid, WantMessage: `"ABC" is not an ISO 4217 currency code`},
		{Name: "empty currency is invalid", Given: existing(), When: purchase(100, "", "Widget", ""), WantCode: domain.CodeInvalid, WantMessage: `"" is not an ISO 4217 currency code`},
		{Name: "empty product is invalid", Given: existing(), When: purchase(100, "EUR", " ", ""), WantCode: domain.CodeInvalid, WantMessage: "product: is required"},
	})
}

func survey(nps int) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.RecordSurvey("s-1", nps, "ok") }
}

func TestRecordSurvey(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "survey of a missing contact is not found", When: survey(9), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "nps 0 is recorded", Given: existing(), When: survey(0), Then: []domain.Event{&contact.SurveyRecorded{ContactID: contactID, SurveyID: "s-1", NPS: 0, Comment: "ok"}}},
		{Name: "nps 10 is recorded", Given: existing(), When: survey(10), Then: []domain.Event{&contact.SurveyRecorded{ContactID: contactID, SurveyID: "s-1", NPS: 10, Comment: "ok"}}},
		{Name: "nps -1 is invalid", Given: existing(), When: survey(-1), WantCode: domain.CodeInvalid, WantMessage: "nps: -1 is outside 0..10"},
		{Name: "nps 11 is invalid", Given: existing(), When: survey(11), WantCode: domain.CodeInvalid, WantMessage: "nps: 11 is outside 0..10"},
	})
}

func usage(percent int) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.ReportUsage(percent) }
}

func TestReportUsage(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "usage of a missing contact is not found", When: usage(50), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "usage 0 is recorded", Given: existing(), When: usage(0), Then: []domain.Event{&contact.UsageReported{ContactID: contactID, PercentOfLimit: 0}}},
		{Name: "usage 80 is recorded", Given: existing(), When: usage(80), Then: []domain.Event{&contact.UsageReported{ContactID: contactID, PercentOfLimit: 80}}},
		{Name: "usage over the limit is recorded", Given: existing(), When: usage(150), Then: []domain.Event{&contact.UsageReported{ContactID: contactID, PercentOfLimit: 150}}},
		{Name: "usage 10000 is recorded", Given: existing(), When: usage(10000), Then: []domain.Event{&contact.UsageReported{ContactID: contactID, PercentOfLimit: 10000}}},
		{Name: "negative usage is invalid", Given: existing(), When: usage(-1), WantCode: domain.CodeInvalid, WantMessage: "percent_of_limit: -1 is outside 0..10000"},
		{Name: "usage over 10000 is invalid", Given: existing(), When: usage(10001), WantCode: domain.CodeInvalid, WantMessage: "percent_of_limit: 10001 is outside 0..10000"},
	})
}

func schedule(taskID, title, due, assignee string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.ScheduleTask(taskID, title, due, assignee) }
}

func withTask(done bool) []domain.Event {
	events := append(existing(), &contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "Call back", Due: "2025-04-10", Assignee: "alice"})
	if done {
		events = append(events, &contact.TaskCompleted{ContactID: contactID, TaskID: "t-1"})
	}
	return events
}

func TestScheduleTask(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "task of a missing contact is not found", When: schedule("t-1", "Call back", "2025-04-10", ""), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{
			Name:  "a task is scheduled for its assignee",
			Given: existing(),
			When:  schedule("t-1", " Call back ", "2025-04-10", " bob "),
			Then:  []domain.Event{&contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "Call back", Due: "2025-04-10", Assignee: "bob"}},
		},
		{
			Name:  "the assignee defaults to the owner",
			Given: existing(),
			When:  schedule("t-1", "Call back", "2024-02-29", ""),
			Then:  []domain.Event{&contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "Call back", Due: "2024-02-29", Assignee: "alice"}},
		},
		{
			Name:  "the default assignee is the current owner",
			Given: append(existing(), &contact.OwnerChanged{ContactID: contactID, From: "alice", To: "bob"}),
			When:  schedule("t-1", "Call back", "2025-04-10", " "),
			Then:  []domain.Event{&contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "Call back", Due: "2025-04-10", Assignee: "bob"}},
		},
		{Name: "task without title is invalid", Given: existing(), When: schedule("t-1", "  ", "2025-04-10", ""), WantCode: domain.CodeInvalid, WantMessage: "title: is required"},
		{Name: "task without due date is invalid", Given: existing(), When: schedule("t-1", "Call back", "", ""), WantCode: domain.CodeInvalid, WantMessage: `due: "" is not a date of the form YYYY-MM-DD`},
		{Name: "task due on 29 February of a common year is invalid", Given: existing(), When: schedule("t-1", "Call back", "2025-02-29", ""), WantCode: domain.CodeInvalid, WantMessage: `due: "2025-02-29" is not a date`},
		{Name: "task due in month 13 is invalid", Given: existing(), When: schedule("t-1", "Call back", "2025-13-01", ""), WantCode: domain.CodeInvalid, WantMessage: `due: "2025-13-01" is not a date`},
		{Name: "task due as a timestamp is invalid", Given: existing(), When: schedule("t-1", "Call back", "2025-04-10T09:00:00Z", ""), WantCode: domain.CodeInvalid, WantMessage: "is not a date of the form YYYY-MM-DD"},
		{Name: "task due in day-month-year form is invalid", Given: existing(), When: schedule("t-1", "Call back", "10/04/2025", ""), WantCode: domain.CodeInvalid, WantMessage: "is not a date of the form YYYY-MM-DD"},
		{Name: "a task id used twice is a conflict", Given: withTask(false), When: schedule("t-1", "Another", "2025-04-11", ""), WantCode: domain.CodeConflict, WantMessage: "task t-1 exists already"},
	})
}

func complete(taskID string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.CompleteTask(taskID) }
}

func TestCompleteTask(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []contactCase{
		{Name: "completing a task of a missing contact is not found", When: complete("t-1"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "an open task is completed", Given: withTask(false), When: complete("t-1"), Then: []domain.Event{&contact.TaskCompleted{ContactID: contactID, TaskID: "t-1"}}},
		{Name: "completing an unknown task is not found", Given: withTask(false), When: complete("t-2"), WantCode: domain.CodeNotFound, WantMessage: "task t-2 not found"},
		{Name: "completing a done task is refused", Given: withTask(true), When: complete("t-1"), WantCode: domain.CodeRefused, WantMessage: "task t-1 is already done"},
	})
}

func optOut(channel string) func(*contact.Contact) ([]domain.Event, error) {
	return func(c *contact.Contact) ([]domain.Event, error) { return c.OptOut(channel) }
}

func TestOptOut(t *testing.T) {
	t.Parallel()
	optedOutOfEmail := append(existing(), &contact.OptedOut{ContactID: contactID, Channel: contact.ConsentEmail})
	cases := []contactCase{
		{Name: "opt-out of a missing contact is not found", When: optOut("email"), WantCode: domain.CodeNotFound, WantMessage: "contact not found"},
		{Name: "opt-out twice is refused", Given: optedOutOfEmail, When: optOut("email"), WantCode: domain.CodeRefused, WantMessage: "contact has already opted out of email"},
		{Name: "opt-out of another channel is recorded", Given: optedOutOfEmail, When: optOut("sms"), Then: []domain.Event{&contact.OptedOut{ContactID: contactID, Channel: contact.ConsentSMS}}},
		{Name: "unknown consent channel is invalid", Given: existing(), When: optOut("fax"), WantCode: domain.CodeInvalid, WantMessage: `channel: "fax" is not a consent channel (email, phone, sms, postal, social)`},
		{Name: "empty consent channel is invalid", Given: existing(), When: optOut(""), WantCode: domain.CodeInvalid, WantMessage: "is not a consent channel"},
		{Name: "a lead channel is not a consent channel", Given: existing(), When: optOut("web_form"), WantCode: domain.CodeInvalid, WantMessage: "is not a consent channel"},
	}
	for _, ch := range []contact.ConsentChannel{contact.ConsentEmail, contact.ConsentPhone, contact.ConsentSMS, contact.ConsentPostal, contact.ConsentSocial} {
		cases = append(cases, contactCase{
			Name:  "opt-out of " + string(ch) + " is recorded",
			Given: existing(),
			When:  optOut(string(ch)),
			Then:  []domain.Event{&contact.OptedOut{ContactID: contactID, Channel: ch}},
		})
	}
	domaintest.Run(t, cases)
}

// at is the business time of the nth day of April 2025, 09:00 UTC.
func at(day int) time.Time { return time.Date(2025, 4, day, 9, 0, 0, 0, time.UTC) }

type timedEvent struct {
	at    time.Time
	event domain.Event
}

func foldContact(events []timedEvent) *contact.Contact {
	var c contact.Contact
	for _, e := range events {
		c.Apply(e.event, e.at)
	}
	return &c
}

func TestApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		events []timedEvent
		want   contact.Contact
	}{
		{
			name:   "created contact is a lead since creation",
			events: []timedEvent{{at(1), created()}},
			want: contact.Contact{
				ID: contactID, Version: 1, Name: "Aiko Tanaka", NameParts: contact.PersonName{Family: "Aiko Tanaka"}, Email: "aiko@example.jp", Phone: "+81 3-1234-5678",
				Company: "Tanaka Shoji", Title: "Buyer", Channel: contact.ChannelSeminar, Owner: "alice", Segment: "smb",
				Phase: contact.Lead, PhaseSince: at(1), CreatedAt: at(1),
				Revenue: map[string]int64{}, Tasks: []contact.Task{}, OptedOut: []contact.ConsentChannel{},
				PhaseHistory: []contact.PhaseVisit{{Phase: contact.Lead, Entered: at(1)}},
			},
		},
		{
			name: "a whole journey",
			events: []timedEvent{
				{at(1), created()},
				{at(2), &contact.DetailsChanged{ContactID: contactID, Email: ptr("aiko@tanaka.example"), Company: ptr("")}},
				{at(2), &contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-1", Kind: contact.KindCall, Phase: contact.Lead}},
				{at(3), &contact.PhaseChanged{ContactID: contactID, From: contact.Lead, To: contact.Approach, Rule: contact.RuleForward}},
				{at(4), &contact.OwnerChanged{ContactID: contactID, From: "alice", To: "bob"}},
				// A back-dated touchpoint does not move the last touchpoint back.
				{at(6), &contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-2", Kind: contact.KindMeeting, Phase: contact.Approach}},
				{at(5), &contact.TouchpointRecorded{ContactID: contactID, TouchpointID: "tp-3", Kind: contact.KindEmail, Phase: contact.Approach}},
				{at(7), &contact.PhaseChanged{ContactID: contactID, From: contact.Approach, To: contact.Won, Rule: contact.RuleSkipForward, Reason: "catalogue order"}},
				{at(7), &contact.PurchaseRecorded{ContactID: contactID, PurchaseID: "p-1", Amount: domain.Money{Amount: 100_000, Currency: "JPY"}, Product: "Suite"}},
				{at(8), &contact.PurchaseRecorded{ContactID: contactID, PurchaseID: "p-2", Amount: domain.Money{Amount: 2_500, Currency: "USD"}, Product: "Add-on"}},
				{at(9), &contact.PurchaseRecorded{ContactID: contactID, PurchaseID: "p-3", Amount: domain.Money{Amount: 50_000, Currency: "JPY"}, Product: "Suite"}},
				{at(10), &contact.SurveyRecorded{ContactID: contactID, SurveyID: "s-1", NPS: 9}},
				{at(11), &contact.SurveyRecorded{ContactID: contactID, SurveyID: "s-2", NPS: 4, Comment: "slow support"}},
				{at(11), &contact.UsageReported{ContactID: contactID, PercentOfLimit: 60}},
				{at(12), &contact.UsageReported{ContactID: contactID, PercentOfLimit: 85}},
				{at(12), &contact.TaskScheduled{ContactID: contactID, TaskID: "t-1", Title: "Call about NPS", Due: "2025-04-15", Assignee: "bob"}},
				{at(12), &contact.TaskScheduled{ContactID: contactID, TaskID: "t-2", Title: "Offer upgrade", Due: "2025-04-20", Assignee: "carol"}},
				{at(14), &contact.TaskCompleted{ContactID: contactID, TaskID: "t-1"}},
				{at(15), &contact.OptedOut{ContactID: contactID, Channel: contact.ConsentPhone}},
				{at(20), &contact.PhaseChanged{ContactID: contactID, From: contact.Won, To: contact.Churned, Rule: contact.RuleChurned, Reason: "cancelled"}},
			},
			want: contact.Contact{
				ID: contactID, Version: 20, Name: "Aiko Tanaka", NameParts: contact.PersonName{Family: "Aiko Tanaka"}, Email: "aiko@tanaka.example", Phone: "+81 3-1234-5678",
				Company: "", Title: "Buyer", Channel: contact.ChannelSeminar, Owner: "bob", Segment: "smb",
				Phase: contact.Churned, PhaseSince: at(20), CreatedAt: at(1),
				Touchpoints: 3, LastTouchpointAt: ptr(at(6)),
				Purchases: 3, Revenue: map[string]int64{"JPY": 150_000, "USD": 2_500},
				LastNPS: ptr(4), UsagePercent: ptr(85),
				Tasks: []contact.Task{
					{ID: "t-1", Title: "Call about NPS", Due: "2025-04-15", Assignee: "bob", Done: true, CompletedAt: ptr(at(14))},
					{ID: "t-2", Title: "Offer upgrade", Due: "2025-04-20", Assignee: "carol"},
				},
				OptedOut:   []contact.ConsentChannel{contact.ConsentPhone},
				OptedOutAt: map[contact.ConsentChannel]time.Time{contact.ConsentPhone: at(15)},
				PhaseHistory: []contact.PhaseVisit{
					{Phase: contact.Lead, Entered: at(1)}, {Phase: contact.Approach, Entered: at(3)},
					{Phase: contact.Won, Entered: at(7)}, {Phase: contact.Churned, Entered: at(20)},
				},
			},
		},
		{
			name: "a won-back contact is in its new phase since the win-back",
			events: []timedEvent{
				{at(1), created()},
				{at(2), &contact.PhaseChanged{ContactID: contactID, From: contact.Lead, To: contact.Lost, Rule: contact.RuleLost, Reason: "no answer"}},
				{at(9), &contact.PhaseChanged{ContactID: contactID, From: contact.Lost, To: contact.Approach, Rule: contact.RuleWinBack}},
				{at(9), &contact.SurveyRecorded{ContactID: contactID, SurveyID: "s-1", NPS: 0}},
			},
			want: contact.Contact{
				ID: contactID, Version: 4, Name: "Aiko Tanaka", NameParts: contact.PersonName{Family: "Aiko Tanaka"}, Email: "aiko@example.jp", Phone: "+81 3-1234-5678",
				Company: "Tanaka Shoji", Title: "Buyer", Channel: contact.ChannelSeminar, Owner: "alice", Segment: "smb",
				Phase: contact.Approach, PhaseSince: at(9), CreatedAt: at(1), LastNPS: ptr(0),
				Revenue: map[string]int64{}, Tasks: []contact.Task{}, OptedOut: []contact.ConsentChannel{},
				PhaseHistory: []contact.PhaseVisit{
					{Phase: contact.Lead, Entered: at(1)}, {Phase: contact.Lost, Entered: at(2)}, {Phase: contact.Approach, Entered: at(9)},
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := foldContact(tc.events)
			if !reflect.DeepEqual(*got, tc.want) {
				gotJSON, _ := json.MarshalIndent(got, "", "  ")
				wantJSON, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Errorf("state differs\ngot  %s\nwant %s\n(phase history got %+v want %+v)", gotJSON, wantJSON, got.PhaseHistory, tc.want.PhaseHistory)
			}
			if !got.Exists() {
				t.Error("Exists() = false after Created")
			}
		})
	}
	t.Run("a new contact does not exist", func(t *testing.T) {
		t.Parallel()
		var c contact.Contact
		if c.Exists() {
			t.Error("Exists() = true before any event")
		}
	})
}

func TestStreamName(t *testing.T) {
	t.Parallel()
	if got := contact.StreamName("c-1"); got != "contact-c-1" {
		t.Errorf("StreamName = %q", got)
	}
	tests := []struct {
		stream, id string
		ok         bool
	}{
		{"contact-c-1", "c-1", true},
		{"contact-", "", false},
		{"deal-c-1", "", false},
		{"c-1", "", false},
	}
	for _, tc := range tests {
		id, err := contact.IDFromStream(tc.stream)
		if id != tc.id || (err == nil) != tc.ok {
			t.Errorf("IDFromStream(%q) = %q, %v; want %q, ok %v", tc.stream, id, err, tc.id, tc.ok)
		}
	}
}
