package commands_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
)

// askedKeys counts how the codec asks the key store for keys to seal with.
type askedKeys struct {
	keys.NewSubjectKeys
	key, newSubject atomic.Int64
}

func (k *askedKeys) Key(ctx context.Context, subject string) (keys.Key, error) {
	k.key.Add(1)
	return k.NewSubjectKeys.Key(ctx, subject)
}

func (k *askedKeys) KeyOfNewSubject(ctx context.Context, subject string) (keys.Key, error) {
	k.newSubject.Add(1)
	return k.NewSubjectKeys.KeyOfNewSubject(ctx, subject)
}

// A contact created without an idempotency key has an id drawn at random: its key is taken
// without asking the key store what the contact has (KeyOfNewSubject). One created with an
// idempotency key, whose id may come again, is asked for (Key). Either way the contact reads
// back with its name.
func TestCreateContactTakesANewSubjectsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := keys.OpenSQLite(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	asked := &askedKeys{NewSubjectKeys: store}
	c, err := codec.New(codec.Config{Keys: asked, Personal: catalog.Personal(), SubjectMember: catalog.SubjectMember})
	if err != nil {
		t.Fatal(err)
	}
	h := commands.NewHandler(codec.NewStore(openStore(t, filepath.Join(dir, "crm.db")), c))

	for _, tt := range []struct {
		name             string
		meta             commands.Meta
		wantKey, wantNew int64
	}{
		{"no idempotency key", commands.Meta{Actor: "alice"}, 0, 1},
		{"an idempotency key", commands.Meta{Actor: "alice", IdempotencyKey: "row-7"}, 1, 1},
	} {
		res, err := h.CreateContact(ctx, tt.meta, commands.CreateContact{Name: "Yui Sato", Email: "yui@example.com", Channel: "web_form"})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if k, n := asked.key.Load(), asked.newSubject.Load(); k != tt.wantKey || n != tt.wantNew {
			t.Errorf("%s: Key %d, KeyOfNewSubject %d times in all; want %d, %d", tt.name, k, n, tt.wantKey, tt.wantNew)
		}
		got, err := h.Contact(ctx, res.ID, commands.At{})
		if err != nil || got.Name != "Yui Sato" {
			t.Errorf("%s: contact read back: %+v, %v", tt.name, got, err)
		}
	}
}
