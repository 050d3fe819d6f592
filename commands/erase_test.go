package commands_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
)

// newSealingHandler is a handler over the store at path through a codec with a key store in dir.
func newSealingHandler(t *testing.T, path, dir string) *commands.Handler {
	t.Helper()
	return newSealing(t, path, dir).handler()
}

func TestEraseContact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "crm.db")
	// A contact written before sealing existed: its name is in the log in clear.
	legacy := commands.NewHandler(openStore(t, path))
	before := mustCreate(t, legacy)
	h := newSealingHandler(t, path, dir)
	sealed := mustCreate(t, h)

	tests := []struct {
		name, id, reason string
		metaReason       string // X-Reason: the event's metadata reason, kept in clear too
		wantCode         domain.Code
		wantMessage      string
	}{
		{"a contact recorded in clear is refused, saying why", before.ID, "request 12", "", domain.CodeRefused, "recorded before personal data was sealed"},
		{"a reason is required", sealed.ID, "", "", domain.CodeInvalid, "reason"},
		{"a reason naming the person is refused", sealed.ID, "Yui Sato asked", "", domain.CodeInvalid, "names the person"},
		{"a metadata reason naming the person is refused", sealed.ID, "request 12", "asked by yui@example.com", domain.CodeInvalid, "names the person"},
		{"an unknown contact is not found", "00000000-0000-0000-0000-000000000000", "request 12", "", domain.CodeNotFound, ""},
		{"a sealed contact is erased", sealed.ID, "request 12", "ticket 7", "", ""},
		{"erasing twice is a conflict", sealed.ID, "request 12", "", domain.CodeConflict, "erased already"},
	}
	for _, tt := range tests { // in order: the erasure is a fact for the rows after it
		_, err := h.EraseContact(ctx, commands.Meta{Actor: "admin", Reason: tt.metaReason}, commands.EraseContact{ContactID: tt.id, Reason: tt.reason})
		if domain.ErrorCode(err) != tt.wantCode || (err != nil && !strings.Contains(err.Error(), tt.wantMessage)) {
			t.Errorf("%s: %v, want code %q %q", tt.name, err, tt.wantCode, tt.wantMessage)
		}
	}
	c, err := h.Contact(ctx, sealed.ID, commands.At{})
	if err != nil || !c.Erased || c.Name != "" || c.Email != "" {
		t.Fatalf("erased contact: %+v, %v", c, err)
	}
	// Another process (a fresh handler and codec) reads the erased key from the key store.
	c, err = newSealingHandler(t, path, dir).Contact(ctx, sealed.ID, commands.At{})
	if err != nil || c.Name != "" || c.Email != "" || !c.Erased {
		t.Fatalf("erased contact read afresh: %+v, %v", c, err)
	}
	if _, err := h.AddNote(ctx, commands.Meta{Actor: "a"}, commands.AddNote{ContactID: sealed.ID, Text: "hi"}); domain.ErrorCode(err) != domain.CodeRefused {
		t.Errorf("a command on an erased contact: %v", err)
	}
	if c, err := h.Contact(ctx, before.ID, commands.At{}); err != nil || c.Name != "Yui Sato" {
		t.Errorf("the legacy contact: %+v, %v", c, err)
	}
}
