// Package deal is the deal (opportunity) aggregate: a sales opportunity of a contact moving
// through the pipeline stages until it is won or lost. One deal is one event stream.
package deal

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// Deal is the state of one deal, folded from its events.
type Deal struct {
	ID            string       `json:"id"`
	Version       int64        `json:"version"`
	ContactID     string       `json:"contact_id"`
	Title         string       `json:"title"`
	Amount        domain.Money `json:"amount"`
	Owner         string       `json:"owner"`
	ExpectedClose domain.Date  `json:"expected_close,omitempty"`
	Stage         Stage        `json:"stage"`
	StageSince    time.Time    `json:"stage_since"`
	OpenedAt      time.Time    `json:"opened_at"`
	// Probability is the win probability of the current stage, in percent.
	Probability int `json:"probability"`

	ClosedAt   domain.Date `json:"closed_at,omitempty"`
	LostReason LostReason  `json:"lost_reason,omitempty"`
	LostNote   string      `json:"lost_note,omitempty"`
	// ClosedFrom is the open stage the deal was won or lost from; reopening returns to it.
	ClosedFrom Stage `json:"closed_from,omitempty"`
}

// Exists reports whether the deal was opened.
func (d *Deal) Exists() bool { return d.Version > 0 }

// IsOpen reports whether the deal is neither won nor lost.
func (d *Deal) IsOpen() bool { return d.Stage.IsOpen() }

// Apply folds one event into the state; occurredAt is the event's business time.
func (d *Deal) Apply(e domain.Event, occurredAt time.Time) {
	d.Version++
	switch e := e.(type) {
	case *Opened:
		d.ID, d.ContactID, d.Title, d.Amount = e.DealID, e.ContactID, e.Title, e.Amount
		d.Owner, d.ExpectedClose, d.OpenedAt = e.Owner, e.ExpectedClose, occurredAt
		d.moveTo(e.Stage, occurredAt)
	case *StageChanged:
		d.moveTo(e.To, occurredAt)
	case *Won:
		d.Amount, d.ClosedAt, d.ClosedFrom = e.Amount, e.ClosedAt, e.FromStage
		d.moveTo(StageWon, occurredAt)
	case *Lost:
		d.LostReason, d.LostNote, d.ClosedFrom = e.Reason, e.Note, e.FromStage
		d.ClosedAt = domain.DateOf(occurredAt)
		d.moveTo(StageLost, occurredAt)
	case *Reopened:
		d.ClosedAt, d.LostReason, d.LostNote, d.ClosedFrom = "", "", "", ""
		d.moveTo(e.To, occurredAt)
	case *TitleChanged:
		d.Title = e.To
	case *AmountChanged:
		d.Amount = e.To
	case *ExpectedCloseChanged:
		d.ExpectedClose = e.To
	case *OwnerChanged:
		d.Owner = e.To
	}
}

func (d *Deal) moveTo(s Stage, at time.Time) {
	d.Stage, d.StageSince, d.Probability = s, at, s.Probability()
}

func (d *Deal) mustExist() error {
	if !d.Exists() {
		return domain.NotFound("deal not found")
	}
	return nil
}

// Open creates a deal.
type Open struct {
	DealID, ContactID, Title string
	Amount                   int64
	Currency                 string
	Owner                    string
	ExpectedClose            string // YYYY-MM-DD, optional
}

// Open decides the creation of a deal. That the contact exists is checked by the caller,
// which can read it; the domain only requires an id.
func (d *Deal) Open(cmd Open) ([]domain.Event, error) {
	if d.Exists() {
		return nil, domain.Conflict("deal %s exists already", cmd.DealID)
	}
	if cmd.DealID == "" {
		return nil, domain.Invalid("id", "is required")
	}
	if cmd.ContactID == "" {
		return nil, domain.Invalid("contact_id", "is required")
	}
	title := strings.TrimSpace(cmd.Title)
	if title == "" {
		return nil, domain.Invalid("title", "is required")
	}
	if utf8.RuneCountInString(title) > 500 {
		return nil, domain.Invalid("title", "is longer than 500 characters")
	}
	amount, err := domain.NewMoney("amount", cmd.Amount, cmd.Currency)
	if err != nil {
		return nil, err
	}
	owner := strings.TrimSpace(cmd.Owner)
	if owner == "" {
		return nil, domain.Invalid("owner", "is required")
	}
	var closeDate domain.Date
	if cmd.ExpectedClose != "" {
		if closeDate, err = domain.ParseDate("expected_close", cmd.ExpectedClose); err != nil {
			return nil, err
		}
	}
	return []domain.Event{&Opened{DealID: cmd.DealID, ContactID: cmd.ContactID, Title: title, Amount: amount,
		Owner: owner, ExpectedClose: closeDate, Stage: StageQualification}}, nil
}

// ChangeStage decides a move to another open stage (forward or backward).
func (d *Deal) ChangeStage(stage string) ([]domain.Event, error) {
	if err := d.mustExist(); err != nil {
		return nil, err
	}
	to, err := ParseOpenStage("stage", stage)
	if err != nil {
		return nil, err
	}
	if !d.IsOpen() {
		return nil, domain.Refused("deal is %s: reopen it before changing its stage", d.Stage)
	}
	if to == d.Stage {
		return nil, domain.Refused("deal is already in stage %s", to)
	}
	return []domain.Event{&StageChanged{DealID: d.ID, From: d.Stage, To: to}}, nil
}

// Win decides that the deal was won. amount nil keeps the deal's amount; closedAt "" means
// the date the event occurs (today's date in occurredOn).
func (d *Deal) Win(amount *int64, closedAt string, occurredOn domain.Date) ([]domain.Event, error) {
	if err := d.mustExist(); err != nil {
		return nil, err
	}
	if !d.IsOpen() {
		return nil, domain.Refused("deal is already %s: reopen it first", d.Stage)
	}
	final := d.Amount
	if amount != nil {
		m, err := domain.NewMoney("amount", *amount, d.Amount.Currency)
		if err != nil {
			return nil, err
		}
		final = m
	}
	date := occurredOn
	if closedAt != "" {
		var err error
		if date, err = domain.ParseDate("closed_at", closedAt); err != nil {
			return nil, err
		}
	}
	return []domain.Event{&Won{DealID: d.ID, ContactID: d.ContactID, FromStage: d.Stage, Amount: final, ClosedAt: date}}, nil
}

// Lose decides that the deal was lost, with a reason from the list and a free-text note.
func (d *Deal) Lose(reason, note string) ([]domain.Event, error) {
	if err := d.mustExist(); err != nil {
		return nil, err
	}
	r, err := ParseLostReason("reason", reason)
	if err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(note) > 10000 {
		return nil, domain.Invalid("note", "is longer than 10000 characters")
	}
	if !d.IsOpen() {
		return nil, domain.Refused("deal is already %s: reopen it first", d.Stage)
	}
	return []domain.Event{&Lost{DealID: d.ID, ContactID: d.ContactID, FromStage: d.Stage, Reason: r,
		Note: strings.TrimSpace(note), Amount: d.Amount}}, nil
}

// Reopen decides that a won or lost deal is open again, in the stage it was closed from.
func (d *Deal) Reopen() ([]domain.Event, error) {
	if err := d.mustExist(); err != nil {
		return nil, err
	}
	if d.IsOpen() {
		return nil, domain.Refused("deal is open (%s): only a won or lost deal can be reopened", d.Stage)
	}
	to := d.ClosedFrom
	if !to.IsOpen() {
		to = StageQualification
	}
	return []domain.Event{&Reopened{DealID: d.ID, From: d.Stage, To: to}}, nil
}

// StreamName is the event stream of a deal.
func StreamName(id string) string { return "deal-" + id }

// IDFromStream returns the deal id of a deal stream name.
func IDFromStream(stream string) (string, error) {
	id, ok := strings.CutPrefix(stream, "deal-")
	if !ok || id == "" {
		return "", fmt.Errorf("%q is not a deal stream", stream)
	}
	return id, nil
}
