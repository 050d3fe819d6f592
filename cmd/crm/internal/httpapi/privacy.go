package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/projections"
)

// Privacy is what the erasure and the export need.
type Privacy struct {
	// Raw is the store beneath the codec, and Codec the codec: the export reads the whole
	// log's stored rows and opens only those about the person.
	Raw   eventstore.Store
	Codec *codec.Codec
	// Purges records and runs the purges that follow erasures: the removal of what was
	// derived from the person's data while the key existed (read models, time-travel sets,
	// caches).
	Purges Purges
	// GapWait bounds the wait of an export at one gap in the log before its head, for an
	// append still committing (default DefaultGapWait); past it the export is refused, 503.
	GapWait time.Duration
}

// DefaultGapWait is the default Privacy.GapWait: an append commits within milliseconds, and a
// writer stuck mid-commit is answered well before the server's write timeout cuts the answer
// off.
const DefaultGapWait = 30 * time.Second

// Purges is the durable record of the purges that follow erasures, shared by every server of
// one read-model database.
type Purges interface {
	// Request records, durably, that the erasure of contactID at position is to be purged,
	// and has it run in the background. Requesting a purge already recorded changes nothing.
	Request(ctx context.Context, contactID string, position int64) error
	// State returns the state of contactID's purge; found is false when none was recorded.
	State(ctx context.Context, contactID string) (st ErasureState, found bool, err error)
}

// ErasureState is the answer of GET /v1/contacts/{id}/erase.
type ErasureState struct {
	ContactID string    `json:"contact_id"`
	Position  int64     `json:"position"`
	State     string    `json:"state"` // purging, done, failed
	Error     string    `json:"error,omitempty"`
	StartedAt time.Time `json:"started_at"`
	DoneAt    time.Time `json:"done_at,omitzero"`
}

// MountPrivacy adds GET /v1/contacts/{id}/erase and GET /v1/contacts/{id}/export; the erasure
// itself is a command route.
func (s *Server) MountPrivacy(p Privacy) {
	s.privacy = &p
	v1 := prefixed{s.router, "/v1"}
	v1.Handle("/contacts/{id}/erase", s.authorize(auth.PermErase, s.query(s.erasureState))).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/contacts/{id}/erase", RouteDoc{Tag: "privacy", Perm: auth.PermErase,
		Summary:  "The state of a contact's erasure: the purge of its personal data from every read model",
		Answer:   ErasureState{},
		Problems: []int{http.StatusNotFound}})
	v1.Handle("/contacts/{id}/export", s.authorize(auth.PermExport, s.query(s.export))).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/contacts/{id}/export", RouteDoc{Tag: "privacy", Perm: auth.PermExport,
		Summary:  "Everything stored about a person, personal data opened (right of access); recorded in the access log",
		Answer:   Export{},
		Problems: []int{http.StatusNotFound}})
}

// erased records the purge that follows the erasure res; it runs in the background (a
// rebuild of every read model takes as long as the log is long), here or on another server.
func (s *Server) erased(r *http.Request, res commands.Result) {
	if s.privacy == nil || s.privacy.Purges == nil {
		return
	}
	// A replayed erasure records its purge too, when the first attempt could not.
	if err := s.privacy.Purges.Request(r.Context(), res.ID, res.Position); err != nil {
		s.log.Error("erasure purge not recorded", zap.String("contact_id", res.ID), zap.Error(err))
	}
}

// DropKeptAnswers empties the kept read-model answers, which may hold erased personal data.
func (s *Server) DropKeptAnswers() { s.kept.clear() }

func (s *Server) erasureState(r *http.Request) (any, int64, error) {
	id := pathID(r)
	if s.privacy == nil || s.privacy.Purges == nil {
		return nil, 0, errors.New("erasure state: not configured")
	}
	st, found, err := s.privacy.Purges.State(r.Context(), id)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return nil, 0, domain.NotFound("no erasure of contact %s", id)
	}
	return st, 0, nil
}

// Export is everything stored about a person, personal data opened: the answer of
// GET /v1/contacts/{id}/export.
type Export struct {
	ContactID  string           `json:"contact_id"`
	ExportedAt time.Time        `json:"exported_at"`
	Erased     bool             `json:"erased"`
	Contact    *contact.Contact `json:"contact"`
	// Events are the contact's own events and those of its deals, in log order.
	Events []ExportEvent `json:"events"`
}

// ExportEvent is one event of an export.
type ExportEvent struct {
	Stream     string          `json:"stream"`
	Version    int64           `json:"version"`
	Position   int64           `json:"position"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	RecordedAt time.Time       `json:"recorded_at"`
	Actor      string          `json:"actor"`
	Reason     string          `json:"reason,omitempty"`
	Personal   string          `json:"personal"` // sealed (opened here), erased, or none
	Data       json.RawMessage `json:"data"`
}

const exportBatch = 10_000

// export reads the whole log once, up to at least its head when asked: the stored rows that
// name the contact (its id is in clear) are opened, and so are the events of the deals opened
// for it.
func (s *Server) export(r *http.Request) (any, int64, error) {
	ctx, id := r.Context(), pathID(r)
	if s.privacy == nil {
		return nil, 0, errors.New("export: not configured")
	}
	c, err := s.cmds.Contact(ctx, id, commands.At{})
	if err != nil {
		return nil, 0, err
	}
	if c.Erased {
		// Erased on another server, maybe a moment ago: the key this codec may still keep
		// from before must not open the person's data.
		s.privacy.Codec.Forget(id)
	}
	out := Export{ContactID: id, ExportedAt: time.Now().UTC(), Erased: c.Erased, Contact: c, Events: []ExportEvent{}}
	needle := []byte(id)
	deals := map[string]bool{}
	err = s.privacy.readLog(ctx, func(e eventstore.Event) error {
		if !deals[e.Stream] && e.Stream != contact.StreamName(id) && !bytes.Contains(e.Data, needle) {
			return nil
		}
		opened, reading, err := s.privacy.Codec.Read(ctx, e)
		if err != nil {
			return err
		}
		var about struct {
			ContactID string `json:"contact_id"`
			DealID    string `json:"deal_id"`
		}
		_ = json.Unmarshal(opened.Data, &about)
		if !deals[e.Stream] && e.Stream != contact.StreamName(id) && about.ContactID != id {
			return nil
		}
		if opened.Type == deal.TypeOpened {
			deals[e.Stream] = true
		}
		out.Events = append(out.Events, ExportEvent{Stream: e.Stream, Version: e.Version, Position: e.Position,
			Type: opened.Type, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, Actor: e.Metadata.Actor,
			Reason: e.Metadata.Reason, Personal: readingName(reading), Data: json.RawMessage(opened.Data)})
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("export of %s: %w", id, err)
	}
	return out, 0, nil
}

// readLog calls each with every event of the log, in order, up to at least the log's head
// when it begins. A reader of the log stops before a position whose append is still
// committing (on PostgreSQL), even when later events have committed: readLog waits there
// until the head is reached, at most GapWait at one gap.
func (p *Privacy) readLog(ctx context.Context, each func(eventstore.Event) error) error {
	var head int64 // a store that does not tell its head is read until a short read
	if h, ok := eventstore.HeadsOf(p.Raw); ok {
		var err error
		if head, err = h.LastPosition(ctx); err != nil {
			return err
		}
	}
	gapWait := p.GapWait
	if gapWait <= 0 {
		gapWait = DefaultGapWait
	}
	moved := time.Now()
	for after := int64(0); ; {
		batch, err := p.Raw.ReadAll(ctx, after, exportBatch)
		if err != nil {
			return fmt.Errorf("read the log after %d: %w", after, err)
		}
		for _, e := range batch {
			if err := each(e); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			after, moved = batch[len(batch)-1].Position, time.Now()
		}
		switch {
		case len(batch) == exportBatch:
			continue
		case after >= head:
			return nil
		case time.Since(moved) >= gapWait:
			return fmt.Errorf("the log is held at position %d, before its head %d, for %v by an append still committing: %w",
				after, head, gapWait, context.DeadlineExceeded)
		case len(batch) == 0:
			// The reader has waited at the gap already; ask again shortly.
			if err := projections.Sleep(ctx, 10*time.Millisecond); err != nil {
				return fmt.Errorf("read the log after %d: %w", after, err)
			}
		}
	}
}

func readingName(r codec.Reading) string {
	switch r {
	case codec.Opened:
		return "sealed"
	case codec.Erased:
		return "erased"
	}
	return "none"
}
