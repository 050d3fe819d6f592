// Package commands turns requests into events: each command loads its stream, lets the domain
// decide, and appends the decided events with the version it loaded as expected version.
//
// Idempotency: a command carrying an idempotency key gets a command id, aggregate ids and event
// ids derived from that key, so a retry finds its first event by id in the log and returns the
// original result without deciding again (also after a restart: the log is the record). The
// same key with a different request (another body, or another business time, reason,
// correlation or causation id given with it) is ErrIdempotencyConflict, but after the erasure
// of the person whose data it held: nothing can compare it then, and it replays (see
// RequestKeys).
package commands

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/keys"
)

// Errors of the command layer. Domain refusals are *domain.Error values.
var (
	// ErrPreconditionFailed: the client's expected version (If-Match) is not the current one.
	ErrPreconditionFailed = errors.New("precondition failed: the stream has a newer version")
	// ErrIdempotencyConflict: the idempotency key was used before for a different request.
	ErrIdempotencyConflict = errors.New("idempotency key reused for a different request")
	// ErrContention: concurrent writers kept changing the stream; the command was not applied.
	ErrContention = errors.New("too much contention on the stream, try again")
)

// Meta is what a command carries besides its body: who, why, when, and how to deduplicate it.
type Meta struct {
	Actor         string
	CorrelationID string
	CausationID   string
	Reason        string
	// IdempotencyKey, when set, makes the command idempotent per actor (per KeyScope when set).
	IdempotencyKey string
	// KeyScope, when set, scopes IdempotencyKey instead of the actor: commands sent by
	// different actors under one scope and key are one command (an import run again by
	// another user appends nothing).
	KeyScope string
	// OccurredAt is business time; zero means now.
	OccurredAt time.Time
	// ExpectedVersion, when not nil, is the stream version the client last saw (If-Match).
	ExpectedVersion *int64
}

// Result tells where a command's events landed.
type Result struct {
	// ID is the id of the aggregate (contact or deal) the command changed or created.
	ID string `json:"id"`
	// Version is the aggregate's stream version after the command: the new ETag.
	Version int64 `json:"version"`
	// Position is the global position of the command's last event, to wait for read models.
	Position int64 `json:"position"`
	// EntityID is the id of an entity the command created inside the aggregate (a task, a
	// touchpoint, a purchase, a survey), empty otherwise.
	EntityID string `json:"-"`
	// Replayed is true when an idempotent retry returned the original result.
	Replayed bool `json:"-"`
}

// Handler executes commands against an event store. It is safe for concurrent use.
type Handler struct {
	store    eventstore.Store
	registry *domain.Registry
	now      func() time.Time
	retries  int
	cache    *streamCache
	shredder Shredder
	keys     RequestKeys
}

// Option configures a Handler.
type Option func(*Handler)

// WithClock sets the clock used for "now" (default time.Now).
func WithClock(now func() time.Time) Option { return func(h *Handler) { h.now = now } }

// WithCacheSize sets how many streams the handler keeps decoded in memory (default 10,000;
// 0 disables the cache, so every command reads its stream).
func WithCacheSize(streams int) Option {
	return func(h *Handler) { h.cache = newStreamCache(streams) }
}

// NewHandler returns a handler writing to store.
func NewHandler(store eventstore.Store, opts ...Option) *Handler {
	h := &Handler{store: store, registry: catalog.Registry(), now: time.Now, retries: 20, cache: newStreamCache(10_000)}
	for _, o := range opts {
		o(h)
	}
	return h
}

// Registry is the event registry the handler decodes with.
func (h *Handler) Registry() *domain.Registry { return h.registry }

// idNamespace scopes every id derived from an idempotency key.
var idNamespace = uuid.MustParse("6f1d8a52-3c1e-4f7a-9b0e-2d4c5e6f7a81")

// ids are the identifiers one command uses: all random, or all derived from its key. A command
// that appends to two streams uses a scope per stream after the first, so each append has
// event ids of its own under one command id.
type ids struct {
	command string
	scope   string
}

func newIDs(m Meta) ids {
	if m.IdempotencyKey == "" {
		return ids{command: uuid.NewString()}
	}
	return ids{command: uuid.NewSHA1(idNamespace, []byte(orDefault(m.KeyScope, m.Actor)+"\x00"+m.IdempotencyKey)).String()}
}

func (i ids) derive(name string) string {
	return uuid.NewSHA1(uuid.MustParse(i.command), []byte(name)).String()
}

func (i ids) aggregate() string  { return i.derive("aggregate") }
func (i ids) entity() string     { return i.derive("entity") }
func (i ids) event(n int) string { return i.derive(i.scope + "event/" + strconv.Itoa(n)) }

// scoped returns the ids of another append of the same command.
func (i ids) scoped(scope string) ids { return ids{command: i.command, scope: scope + "/"} }

// aggregate is what execute needs of a contact or a deal.
type aggregate interface {
	Apply(e domain.Event, occurredAt time.Time)
	Exists() bool
}

// plan describes one command for execute.
type plan[A aggregate] struct {
	name   string // the command's name, part of its fingerprint
	body   any    // the command, part of its fingerprint
	id     string // aggregate id
	stream string
	fresh  func() A
	decide func(A) ([]domain.Event, error)
	entity string // entity id to report, if any
	reason string // default metadata reason
	// subject, when set, names the data subject whose personal data the body holds: the
	// request hash is keyed by that subject's key (see RequestKeys).
	subject func(A) string
	// creates is true when the stream id was just made for this command, so the stream is
	// new unless this is a retry: the first attempt need not read it (NoStream guards it).
	creates bool
}

// execute runs load, decide, append with the loaded version as expected version, retrying on
// a concurrent change unless the client pinned a version.
func execute[A aggregate](ctx context.Context, h *Handler, m Meta, p plan[A], cmdIDs ids) (Result, error) {
	fp, err := newFingerprint(p.name, p.id, p.body, m)
	if err != nil {
		return Result{}, err
	}
	if m.IdempotencyKey != "" {
		if res, found, err := h.replay(ctx, cmdIDs, fp, p); found || err != nil {
			return res, err
		}
	}
	occurredAt := h.businessTime(m)
	reason := m.Reason
	if reason == "" {
		reason = p.reason
	}
	// The first attempt may decide on cached state. If that state is stale, the append's
	// version check refuses the events, or the decision is refused on old facts; either way
	// the next attempt reads the store, and only a decision on fresh state is final. A
	// client-pinned version is always checked against the store.
	trust := m.ExpectedVersion == nil
	for attempt := 0; ; attempt++ {
		var (
			history   []recorded
			fromCache bool
		)
		if p.creates && attempt == 0 {
			fromCache = true
		} else if history, fromCache, err = h.streamEvents(ctx, p.stream, trust); err != nil {
			return Result{}, err
		}
		trust = false
		state, version := fold(p.fresh(), history, nil)
		if m.ExpectedVersion != nil && *m.ExpectedVersion != version {
			return Result{}, fmt.Errorf("%s at version %d, client expected %d: %w", p.stream, version, *m.ExpectedVersion, ErrPreconditionFailed)
		}
		events, err := p.decide(state)
		if err != nil {
			if fromCache {
				continue
			}
			return Result{}, err
		}
		if !fp.hashed {
			if err := h.hash(ctx, &fp, p.subjectOf(state)); err != nil {
				return Result{}, err
			}
		}
		data := make([]eventstore.EventData, len(events))
		for i, e := range events {
			body, err := domain.Encode(e)
			if err != nil {
				return Result{}, err
			}
			data[i] = eventstore.EventData{
				ID: cmdIDs.event(i), Type: e.EventType(), Data: body, OccurredAt: occurredAt,
				Metadata: eventstore.Metadata{
					Actor: m.Actor, CommandID: cmdIDs.command, CorrelationID: orDefault(m.CorrelationID, cmdIDs.command),
					CausationID: orDefault(m.CausationID, cmdIDs.command), Reason: reason, RequestHash: fp.hash,
				},
			}
		}
		expected := version
		if version == 0 {
			expected = eventstore.NoStream
		}
		res, err := h.store.Append(ctx, p.stream, expected, data)
		switch {
		case err == nil:
			if res.Version == version+int64(len(events)) {
				for _, e := range events {
					history = append(slices.Clip(history), recorded{event: e, occurredAt: occurredAt})
				}
				h.cache.put(p.stream, history)
			}
			return Result{ID: p.id, Version: res.Version, Position: res.Position, EntityID: p.entity}, nil
		case errors.Is(err, eventstore.ErrWrongExpectedVersion), errors.Is(err, eventstore.ErrDuplicateEventID):
			h.cache.drop(p.stream)
			if m.IdempotencyKey != "" {
				// A concurrent request with the same key may have won the race.
				if res, found, rerr := h.replay(ctx, cmdIDs, fp, p); found || rerr != nil {
					return res, rerr
				}
			}
			if m.ExpectedVersion != nil {
				return Result{}, fmt.Errorf("%s: %w", p.stream, ErrPreconditionFailed)
			}
			if attempt >= h.retries {
				return Result{}, fmt.Errorf("%s after %d attempts: %w", p.stream, attempt+1, ErrContention)
			}
			// Spread the losers of a race so they do not meet again at the next version.
			if err := sleep(ctx, time.Duration(rand.Int64N(int64(min(attempt+1, 10))*int64(time.Millisecond)))); err != nil {
				return Result{}, err
			}
		default:
			return Result{}, fmt.Errorf("append %s: %w", p.stream, err)
		}
	}
}

// businessTime is the occurred-at of the command's events: the client's, or now, as stored.
func (h *Handler) businessTime(m Meta) time.Time {
	if m.OccurredAt.IsZero() {
		return eventstore.NormalizeTime(h.now())
	}
	return eventstore.NormalizeTime(m.OccurredAt)
}

// replay returns the original result of an idempotent command that was already recorded.
func (h *Handler) replay(ctx context.Context, cmdIDs ids, fp fingerprint, p planInfo) (Result, bool, error) {
	first, err := h.store.EventByID(ctx, cmdIDs.event(0))
	if errors.Is(err, eventstore.ErrEventNotFound) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, fmt.Errorf("look up idempotency key: %w", err)
	}
	if ok, err := h.matches(ctx, fp, first, p); err != nil || !ok {
		return Result{}, false, cmp.Or(err, ErrIdempotencyConflict)
	}
	events, err := h.store.ReadStream(ctx, first.Stream, first.Version, 1000)
	if err != nil {
		return Result{}, false, fmt.Errorf("read %s: %w", first.Stream, err)
	}
	last := first
	for _, e := range events {
		if e.Metadata.CommandID != first.Metadata.CommandID {
			break
		}
		last = e
	}
	return Result{ID: p.aggregateID(), Version: last.Version, Position: last.Position, EntityID: p.entityID(), Replayed: true}, true, nil
}

// planInfo is the non-generic part of a plan that replay needs.
type planInfo interface {
	aggregateID() string
	entityID() string
	streamName() string
	// personal is true when the body may hold a data subject's personal data (see
	// holdsPersonalData): its hash is keyed by the subject's key.
	personal() bool
	// mayHaveRecorded tells whether the command may have recorded an event of that type
	// first (see mayHaveRecorded).
	mayHaveRecorded(eventType string) bool
}

func (p plan[A]) aggregateID() string { return p.id }
func (p plan[A]) entityID() string    { return p.entity }
func (p plan[A]) streamName() string  { return p.stream }
func (p plan[A]) personal() bool      { return p.subject != nil }

func (p plan[A]) mayHaveRecorded(eventType string) bool { return mayHaveRecorded(p.name, eventType) }

// subjectOf is the data subject whose personal data the body holds, "" when it holds none.
func (p plan[A]) subjectOf(state A) string {
	if p.subject == nil {
		return ""
	}
	return p.subject(state)
}

// fingerprint tells whether a recorded command was the same request as this one.
type fingerprint struct {
	// request is what the hash recorded with the command's events is of: its name, target
	// and canonical JSON body, and the metadata the client gave that changes what is
	// recorded.
	request []byte
	// plain is the unkeyed hash of request, as recorded before hashes were keyed (and still
	// by a handler without RequestKeys).
	plain string
	// legacy is the unkeyed hash of the name, target and body alone, as recorded before the
	// given metadata was part of it; equal to plain when the client gave none.
	legacy string
	given  Meta
	// hash is what is recorded with the events, once hashed is true (see Handler.hash).
	hash   string
	hashed bool
}

func newFingerprint(name, target string, body any, m Meta) (fingerprint, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return fingerprint{}, fmt.Errorf("fingerprint %s: %w", name, err)
	}
	request := append([]byte(name+"\x00"+target+"\x00"), b...)
	fp := fingerprint{legacy: digest(request), given: m}
	fp.request = append(request, givenMeta(m)...)
	fp.plain = fp.legacy
	if len(fp.request) > len(request) {
		fp.plain = digest(fp.request)
	}
	return fp, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// RequestKeys keys the request hashes recorded with the events (codec.Codec does, with its
// key store), so that a hash confirms no guess of the request to whoever does not hold the
// key: a request whose body holds a person's data is hashed with a key of that person, which
// their erasure destroys; any other with a key of the server.
type RequestKeys interface {
	// RequestHash returns the keyed hash of request: with subject's key, or with the
	// server's when subject is "". keys.ErrDestroyed: subject was erased.
	RequestHash(ctx context.Context, subject string, request []byte) (string, error)
	// MatchRequestHash reports whether hash, recorded by RequestHash, is request's; keyed is
	// false for a hash RequestHash does not make. keys.ErrDestroyed: the hash was made with
	// the key of a subject erased since.
	MatchRequestHash(ctx context.Context, hash string, request []byte) (match, keyed bool, err error)
}

// WithRequestKeys keys the request hashes the handler records. Without it they are the
// unkeyed hashes of the requests: only for a store that seals no personal data.
func WithRequestKeys(k RequestKeys) Option { return func(h *Handler) { h.keys = k } }

// hash sets what fp records with the events: keyed by subject's key when the body holds the
// subject's personal data, by the server's otherwise. For a subject erased meanwhile nothing
// is recorded (the codec keeps none of their data either): nothing can confirm it.
func (h *Handler) hash(ctx context.Context, fp *fingerprint, subject string) error {
	fp.hashed = true
	if h.keys == nil {
		fp.hash = fp.plain
		return nil
	}
	hash, err := h.keys.RequestHash(ctx, subject, fp.request)
	switch {
	case errors.Is(err, keys.ErrDestroyed):
		fp.hash = ""
	case err != nil:
		return fmt.Errorf("request hash: %w", err)
	default:
		fp.hash = hash
	}
	return nil
}

// givenMeta encodes what the client set of the metadata that is recorded with the events.
// A field left to its default (a business time of now, the command's own ids, the default
// reason) is left out, so a retry that leaves it out again is the same request. The expected
// version is not part of it: it decides whether a command applies, not what it records, so a
// retry after the client re-read the stream gets the recorded answer. The leading NUL keeps
// it apart from the JSON body, which never holds one.
func givenMeta(m Meta) []byte {
	var b []byte
	field := func(name, v string) {
		if v != "" {
			b = fmt.Appendf(b, "\x00%s=%d:%s", name, len(v), v)
		}
	}
	if !m.OccurredAt.IsZero() {
		field("occurred_at", strconv.FormatInt(eventstore.NormalizeTime(m.OccurredAt).UnixMicro(), 10))
	}
	field("reason", m.Reason)
	field("correlation_id", m.CorrelationID)
	field("causation_id", m.CausationID)
	return b
}

// matches tells whether first, the first event of the command recorded under this key, was
// recorded for the same request as p with fingerprint fp. A keyed hash is checked with its
// key; when that key was destroyed (the person the request was about was erased), or no hash
// was recorded for that reason, nothing can tell the body recorded from another one, and a
// request that could have recorded it matches whatever its body: one whose body may hold
// personal data, on the stream first is in, of the command that records first's type (the
// answer confirms nothing about the person).
// Any other request under the key, about something else, is no retry of it. A hash recorded
// before hashes were keyed matches as it did: the unkeyed hash of the request, or of its body
// alone when what was recorded equals what this request gives.
func (h *Handler) matches(ctx context.Context, fp fingerprint, first eventstore.Event, p planInfo) (bool, error) {
	mayBeRetry := p.personal() && first.Stream == p.streamName() && p.mayHaveRecorded(first.Type)
	recorded := first.Metadata.RequestHash
	if h.keys != nil {
		match, keyed, err := h.keys.MatchRequestHash(ctx, recorded, fp.request)
		switch {
		case errors.Is(err, keys.ErrDestroyed):
			return mayBeRetry, nil
		case err != nil:
			return false, fmt.Errorf("compare with the request recorded under the idempotency key: %w", err)
		case keyed:
			return match, nil
		}
	}
	switch recorded {
	case fp.plain:
		return true, nil
	case fp.legacy:
		return recordedAsGiven(first, fp.given), nil
	case "":
		return h.keys != nil && mayBeRetry, nil
	default:
		return false, nil
	}
}

func recordedAsGiven(e eventstore.Event, m Meta) bool {
	md := e.Metadata
	return (m.OccurredAt.IsZero() || e.OccurredAt.Equal(eventstore.NormalizeTime(m.OccurredAt))) &&
		(m.Reason == "" || md.Reason == m.Reason) &&
		(m.CorrelationID == "" || md.CorrelationID == m.CorrelationID) &&
		(m.CausationID == "" || md.CausationID == m.CausationID)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
