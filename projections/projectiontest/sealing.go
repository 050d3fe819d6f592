package projectiontest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
)

// SealingCodec is a codec that seals personal data as `crm serve` does, with its keys in
// keys.db of dir (a temporary directory of t when dir is ""): codecs of one dir share their
// keys. The key store closes when t ends.
func SealingCodec(t testing.TB, dir string) *codec.Codec {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	k, err := keys.OpenSQLite(context.Background(), filepath.Join(dir, "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	c, err := codec.New(codec.Config{Keys: k, Personal: catalog.Personal(), SubjectMember: catalog.SubjectMember})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
