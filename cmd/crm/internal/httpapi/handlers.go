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

// answer says how a successful command is presented.
type answer struct {
	created   bool   // 201 with Location
	location  string // path of the created resource
	entityKey string // JSON name of Result.EntityID, when the command creates an entity
}

// commandFunc decodes a request into a command and runs it.
type commandFunc func(r *http.Request, m *commands.Meta) (commands.Result, answer, error)

// command turns a commandFunc into a handler: metadata from the principal and headers, the
// result as {"id","version","position"} with the new version as ETag.
func (s *Server) command(h commandFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		expected, err := ifMatch(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := checkMetadataHeaderSizes(r.Header); err != nil {
			s.writeError(w, r, err)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if len(key) > 255 {
			s.writeError(w, r, badRequest("Idempotency-Key is longer than 255 characters"))
			return
		}
		m := commands.Meta{
			Actor:           principal(r.Context()).Name,
			CorrelationID:   r.Header.Get("X-Correlation-ID"),
			CausationID:     r.Header.Get("X-Causation-ID"),
			Reason:          r.Header.Get("X-Reason"),
			IdempotencyKey:  key,
			ExpectedVersion: expected,
		}
		res, ans, err := h(r, &m)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		body := map[string]any{"id": res.ID, "version": res.Version, "position": res.Position}
		if ans.entityKey != "" {
			body[ans.entityKey] = res.EntityID
		}
		w.Header().Set("ETag", etag(res.Version))
		if res.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		status := http.StatusOK
		if ans.created {
			status = http.StatusCreated
			w.Header().Set("Location", ans.location+res.ID)
		}
		writeJSON(w, status, body)
	})
}

// decode reads the body into cmd and the optional occurred_at into m.
func decode(r *http.Request, m *commands.Meta, cmd any) error {
	at, err := decodeBody(r, cmd)
	if err != nil {
		return err
	}
	m.OccurredAt = at
	return nil
}

func pathID(r *http.Request) string { return mux.Vars(r)["id"] }

func (s *Server) createContact(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.CreateContact
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	res, err := s.cmds.CreateContact(r.Context(), *m, cmd)
	return res, answer{created: true, location: "/v1/contacts/"}, err
}

func (s *Server) updateContact(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	cmd := commands.UpdateContact{}
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.UpdateContact(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) changePhase(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.ChangePhase
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.ChangePhase(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) recordTouchpoint(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.RecordTouchpoint
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.RecordTouchpoint(r.Context(), *m, cmd)
	return res, answer{entityKey: "touchpoint_id"}, err
}

func (s *Server) recordPurchase(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.RecordPurchase
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.RecordPurchase(r.Context(), *m, cmd)
	return res, answer{entityKey: "purchase_id"}, err
}

func (s *Server) recordSurvey(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.RecordSurvey
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.RecordSurvey(r.Context(), *m, cmd)
	return res, answer{entityKey: "survey_id"}, err
}

func (s *Server) reportUsage(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.ReportUsage
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.ReportUsage(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) scheduleTask(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.ScheduleTask
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.ScheduleTask(r.Context(), *m, cmd)
	return res, answer{entityKey: "task_id"}, err
}

func (s *Server) completeTask(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var body struct{}
	if err := decode(r, m, &body); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd := commands.CompleteTask{ContactID: pathID(r), TaskID: mux.Vars(r)["taskId"]}
	res, err := s.cmds.CompleteTask(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) optOut(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.OptOut
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.ContactID = pathID(r)
	res, err := s.cmds.OptOut(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) openDeal(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.OpenDeal
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	res, err := s.cmds.OpenDeal(r.Context(), *m, cmd)
	return res, answer{created: true, location: "/v1/deals/"}, err
}

func (s *Server) changeDealStage(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.ChangeDealStage
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.DealID = pathID(r)
	res, err := s.cmds.ChangeDealStage(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) winDeal(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.WinDeal
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.DealID = pathID(r)
	res, err := s.cmds.WinDeal(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) loseDeal(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var cmd commands.LoseDeal
	if err := decode(r, m, &cmd); err != nil {
		return commands.Result{}, answer{}, err
	}
	cmd.DealID = pathID(r)
	res, err := s.cmds.LoseDeal(r.Context(), *m, cmd)
	return res, answer{}, err
}

func (s *Server) reopenDeal(r *http.Request, m *commands.Meta) (commands.Result, answer, error) {
	var body struct{}
	if err := decode(r, m, &body); err != nil {
		return commands.Result{}, answer{}, err
	}
	res, err := s.cmds.ReopenDeal(r.Context(), *m, commands.ReopenDeal{DealID: pathID(r)})
	return res, answer{}, err
}

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

func (s *Server) contactHistory(r *http.Request) (any, int64, error) {
	return s.history(r.Context(), contact.StreamName(pathID(r)))
}

func (s *Server) dealHistory(r *http.Request) (any, int64, error) {
	return s.history(r.Context(), deal.StreamName(pathID(r)))
}

// HistoryEvent is one event as an auditor sees it.
type HistoryEvent struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Version       int64     `json:"version"`
	Position      int64     `json:"position"`
	OccurredAt    time.Time `json:"occurred_at"`
	RecordedAt    time.Time `json:"recorded_at"`
	Actor         string    `json:"actor"`
	CommandID     string    `json:"command_id"`
	CorrelationID string    `json:"correlation_id"`
	CausationID   string    `json:"causation_id"`
	Reason        string    `json:"reason,omitempty"`
	// RequestHash and Headers complete the metadata, so that a verifier can recompute the
	// chain hash (eventstore.ChainHash) from this answer alone.
	RequestHash string          `json:"request_hash,omitempty"`
	Headers     string          `json:"headers,omitempty"`
	Data        json.RawMessage `json:"data"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
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
	return HistoryEvent{
		ID: e.ID, Type: e.Type, Version: e.Version, Position: e.Position, OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt,
		Actor: e.Metadata.Actor, CommandID: e.Metadata.CommandID, CorrelationID: e.Metadata.CorrelationID,
		CausationID: e.Metadata.CausationID, Reason: e.Metadata.Reason, RequestHash: e.Metadata.RequestHash,
		Headers: e.Metadata.Headers, Data: json.RawMessage(e.Data),
		PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash),
	}
}
