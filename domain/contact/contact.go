// Package contact is the contact aggregate: a customer's lifecycle through the seven phases,
// with the touchpoints, purchases, surveys, usage, follow-up tasks and consent that belong to
// it. One contact is one event stream.
package contact

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// Contact is the state of one contact, folded from its events.
type Contact struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	Name    string `json:"name"` // as displayed (PersonName.Display)
	// NameParts is the name with its readings.
	NameParts PersonName `json:"name_parts"`
	Email     string     `json:"email,omitempty"`
	Phone     string     `json:"phone,omitempty"`
	Company   string     `json:"company,omitempty"`
	Title     string     `json:"title,omitempty"`
	Channel   Channel    `json:"channel"`
	Owner     string     `json:"owner"`
	Segment   string     `json:"segment,omitempty"`

	Phase      Phase     `json:"phase"`
	PhaseSince time.Time `json:"phase_since"`
	CreatedAt  time.Time `json:"created_at"`

	Touchpoints      int        `json:"touchpoints"`
	LastTouchpointAt *time.Time `json:"last_touchpoint_at,omitempty"`
	Purchases        int        `json:"purchases"`
	// Revenue is the sum of purchases per currency, in minor units.
	Revenue      map[string]int64 `json:"revenue"`
	LastNPS      *int             `json:"last_nps,omitempty"`
	UsagePercent *int             `json:"usage_percent,omitempty"`
	Tasks        []Task           `json:"tasks"`
	OptedOut     []ConsentChannel `json:"opted_out"`
	PhaseHistory []PhaseVisit     `json:"-"`
	// OptedOutAt is when (business time) each opt-out took effect: a touchpoint that
	// occurred before it is history, one at or after it is refused.
	OptedOutAt map[ConsentChannel]time.Time `json:"-"`

	Notes     int    `json:"notes,omitempty"`
	AccountID string `json:"account_id,omitempty"`
	// MergedInto is the survivor this contact was merged into; a merged contact takes no
	// more commands. Absorbed lists the duplicates merged into this one, in merge order.
	MergedInto string   `json:"merged_into,omitempty"`
	Absorbed   []string `json:"absorbed,omitempty"`
	// Erased: the contact's personal data was erased; it takes no more commands.
	Erased   bool       `json:"erased,omitempty"`
	ErasedAt *time.Time `json:"erased_at,omitempty"`
}

// Task is a follow-up task of a contact.
type Task struct {
	ID          string      `json:"id"`
	Title       string      `json:"title"`
	Due         domain.Date `json:"due"`
	Assignee    string      `json:"assignee"`
	Done        bool        `json:"done"`
	CompletedAt *time.Time  `json:"completed_at,omitempty"`
	// Cancelled tasks are closed without being done; CancelReason says why.
	Cancelled    bool       `json:"cancelled,omitempty"`
	CancelReason string     `json:"cancel_reason,omitempty"`
	CancelledAt  *time.Time `json:"cancelled_at,omitempty"`
}

// PhaseVisit is one stay of the contact in a phase.
type PhaseVisit struct {
	Phase   Phase
	Entered time.Time
}

// Exists reports whether the contact was created.
func (c *Contact) Exists() bool { return c.Version > 0 }

// Apply folds one event into the state; occurredAt is the event's business time.
func (c *Contact) Apply(e domain.Event, occurredAt time.Time) {
	c.Version++
	switch e := e.(type) {
	case *Created:
		c.ID, c.Name, c.NameParts, c.Email, c.Phone = e.ContactID, e.Name.Display(), e.Name, e.Email, e.Phone
		c.Company, c.Title, c.Channel, c.Owner, c.Segment = e.Company, e.Title, e.Channel, e.Owner, e.Segment
		c.Phase, c.PhaseSince, c.CreatedAt = Lead, occurredAt, occurredAt
		c.Revenue = map[string]int64{}
		c.Tasks, c.OptedOut = []Task{}, []ConsentChannel{}
		c.PhaseHistory = []PhaseVisit{{Phase: Lead, Entered: occurredAt}}
	case *DetailsChanged:
		if e.Name != nil {
			c.Name, c.NameParts = e.Name.Display(), *e.Name
		}
		set(&c.Email, e.Email)
		set(&c.Phone, e.Phone)
		set(&c.Company, e.Company)
		set(&c.Title, e.Title)
		set(&c.Segment, e.Segment)
	case *OwnerChanged:
		c.Owner = e.To
	case *PhaseChanged:
		c.Phase, c.PhaseSince = e.To, occurredAt
		c.PhaseHistory = append(c.PhaseHistory, PhaseVisit{Phase: e.To, Entered: occurredAt})
	case *TouchpointRecorded:
		c.Touchpoints++
		if c.LastTouchpointAt == nil || occurredAt.After(*c.LastTouchpointAt) {
			t := occurredAt
			c.LastTouchpointAt = &t
		}
	case *PurchaseRecorded:
		c.Purchases++
		c.Revenue[e.Amount.Currency] += e.Amount.Amount
	case *SurveyRecorded:
		nps := e.NPS
		c.LastNPS = &nps
	case *UsageReported:
		p := e.PercentOfLimit
		c.UsagePercent = &p
	case *TaskScheduled:
		c.Tasks = append(c.Tasks, Task{ID: e.TaskID, Title: e.Title, Due: e.Due, Assignee: e.Assignee})
	case *TaskCompleted:
		at := occurredAt
		c.updateTask(e.TaskID, func(t *Task) { t.Done, t.CompletedAt = true, &at })
	case *OptedOut:
		c.OptedOut = append(c.OptedOut, e.Channel)
		if c.OptedOutAt == nil {
			c.OptedOutAt = map[ConsentChannel]time.Time{}
		}
		c.OptedOutAt[e.Channel] = occurredAt
	default:
		c.applyLater(e, occurredAt)
	}
}

// applyLater folds the events of notes, task changes, accounts and merges.
func (c *Contact) applyLater(e domain.Event, occurredAt time.Time) {
	switch e := e.(type) {
	case *NoteAdded:
		c.Notes++
	case *TaskRescheduled:
		c.updateTask(e.TaskID, func(t *Task) { t.Due = e.To })
	case *TaskReassigned:
		c.updateTask(e.TaskID, func(t *Task) { t.Assignee = e.To })
	case *TaskCancelled:
		at := occurredAt
		c.updateTask(e.TaskID, func(t *Task) { t.Cancelled, t.CancelReason, t.CancelledAt = true, e.Reason, &at })
	case *AccountLinked:
		c.AccountID = e.AccountID
	case *AccountUnlinked:
		c.AccountID = ""
	case *MergedInto:
		c.MergedInto = e.Into
	case *DuplicateAbsorbed:
		c.Absorbed = append(c.Absorbed, e.DuplicateID)
	case *Erased:
		c.applyErased(occurredAt)
	}
}

func (c *Contact) updateTask(id string, change func(*Task)) {
	if i := c.taskIndex(id); i >= 0 {
		change(&c.Tasks[i])
	}
}

func set(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func (c *Contact) taskIndex(id string) int {
	return slices.IndexFunc(c.Tasks, func(t Task) bool { return t.ID == id })
}

// mustExist is the first check of every decision on an existing contact: a merged contact is
// refused with an error naming the survivor, whatever the command.
func (c *Contact) mustExist() error {
	if !c.Exists() {
		return domain.NotFound("contact not found")
	}
	if c.MergedInto != "" {
		return domain.Merged("contact", c.ID, c.MergedInto)
	}
	if c.Erased {
		return domain.Refused("contact %s was erased: it takes no more commands", c.ID)
	}
	return nil
}

// Create captures a new lead.
type Create struct {
	ContactID, Name, Email, Phone, Company, Title, Channel, Owner, Segment string
	// Parts is the name in parts with readings; Name (one string) is its family name when
	// Parts is empty, and must be empty when it is not.
	Parts PersonName
}

// Create decides the creation of a contact.
func (c *Contact) Create(cmd Create) ([]domain.Event, error) {
	if c.Exists() {
		return nil, domain.Conflict("contact %s exists already", cmd.ContactID)
	}
	if cmd.ContactID == "" {
		return nil, domain.Invalid("id", "is required")
	}
	if err := validateDetails(&cmd.Email, &cmd.Phone, &cmd.Company, &cmd.Title, &cmd.Segment); err != nil {
		return nil, err
	}
	parts, err := nameOf(cmd.Name, cmd.Parts)
	if err != nil {
		return nil, err
	}
	channel, err := ParseChannel("channel", cmd.Channel)
	if err != nil {
		return nil, err
	}
	owner := strings.TrimSpace(cmd.Owner)
	if owner == "" {
		return nil, domain.Invalid("owner", "is required")
	}
	return []domain.Event{&Created{
		ContactID: cmd.ContactID, Name: parts, Email: cmd.Email, Phone: cmd.Phone,
		Company: cmd.Company, Title: cmd.Title, Channel: channel, Owner: owner, Segment: cmd.Segment,
	}}, nil
}

// Update changes contact details and owner; nil fields are left as they are.
type Update struct {
	Name, Email, Phone, Company, Title, Segment, Owner *string
	// FamilyName, GivenName and their readings change parts of the name (the others stay);
	// Name replaces the whole name with one string, and goes with none of them.
	FamilyName, GivenName, FamilyNameReading, GivenNameReading *string
}

// Update decides a change of details and/or owner. Fields equal to the current value are not
// recorded; a command that changes nothing is refused, so every event records a real change.
func (c *Contact) Update(cmd Update) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	changed := &DetailsChanged{ContactID: c.ID}
	name, err := c.newName(cmd)
	if err != nil {
		return nil, err
	}
	detailsChanged := name != nil
	changed.Name = name
	var fields = []struct {
		name     string
		proposed **string
		current  string
	}{
		{"email", &cmd.Email, c.Email}, {"phone", &cmd.Phone, c.Phone},
		{"company", &cmd.Company, c.Company}, {"title", &cmd.Title, c.Title}, {"segment", &cmd.Segment, c.Segment},
	}
	targets := map[string]**string{"email": &changed.Email, "phone": &changed.Phone,
		"company": &changed.Company, "title": &changed.Title, "segment": &changed.Segment}
	for _, f := range fields {
		if *f.proposed == nil {
			continue
		}
		v := strings.TrimSpace(**f.proposed)
		if err := validateField(f.name, v); err != nil {
			return nil, err
		}
		if v != f.current {
			*targets[f.name] = &v
			detailsChanged = true
		}
	}
	var events []domain.Event
	if detailsChanged {
		events = append(events, changed)
	}
	if cmd.Owner != nil {
		owner := strings.TrimSpace(*cmd.Owner)
		if owner == "" {
			return nil, domain.Invalid("owner", "must not be empty")
		}
		if owner != c.Owner {
			events = append(events, &OwnerChanged{ContactID: c.ID, From: c.Owner, To: owner})
		}
	}
	if len(events) == 0 {
		return nil, domain.Refused("the update changes nothing")
	}
	return events, nil
}

func validateDetails(email, phone, company, title, segment *string) error {
	for _, f := range []struct {
		field string
		v     *string
	}{{"email", email}, {"phone", phone}, {"company", company}, {"title", title}, {"segment", segment}} {
		*f.v = strings.TrimSpace(*f.v)
		if err := validateField(f.field, *f.v); err != nil {
			return err
		}
	}
	return nil
}

func validateField(field, v string) error {
	// Characters, not bytes: a 200-character Japanese name is 600 bytes of UTF-8.
	if utf8.RuneCountInString(v) > 500 {
		return domain.Invalid(field, "is longer than 500 characters")
	}
	switch field {
	case "name":
		if v == "" {
			return domain.Invalid(field, "must not be empty")
		}
	case "email":
		if v != "" {
			if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
				return domain.Invalid(field, "%q is not an email address", v)
			}
		}
	case "phone":
		if v != "" && (strings.Trim(v, "+0123456789 -().") != "" || !strings.ContainsAny(v, "0123456789")) {
			return domain.Invalid(field, "%q is not a phone number", v)
		}
	}
	return nil
}

// ChangePhase decides a lifecycle move under the written transition rules.
func (c *Contact) ChangePhase(to, reason string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	target, err := ParsePhase("phase", to)
	if err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	rule, err := Transition(c.Phase, target, reason)
	if err != nil {
		return nil, err
	}
	return []domain.Event{&PhaseChanged{ContactID: c.ID, From: c.Phase, To: target, Rule: rule, Reason: reason}}, nil
}

// RecordTouchpoint decides the recording of an activity that occurred at the given business
// time. A touchpoint by a channel the contact had opted out of by then is refused.
func (c *Contact) RecordTouchpoint(touchpointID, kind, note string, occurredAt time.Time) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	k, err := ParseTouchpointKind("kind", kind)
	if err != nil {
		return nil, err
	}
	if err := c.checkConsent(k, occurredAt); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(note) > 10000 {
		return nil, domain.Invalid("note", "is longer than 10000 characters")
	}
	return []domain.Event{&TouchpointRecorded{ContactID: c.ID, TouchpointID: touchpointID, Kind: k, Note: note, Phase: c.Phase}}, nil
}

// RecordPurchase decides the recording of a purchase.
func (c *Contact) RecordPurchase(purchaseID string, amount int64, currency, product, plan string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	m, err := domain.NewMoney("amount", amount, currency)
	if err != nil {
		return nil, err
	}
	if m.Amount == 0 {
		return nil, domain.Invalid("amount", "a purchase must have a positive amount")
	}
	if product = strings.TrimSpace(product); product == "" {
		return nil, domain.Invalid("product", "is required")
	}
	return []domain.Event{&PurchaseRecorded{ContactID: c.ID, PurchaseID: purchaseID, Amount: m, Product: product, Plan: strings.TrimSpace(plan)}}, nil
}

// RecordSurvey decides the recording of an NPS answer.
func (c *Contact) RecordSurvey(surveyID string, nps int, comment string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if nps < 0 || nps > 10 {
		return nil, domain.Invalid("nps", "%d is outside 0..10", nps)
	}
	return []domain.Event{&SurveyRecorded{ContactID: c.ID, SurveyID: surveyID, NPS: nps, Comment: comment}}, nil
}

// ReportUsage decides the recording of plan usage.
func (c *Contact) ReportUsage(percentOfLimit int) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if percentOfLimit < 0 || percentOfLimit > 10000 {
		return nil, domain.Invalid("percent_of_limit", "%d is outside 0..10000", percentOfLimit)
	}
	return []domain.Event{&UsageReported{ContactID: c.ID, PercentOfLimit: percentOfLimit}}, nil
}

// ScheduleTask decides a new follow-up task; the assignee defaults to the contact's owner.
func (c *Contact) ScheduleTask(taskID, title, due, assignee string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if title = strings.TrimSpace(title); title == "" {
		return nil, domain.Invalid("title", "is required")
	}
	d, err := domain.ParseDate("due", due)
	if err != nil {
		return nil, err
	}
	if assignee = strings.TrimSpace(assignee); assignee == "" {
		assignee = c.Owner
	}
	if c.taskIndex(taskID) >= 0 {
		return nil, domain.Conflict("task %s exists already", taskID)
	}
	return []domain.Event{&TaskScheduled{ContactID: c.ID, TaskID: taskID, Title: title, Due: d, Assignee: assignee}}, nil
}

// OptOut decides the withdrawal of consent for a channel.
func (c *Contact) OptOut(channel string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	ch, err := ParseConsentChannel("channel", channel)
	if err != nil {
		return nil, err
	}
	if slices.Contains(c.OptedOut, ch) {
		return nil, domain.Refused("contact has already opted out of %s", ch)
	}
	return []domain.Event{&OptedOut{ContactID: c.ID, Channel: ch}}, nil
}

// StreamName is the event stream of a contact.
func StreamName(id string) string { return "contact-" + id }

// IDFromStream returns the contact id of a contact stream name.
func IDFromStream(stream string) (string, error) {
	id, ok := strings.CutPrefix(stream, "contact-")
	if !ok || id == "" {
		return "", fmt.Errorf("%q is not a contact stream", stream)
	}
	return id, nil
}
