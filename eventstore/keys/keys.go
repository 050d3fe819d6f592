// Package keys is the key store of personal data: one AES-256 key per data subject, kept apart
// from the event log (a SQLite file of its own, or a PostgreSQL schema of its own), so that
// destroying a key erases what was sealed with it while the log and its hashes stay as they
// are (crypto-shredding; see eventstore/codec).
package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the size of a subject's key in bytes: AES-256.
const KeySize = 32

// Errors of a key store.
var (
	// ErrDestroyed: the subject's key was destroyed; what it sealed can no longer be read.
	ErrDestroyed = errors.New("key destroyed")
	// ErrNoKey: no key was ever made for the subject.
	ErrNoKey = errors.New("no key")
)

// Keys holds the data subjects' keys. A KMS can implement it. Implementations are safe for
// concurrent use; returned keys belong to the caller.
type Keys interface {
	// Key returns subject's key, making and durably storing one first when the subject has
	// none. It returns ErrDestroyed for a subject whose key was destroyed: nothing new is
	// sealed for an erased person.
	Key(ctx context.Context, subject string) ([]byte, error)
	// Lookup returns subject's key, ErrDestroyed when it was destroyed or ErrNoKey when the
	// subject never had one.
	Lookup(ctx context.Context, subject string) ([]byte, error)
	// Destroy destroys subject's key for good (the store keeps that it was destroyed and
	// when). Destroying a destroyed key, or one never made, is not an error.
	Destroy(ctx context.Context, subject string) error
	// Close releases the store.
	Close() error
}

// newKey returns a fresh random key.
func newKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	return k, nil
}
