package keys

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultPool is how many keys a store makes ahead of need in one batch.
const DefaultPool = 256

// Option configures a key store.
type Option func(*options)

type options struct {
	pool     int
	readOnly bool
}

// ReadOnly opens a key store for reading only (an auditor's command, a read-only copy or
// role): nothing is created nor migrated, no key is made, and a lost binding is not written
// again (Lookup still finds the key, which the box's additional data binds to its subject).
func ReadOnly() Option { return func(o *options) { o.readOnly, o.pool = true, 0 } }

// WithPool sets how many keys are made ahead of need in one batch (DefaultPool when not
// given). Zero makes no pool: a new subject's key is then written to the store, and flushed,
// before Key returns, on the path of the subject's first event.
func WithPool(n int) Option { return func(o *options) { o.pool = max(n, 0) } }

// database is the SQL of one kind of database beneath a Store. It keeps two tables:
// subject_keys, one row per subject named (a key stored under the subject's name, or only
// the mark that the subject's keys were destroyed), and pooled_keys, keys made ahead of need
// with an id, each bound to one subject when first used.
type database interface {
	// subjectKey returns the key stored under subject's name; ErrDestroyed when subject's
	// keys were destroyed; ErrNoKey when the subject has no row.
	subjectKey(ctx context.Context, subject string) ([]byte, error)
	// insertSubjectKey stores key under subject's name (the first one stored stays).
	insertSubjectKey(ctx context.Context, subject string, key []byte) error
	// currentKey returns, in one query, the key subject's new data is sealed with: the key
	// stored under subject's name (ID ""), or else the first pooled key bound to subject and
	// not destroyed; ErrDestroyed when subject's keys were destroyed; ErrNoKey when none.
	currentKey(ctx context.Context, subject string) (Key, error)
	// pooledKey returns the pooled key id: its subject ("" when unbound), its bytes (nil
	// when destroyed); ErrNoKey when there is no such key.
	pooledKey(ctx context.Context, id string) (subject string, key []byte, err error)
	// reserve stores keys as pooled keys reserved by owner, in one transaction, and returns
	// their ids.
	reserve(ctx context.Context, owner string, keys [][]byte) ([]string, error)
	// bind binds each unbound key to its subject, in one transaction; a key already bound
	// stays as it is.
	bind(ctx context.Context, bindings []binding) error
	// release deletes the keys ids of owner that are still unbound: keys never used.
	release(ctx context.Context, owner string, ids []string) error
	// destroy marks subject destroyed and destroys its keys: those bound to it, and those of
	// ids still unbound (claimed for it, binding not yet written), in one transaction; then
	// it makes sure no copy of the old rows is left where the database can avoid it.
	destroy(ctx context.Context, subject string, ids []string) error
	close() error
}

type binding struct{ id, subject string }

// Store is a key store over a database, with a pool of keys made ahead of need.
//
// A new subject's key is taken from the pool: keys made in batches, in the background,
// durable (flushed, in one transaction per batch) before any is handed out, and reserved by
// this store so no other store (another server on the same PostgreSQL) hands out the same.
// Handing one to a subject is a step in memory under a lock, so a key goes to one subject
// only; the binding is written afterwards, in batches. The box sealed with the key names
// its id, so a binding lost with a crash is found again: Lookup binds an unbound key to the
// subject a box names, and a subject destroyed meanwhile has the key destroyed then.
// A key of the pool never handed out sealed nothing: it is deleted at Close.
type Store struct {
	db       database
	pool     int
	readOnly bool
	owner    string // this store's reservations

	mu        sync.Mutex
	free      []Key             // reserved, not handed out
	claimed   map[string]Key    // subject -> key handed out, binding not yet written
	claimedBy map[string]string // key id -> subject, of claimed
	pending   []binding         // bindings to write
	refill    chan struct{}     // closed when the refill under way ends; nil when none
	refillErr error
	closed    bool

	wake chan struct{} // a binding is pending
	stop chan struct{}
	wg   sync.WaitGroup
}

func newStore(db database, o options) *Store {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	s := &Store{db: db, pool: o.pool, readOnly: o.readOnly, owner: hex.EncodeToString(b) + "@" + time.Now().UTC().Format(time.RFC3339),
		claimed: map[string]Key{}, claimedBy: map[string]string{},
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
	if s.pool > 0 {
		s.wg.Add(1)
		go s.writeBindings()
	}
	return s
}

// Key implements Keys.
func (s *Store) Key(ctx context.Context, subject string) (Key, error) {
	s.mu.Lock()
	k, ok := s.claimed[subject]
	s.mu.Unlock()
	if ok {
		return Key{ID: k.ID, Bytes: clone(k.Bytes)}, nil
	}
	// A new subject's first event waits for this one query (a round trip to PostgreSQL),
	// no more: it finds a key the subject has, or that it has none, or that it was erased.
	if k, err := s.db.currentKey(ctx, subject); !errors.Is(err, ErrNoKey) {
		return k, err
	}
	if s.readOnly {
		return Key{}, errors.New("key store opened read-only: no key is made")
	}
	if s.pool == 0 {
		return s.storeSubjectKey(ctx, subject)
	}
	return s.claim(ctx, subject)
}

// KeyOfNewSubject implements NewSubjectKeys: it hands subject a key of the pool without a
// query (Key asks the database first whether the subject has a key or was erased: a round
// trip, to PostgreSQL, on the path of a new contact's first event). A store without a pool,
// or read-only, does what Key does.
func (s *Store) KeyOfNewSubject(ctx context.Context, subject string) (Key, error) {
	if s.pool == 0 || s.readOnly {
		return s.Key(ctx, subject)
	}
	return s.claim(ctx, subject)
}

// Secret implements Keys.
func (s *Store) Secret(ctx context.Context, subject string) ([]byte, error) {
	key, err := s.db.subjectKey(ctx, subject)
	if !errors.Is(err, ErrNoKey) {
		return key, err
	}
	if s.readOnly {
		return nil, errors.New("key store opened read-only: no key is made")
	}
	k, err := s.storeSubjectKey(ctx, subject)
	return k.Bytes, err
}

// storeSubjectKey makes subject a key stored under its name, flushed before it returns.
func (s *Store) storeSubjectKey(ctx context.Context, subject string) (Key, error) {
	fresh, err := newKey()
	if err != nil {
		return Key{}, err
	}
	// Another caller may have made one meanwhile: the first is kept, and read back.
	if err := s.db.insertSubjectKey(ctx, subject, fresh); err != nil {
		return Key{}, fmt.Errorf("store key of %s: %w", subject, err)
	}
	key, err := s.db.subjectKey(ctx, subject)
	return Key{Bytes: key}, err
}

// claim hands subject a key of the pool, waiting for a refill when the pool is empty.
func (s *Store) claim(ctx context.Context, subject string) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.free) == 0 {
		if s.closed {
			return Key{}, errors.New("key store closed")
		}
		if s.refillErr != nil {
			err := s.refillErr
			s.refillErr = nil // the next caller tries again
			return Key{}, fmt.Errorf("key of %s: make keys: %w", subject, err)
		}
		done := s.startRefill()
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			s.mu.Lock()
			return Key{}, ctx.Err()
		}
		s.mu.Lock()
	}
	if k, ok := s.claimed[subject]; ok { // claimed by a concurrent caller meanwhile
		return Key{ID: k.ID, Bytes: clone(k.Bytes)}, nil
	}
	k := s.free[0]
	s.free = s.free[1:]
	s.claimed[subject], s.claimedBy[k.ID] = k, subject
	s.pending = append(s.pending, binding{id: k.ID, subject: subject})
	if len(s.free) < s.pool*3/4 { // early, so that a slow refill rarely makes a claim wait
		s.startRefill()
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return Key{ID: k.ID, Bytes: clone(k.Bytes)}, nil
}

// startRefill starts making a batch of keys unless a refill is under way; it returns the
// channel closed when the refill ends. It is called with s.mu held.
func (s *Store) startRefill() chan struct{} {
	if s.refill != nil {
		return s.refill
	}
	done := make(chan struct{})
	s.refill = done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		made, err := s.makeBatch()
		s.mu.Lock()
		s.free = append(s.free, made...)
		s.refillErr = err
		s.refill = nil
		s.mu.Unlock()
		close(done)
	}()
	return done
}

// makeBatch makes s.pool keys, durable and reserved by this store.
func (s *Store) makeBatch() ([]Key, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fresh := make([][]byte, s.pool)
	for i := range fresh {
		k, err := newKey()
		if err != nil {
			return nil, err
		}
		fresh[i] = k
	}
	ids, err := s.db.reserve(ctx, s.owner, fresh)
	if err != nil {
		return nil, err
	}
	out := make([]Key, len(ids))
	for i, id := range ids {
		out[i] = Key{ID: id, Bytes: fresh[i]}
	}
	return out, nil
}

// bindEvery is how long bindings are gathered before they are written in one transaction: a
// binding is not needed before the event (the box names its key), so its flush to disk is
// shared by as many as possible and competes little with the log's.
const bindEvery = 200 * time.Millisecond

// writeBindings writes the pending bindings, gathered for bindEvery, in one transaction,
// until Close; a failed write is tried again at the next round.
func (s *Store) writeBindings() {
	defer s.wg.Done()
	for {
		stopping := false
		select {
		case <-s.wake:
			select {
			case <-time.After(bindEvery):
			case <-s.stop:
				stopping = true
			}
		case <-time.After(time.Second):
		case <-s.stop:
			stopping = true
		}
		if err := s.flushBindings(context.Background()); err != nil && stopping {
			return // Close reports it
		}
		if stopping {
			return
		}
	}
}

// flushBindings writes the bindings pending now.
func (s *Store) flushBindings(ctx context.Context) error {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.db.bind(ctx, batch)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.pending = append(batch, s.pending...)
		return fmt.Errorf("bind keys: %w", err)
	}
	for _, b := range batch {
		if s.claimed[b.subject].ID == b.id {
			delete(s.claimed, b.subject)
		}
		delete(s.claimedBy, b.id)
	}
	return nil
}

// Lookup implements Keys.
func (s *Store) Lookup(ctx context.Context, subject, id string) ([]byte, error) {
	if id == "" {
		return s.db.subjectKey(ctx, subject)
	}
	s.mu.Lock()
	owner, mine := s.claimedBy[id]
	k := s.claimed[owner]
	s.mu.Unlock()
	if mine {
		if owner != subject || k.ID != id {
			return nil, ErrNotSubjects
		}
		return clone(k.Bytes), nil
	}
	bound, key, err := s.db.pooledKey(ctx, id)
	switch {
	case err != nil:
		return nil, err
	case bound == "":
		return s.bindFound(ctx, subject, id)
	case bound != subject:
		return nil, ErrNotSubjects
	case key == nil:
		return nil, ErrDestroyed
	}
	return key, nil
}

// bindFound binds the unbound key id that a box of subject names: its binding was not
// written (the store that handed it out stopped first). When subject's keys were destroyed
// meanwhile, so is this one.
func (s *Store) bindFound(ctx context.Context, subject, id string) ([]byte, error) {
	if _, err := s.db.subjectKey(ctx, subject); errors.Is(err, ErrDestroyed) {
		if err := s.db.destroy(ctx, subject, []string{id}); err != nil {
			return nil, fmt.Errorf("destroy key %s of erased %s: %w", id, subject, err)
		}
		return nil, ErrDestroyed
	}
	if s.readOnly {
		_, key, err := s.db.pooledKey(ctx, id)
		return key, err
	}
	if err := s.db.bind(ctx, []binding{{id: id, subject: subject}}); err != nil {
		return nil, fmt.Errorf("bind key %s to %s: %w", id, subject, err)
	}
	bound, key, err := s.db.pooledKey(ctx, id)
	switch {
	case err != nil:
		return nil, err
	case bound != subject:
		return nil, ErrNotSubjects
	case key == nil:
		return nil, ErrDestroyed
	}
	return key, nil
}

// Destroy implements Keys.
func (s *Store) Destroy(ctx context.Context, subject string) error {
	s.mu.Lock()
	var ids []string
	if k, ok := s.claimed[subject]; ok {
		ids = append(ids, k.ID)
		delete(s.claimed, subject) // from now on Key and Lookup find the mark of destruction
		delete(s.claimedBy, k.ID)
	}
	s.mu.Unlock()
	if err := s.db.destroy(ctx, subject, ids); err != nil {
		return fmt.Errorf("destroy keys of %s: %w", subject, err)
	}
	return nil
}

// Close implements Keys: the pending bindings are written and the keys of the pool never
// handed out are deleted.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if err := s.flushBindings(ctx); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	ids := make([]string, len(s.free))
	for i, k := range s.free {
		ids[i] = k.ID
	}
	s.free = nil
	s.mu.Unlock()
	if len(ids) > 0 {
		if err := s.db.release(ctx, s.owner, ids); err != nil {
			errs = append(errs, fmt.Errorf("delete unused keys: %w", err))
		}
	}
	return errors.Join(append(errs, s.db.close())...)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func optionsOf(opts []Option) options {
	o := options{pool: DefaultPool}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
