// Package keys is the key store of personal data: AES-256 keys of data subjects, kept apart
// from the event log (a SQLite file of its own, or a PostgreSQL schema of its own), so that
// destroying a subject's keys erases what was sealed with them while the log and its hashes
// stay as they are (crypto-shredding; see eventstore/codec).
package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
)

// KeySize is the size of a subject's key in bytes: AES-256.
const KeySize = 32

// Errors of a key store.
var (
	// ErrDestroyed: the subject's key was destroyed; what it sealed can no longer be read.
	ErrDestroyed = errors.New("key destroyed")
	// ErrNoKey: no such key was ever made for the subject.
	ErrNoKey = errors.New("no key")
	// ErrNotSubjects: the key named belongs to another subject (a sealed box was altered).
	ErrNotSubjects = errors.New("key of another subject")
)

// Key is a subject's key and its id in the store. ID is empty for a key stored under its
// subject's name alone (a key made before key pools, or by a store without a pool): such a
// key is found by its subject.
type Key struct {
	ID    string
	Bytes []byte
}

// Keys holds the data subjects' keys. A KMS can implement it. Implementations are safe for
// concurrent use; returned keys belong to the caller.
type Keys interface {
	// Key returns the key to seal subject's new data with, giving the subject one first when
	// it has none. The key is durable before Key returns. It returns ErrDestroyed for a
	// subject whose keys were destroyed: nothing new is sealed for an erased person.
	Key(ctx context.Context, subject string) (Key, error)
	// Lookup returns subject's key of id ("" for the key stored under the subject's name).
	// It returns ErrDestroyed when the subject's keys were destroyed, ErrNoKey when there is
	// no such key, and ErrNotSubjects when the key is another subject's.
	Lookup(ctx context.Context, subject, id string) ([]byte, error)
	// Secret returns the key stored under subject's name, making it first when there is
	// none: durable before Secret returns, and found again by Lookup(subject, ""). It is for
	// a key known by its subject's name alone (a webhook's signing secret), never named by a
	// sealed box. It returns ErrDestroyed for a subject whose keys were destroyed.
	Secret(ctx context.Context, subject string) ([]byte, error)
	// Destroy destroys every key of subject for good (the store keeps that they were
	// destroyed and when), and no other. Destroying a destroyed subject's keys, or those of
	// a subject that never had one, is not an error.
	Destroy(ctx context.Context, subject string) error
	// Close releases the store.
	Close() error
}

// NewSubjectKeys is Keys that can give a key to a new subject without looking up what the
// subject has: KeyOfNewSubject is Key for a subject whose name was just drawn at random (a
// new contact's id), so that no key, binding or destruction can name it yet. It is only for
// such a name: given any other, it may give a subject a second key (which Destroy destroys
// with the first) or, for an erased subject, a key its erasure did not cover.
type NewSubjectKeys interface {
	Keys
	KeyOfNewSubject(ctx context.Context, subject string) (Key, error)
}

// newKey returns a fresh random key.
func newKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("random key: %w", err)
	}
	return k, nil
}

// keyRow is a row of a currentKey query: a key stored under the subject's name (id not valid,
// destroyed when its keys were destroyed), or a pooled key bound to it (id valid).
type keyRow struct {
	key       []byte
	destroyed bool
	id        int64
	pooled    bool
}

// currentOf is currentKey's answer from its rows: the mark of destruction or the key stored
// under the subject's name comes first, then a pooled key.
func currentOf(rows []keyRow) (Key, error) {
	for _, r := range rows {
		if r.pooled {
			continue
		}
		if r.destroyed {
			return Key{}, ErrDestroyed
		}
		return Key{Bytes: r.key}, nil
	}
	if len(rows) == 0 {
		return Key{}, ErrNoKey
	}
	return Key{ID: strconv.FormatInt(rows[0].id, 10), Bytes: rows[0].key}, nil
}
