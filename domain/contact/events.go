package contact

import "github.com/eventcrm/crm/domain"

// Persisted event names of the contact stream. Never change one: add a new version instead.
const (
	TypeCreated            = "contact.created.v2"
	TypeCreatedV1          = "contact.created.v1" // read as v2 (UpcastNameV1)
	TypeDetailsChanged     = "contact.details_changed.v2"
	TypeDetailsChangedV1   = "contact.details_changed.v1" // read as v2 (UpcastNameV1)
	TypeOwnerChanged       = "contact.owner_changed.v1"
	TypePhaseChanged       = "contact.phase_changed.v1"
	TypeTouchpointRecorded = "contact.touchpoint_recorded.v1"
	TypePurchaseRecorded   = "contact.purchase_recorded.v1"
	TypeSurveyRecorded     = "contact.survey_recorded.v1"
	TypeUsageReported      = "contact.usage_reported.v1"
	TypeTaskScheduled      = "contact.task_scheduled.v1"
	TypeTaskCompleted      = "contact.task_completed.v1"
	TypeOptedOut           = "contact.opted_out.v1"
	TypeNoteAdded          = "contact.note_added.v1"
	TypeTaskRescheduled    = "contact.task_rescheduled.v1"
	TypeTaskReassigned     = "contact.task_reassigned.v1"
	TypeTaskCancelled      = "contact.task_cancelled.v1"
	TypeAccountLinked      = "contact.account_linked.v1"
	TypeAccountUnlinked    = "contact.account_unlinked.v1"
	TypeMergedInto         = "contact.merged_into.v1"
	TypeDuplicateAbsorbed  = "contact.duplicate_absorbed.v1"
)

// Created: a lead was captured. Every contact starts in phase lead.
type Created struct {
	ContactID string     `json:"contact_id"`
	Name      PersonName `json:"name"`
	Email     string     `json:"email,omitempty"`
	Phone     string     `json:"phone,omitempty"`
	Company   string     `json:"company,omitempty"`
	Title     string     `json:"title,omitempty"`
	Channel   Channel    `json:"channel"`
	Owner     string     `json:"owner"`
	Segment   string     `json:"segment,omitempty"`
}

// DetailsChanged: contact details were corrected; only the changed fields are set.
type DetailsChanged struct {
	ContactID string `json:"contact_id"`
	// Name, when the name changed, is the whole new name (every part), so that a reader
	// needs nothing else to show it.
	Name    *PersonName `json:"name,omitempty"`
	Email   *string     `json:"email,omitempty"`
	Phone   *string     `json:"phone,omitempty"`
	Company *string     `json:"company,omitempty"`
	Title   *string     `json:"title,omitempty"`
	Segment *string     `json:"segment,omitempty"`
}

// OwnerChanged: the contact was handed to another sales rep.
type OwnerChanged struct {
	ContactID string `json:"contact_id"`
	From      string `json:"from"`
	To        string `json:"to"`
}

// PhaseChanged: the contact moved in its lifecycle under the named rule.
type PhaseChanged struct {
	ContactID string   `json:"contact_id"`
	From      Phase    `json:"from"`
	To        Phase    `json:"to"`
	Rule      RuleName `json:"rule"`
	Reason    string   `json:"reason,omitempty"`
}

// TouchpointRecorded: an activity with the contact happened (call, meeting, email open, ...).
type TouchpointRecorded struct {
	ContactID    string         `json:"contact_id"`
	TouchpointID string         `json:"touchpoint_id"`
	Kind         TouchpointKind `json:"kind"`
	Note         string         `json:"note,omitempty"`
	// Phase is the contact's phase when the touchpoint happened, for the touchpoint mix.
	Phase Phase `json:"phase"`
}

// PurchaseRecorded: the contact bought something.
type PurchaseRecorded struct {
	ContactID  string       `json:"contact_id"`
	PurchaseID string       `json:"purchase_id"`
	Amount     domain.Money `json:"amount"`
	Product    string       `json:"product"`
	Plan       string       `json:"plan,omitempty"`
}

// SurveyRecorded: the contact answered a satisfaction survey.
type SurveyRecorded struct {
	ContactID string `json:"contact_id"`
	SurveyID  string `json:"survey_id"`
	NPS       int    `json:"nps"`
	Comment   string `json:"comment,omitempty"`
}

// UsageReported: the contact's plan usage, as a percentage of the plan limit.
type UsageReported struct {
	ContactID      string `json:"contact_id"`
	PercentOfLimit int    `json:"percent_of_limit"`
}

// TaskScheduled: a follow-up task was created for the contact.
type TaskScheduled struct {
	ContactID string      `json:"contact_id"`
	TaskID    string      `json:"task_id"`
	Title     string      `json:"title"`
	Due       domain.Date `json:"due"`
	Assignee  string      `json:"assignee"`
}

// TaskCompleted: a follow-up task was done.
type TaskCompleted struct {
	ContactID string `json:"contact_id"`
	TaskID    string `json:"task_id"`
}

// OptedOut: the contact withdrew consent for a channel.
type OptedOut struct {
	ContactID string         `json:"contact_id"`
	Channel   ConsentChannel `json:"channel"`
}

// NoteAdded: someone wrote a note about the contact. Author is the actor who wrote it, kept in
// the event itself because it is part of the note, not only of the audit trail.
type NoteAdded struct {
	ContactID string `json:"contact_id"`
	NoteID    string `json:"note_id"`
	Text      string `json:"text"`
	Author    string `json:"author"`
}

// TaskRescheduled: an open task got a new due date.
type TaskRescheduled struct {
	ContactID string      `json:"contact_id"`
	TaskID    string      `json:"task_id"`
	From      domain.Date `json:"from"`
	To        domain.Date `json:"to"`
}

// TaskReassigned: an open task was handed to someone else.
type TaskReassigned struct {
	ContactID string `json:"contact_id"`
	TaskID    string `json:"task_id"`
	From      string `json:"from"`
	To        string `json:"to"`
}

// TaskCancelled: an open task will not be done, for a reason.
type TaskCancelled struct {
	ContactID string `json:"contact_id"`
	TaskID    string `json:"task_id"`
	Reason    string `json:"reason"`
}

// AccountLinked: the contact now belongs to an account. FromAccountID is set when the contact
// moved there from another account (one event, so the move is one fact, never an unlink and
// a link that a reader could see apart).
type AccountLinked struct {
	ContactID     string `json:"contact_id"`
	AccountID     string `json:"account_id"`
	FromAccountID string `json:"from_account_id,omitempty"`
}

// AccountUnlinked: the contact no longer belongs to the account.
type AccountUnlinked struct {
	ContactID string `json:"contact_id"`
	AccountID string `json:"account_id"`
}

// MergedInto: the contact was a duplicate and was merged into another (the survivor). Its
// stream stays as it was, and takes no more commands. CrossAccount records that the two were
// in different accounts and the merge was explicitly allowed anyway.
type MergedInto struct {
	ContactID    string `json:"contact_id"`
	Into         string `json:"into"`
	CrossAccount bool   `json:"cross_account,omitempty"`
}

// DuplicateAbsorbed: the contact survived a merge; the duplicate's history now counts as its
// own. It is the survivor's half of a merge, recorded after the duplicate's MergedInto.
type DuplicateAbsorbed struct {
	ContactID   string `json:"contact_id"`
	DuplicateID string `json:"duplicate_id"`
}

func (*Created) EventType() string            { return TypeCreated }
func (*DetailsChanged) EventType() string     { return TypeDetailsChanged }
func (*OwnerChanged) EventType() string       { return TypeOwnerChanged }
func (*PhaseChanged) EventType() string       { return TypePhaseChanged }
func (*TouchpointRecorded) EventType() string { return TypeTouchpointRecorded }
func (*PurchaseRecorded) EventType() string   { return TypePurchaseRecorded }
func (*SurveyRecorded) EventType() string     { return TypeSurveyRecorded }
func (*UsageReported) EventType() string      { return TypeUsageReported }
func (*TaskScheduled) EventType() string      { return TypeTaskScheduled }
func (*TaskCompleted) EventType() string      { return TypeTaskCompleted }
func (*OptedOut) EventType() string           { return TypeOptedOut }
func (*NoteAdded) EventType() string          { return TypeNoteAdded }
func (*TaskRescheduled) EventType() string    { return TypeTaskRescheduled }
func (*TaskReassigned) EventType() string     { return TypeTaskReassigned }
func (*TaskCancelled) EventType() string      { return TypeTaskCancelled }
func (*AccountLinked) EventType() string      { return TypeAccountLinked }
func (*AccountUnlinked) EventType() string    { return TypeAccountUnlinked }
func (*MergedInto) EventType() string         { return TypeMergedInto }
func (*DuplicateAbsorbed) EventType() string  { return TypeDuplicateAbsorbed }

// Events returns a prototype of every contact event, for the registry.
func Events() []domain.Event {
	return []domain.Event{
		&Created{}, &DetailsChanged{}, &OwnerChanged{}, &PhaseChanged{}, &TouchpointRecorded{},
		&PurchaseRecorded{}, &SurveyRecorded{}, &UsageReported{}, &TaskScheduled{},
		&TaskCompleted{}, &OptedOut{}, &NoteAdded{}, &TaskRescheduled{}, &TaskReassigned{},
		&TaskCancelled{}, &AccountLinked{}, &AccountUnlinked{}, &MergedInto{}, &DuplicateAbsorbed{},
		&Erased{}, &BecameHot{}, &ReminderFired{},
	}
}
