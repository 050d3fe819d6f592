package httpapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/eventstore"
)

// pathID is the id of the contact or deal the path names.
func pathID(r *http.Request) string { return mux.Vars(r)["id"] }

// queryFunc answers a read: the value to encode and its version for the ETag (0 for none).
type queryFunc func(r *http.Request) (any, int64, error)

func (s *Server) query(h queryFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, version, err := h(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if version > 0 {
			w.Header().Set("ETag", etag(version))
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// pointInTime parses ?as_of=RFC3339 and ?version=N.
func pointInTime(r *http.Request) (commands.At, error) {
	var at commands.At
	q := r.URL.Query()
	if v := q.Get("as_of"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return at, badField("as_of", "as_of %q is not an RFC 3339 time", v)
		}
		at.AsOf = t
	}
	if v := q.Get("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return at, badField("version", "version %q is not a positive integer", v)
		}
		at.Version = n
	}
	return at, nil
}

func (s *Server) getContact(r *http.Request) (any, int64, error) {
	at, err := pointInTime(r)
	if err != nil {
		return nil, 0, err
	}
	c, err := s.cmds.Contact(r.Context(), pathID(r), at)
	if err != nil {
		return nil, 0, err
	}
	return c, c.Version, nil
}

func (s *Server) getDeal(r *http.Request) (any, int64, error) {
	at, err := pointInTime(r)
	if err != nil {
		return nil, 0, err
	}
	d, err := s.cmds.Deal(r.Context(), pathID(r), at)
	if err != nil {
		return nil, 0, err
	}
	return d, d.Version, nil
}

func (s *Server) getAccount(r *http.Request) (any, int64, error) {
	at, err := pointInTime(r)
	if err != nil {
		return nil, 0, err
	}
	a, err := s.cmds.Account(r.Context(), pathID(r), at)
	if err != nil {
		return nil, 0, err
	}
	return a, a.Version, nil
}

func (s *Server) contactHistory(r *http.Request) (any, int64, error) {
	return s.history(r.Context(), contact.StreamName(pathID(r)))
}

func (s *Server) dealHistory(r *http.Request) (any, int64, error) {
	return s.history(r.Context(), deal.StreamName(pathID(r)))
}

// HistoryEvent is one event as an auditor sees it.
type HistoryEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"` // as stored and hashed
	// ReadAs is the type the event is read as when an upcaster turned it into a newer
	// version; data is then that version's.
	ReadAs        string          `json:"read_as,omitempty"`
	Version       int64           `json:"version"`
	Position      int64           `json:"position"`
	OccurredAt    time.Time       `json:"occurred_at"`
	RecordedAt    time.Time       `json:"recorded_at"`
	Actor         string          `json:"actor"`
	CommandID     string          `json:"command_id"`
	CorrelationID string          `json:"correlation_id"`
	CausationID   string          `json:"causation_id"`
	Reason        string          `json:"reason,omitempty"`
	RequestHash   string          `json:"request_hash,omitempty"`
	Headers       string          `json:"headers,omitempty"`
	Data          json.RawMessage `json:"data"`
	// DataB64 and MetadataB64 are the bytes exactly as stored and hashed (base64 with
	// padding): a verifier recomputes the chain hash from them, not from the decoded view
	// above, whose re-encoding need not give the same bytes back.
	DataB64     []byte `json:"data_b64"`
	MetadataB64 []byte `json:"metadata_b64"`
	PrevHash    string `json:"prev_hash"`
	Hash        string `json:"hash"`
}

// History is a stream's whole history and whether its hash chain verifies.
type History struct {
	Stream  string         `json:"stream"`
	Events  []HistoryEvent `json:"events"`
	Intact  bool           `json:"intact"`
	Problem string         `json:"problem,omitempty"`
}

func (s *Server) history(ctx context.Context, stream string) (any, int64, error) {
	events, err := s.cmds.History(ctx, stream)
	if err != nil {
		return nil, 0, err
	}
	h := History{Stream: stream, Events: make([]HistoryEvent, len(events)), Intact: true}
	verifier := eventstore.NewChainVerifier()
	for i, e := range events {
		h.Events[i] = toHistoryEvent(e)
		if err := verifier.Check(e); err != nil && h.Intact {
			h.Intact, h.Problem = false, err.Error()
		}
	}
	// Auditor reads are facts worth keeping in the server log.
	s.log.Info("history read", zap.String("stream", stream), zap.String("actor", principal(ctx).Name),
		zap.Int("events", len(events)), zap.Bool("intact", h.Intact), zap.String("request_id", requestID(ctx)))
	return h, events[len(events)-1].Version, nil
}

func toHistoryEvent(e eventstore.Event) HistoryEvent {
	typ, stored := e.Stored() // what is hashed; Data is the reading (opened, upcast)
	readAs := ""
	if typ != e.Type {
		readAs = e.Type
	}
	return HistoryEvent{
		ID: e.ID, Type: typ, ReadAs: readAs, Version: e.Version, Position: e.Position, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt,
		Actor: e.Metadata.Actor, CommandID: e.Metadata.CommandID, CorrelationID: e.Metadata.CorrelationID,
		CausationID: e.Metadata.CausationID, Reason: e.Metadata.Reason, RequestHash: e.Metadata.RequestHash,
		Headers: e.Metadata.Headers, Data: json.RawMessage(e.Data), DataB64: orEmpty(stored), MetadataB64: orEmpty(e.MetadataJSON),
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}

// orEmpty is b, or no bytes rather than nil, which JSON would show as null.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
