package contact

import (
	"strings"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// AddNote decides a note about the contact, written by author (the actor of the command).
func (c *Contact) AddNote(noteID, text, author string) ([]domain.Event, error) {
	if err := c.mustExist(); err != nil {
		return nil, err
	}
	if text = strings.TrimSpace(text); text == "" {
		return nil, domain.Invalid("text", "is required")
	}
	if utf8.RuneCountInString(text) > 10000 {
		return nil, domain.Invalid("text", "is longer than 10000 characters")
	}
	if author = strings.TrimSpace(author); author == "" {
		return nil, domain.Invalid("author", "is required")
	}
	return []domain.Event{&NoteAdded{ContactID: c.ID, NoteID: noteID, Text: text, Author: author}}, nil
}
