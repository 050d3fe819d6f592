package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/keys"
)

// KeysFile is the key store of a SQLite or EventStoreDB store, in the data directory.
const KeysFile = "keys.db"

// SealedStore is the event store read and written through the codec: personal data sealed on
// append and opened on read, events upcast. Verification reads Unwrap(), never this.
type SealedStore struct {
	*codec.Store
	keys keys.Keys
}

// Keys is the key store (also of the webhook signing secrets).
func (s *SealedStore) Keys() keys.Keys { return s.keys }

// Close closes the store and its key store.
func (s *SealedStore) Close() error { return errors.Join(s.Store.Close(), s.keys.Close()) }

// OpenSealedStore opens the configured event store and its key store (keys.db in the data
// directory, or the schema <store schema>_keys on PostgreSQL) behind the codec.
func OpenSealedStore(ctx context.Context, c Config) (*SealedStore, error) {
	t, err := ParseStore(c.Store, c.DataDir)
	if err != nil {
		return nil, err
	}
	k, err := OpenKeys(ctx, c, t)
	if err != nil {
		return nil, err
	}
	cdc, err := NewCodec(k)
	if err != nil {
		_ = k.Close()
		return nil, err
	}
	raw, err := OpenStore(ctx, c)
	if err != nil {
		_ = k.Close()
		return nil, err
	}
	return &SealedStore{Store: codec.NewStore(raw, cdc), keys: k}, nil
}

// NewCodec is the codec of the CRM's events over a key store.
func NewCodec(k keys.Keys) (*codec.Codec, error) {
	return codec.New(codec.Config{Keys: k, Personal: catalog.Personal(), SubjectMember: catalog.SubjectMember,
		Upcasters: upcasters()})
}

func upcasters() []codec.Upcaster {
	var out []codec.Upcaster
	for _, u := range catalog.Upcasters() {
		out = append(out, codec.Upcaster{From: u.From, To: u.To, Up: u.Up})
	}
	return out
}

// OpenKeys opens the key store that goes with the store target t.
func OpenKeys(ctx context.Context, c Config, t Target, opts ...keys.Option) (keys.Keys, error) {
	if t.Backend == BackendPostgres {
		schema := t.Schema
		if schema == "" {
			schema = "eventstore"
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return keys.OpenPostgres(ctx, t.URL, schema+"_keys", opts...)
	}
	dir := c.DataDir
	if t.Backend == BackendSQLite {
		dir = filepath.Dir(t.Path)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create directory of the key store: %w", err)
	}
	return keys.OpenSQLite(ctx, filepath.Join(dir, KeysFile), opts...)
}

// Unwrap returns the store beneath the codec: the stored bytes, for verification.
func Unwrap(s eventstore.Store) eventstore.Store {
	if u, ok := s.(interface{ Unwrap() eventstore.Store }); ok {
		return u.Unwrap()
	}
	return s
}
