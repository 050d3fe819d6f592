package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/timetravel"
)

// DefaultReadWait is how long a read-model answer waits, at most, for a client's min_position.
const DefaultReadWait = 2 * time.Second

// ReadModels is what the read-model endpoints need.
type ReadModels struct {
	// Runner runs the projections; its read-model database answers the queries.
	Runner *runtime.Runner
	// MaxWait bounds the wait for min_position (default DefaultReadWait).
	MaxWait time.Duration
	// Rebuilds, when set, serves POST and GET /v1/projections/{name}/rebuild.
	Rebuilds *rebuild.Rebuilds
	// TimeTravel, when set, answers the read-model queries with at_position or known_at.
	TimeTravel *timetravel.TimeTravel
	// Queries are the HTTP routes of the read models; a query of a projection the runner
	// does not run is not mounted.
	Queries []Queries
	// AnswerCache is how many answers are kept for reuse while the tables they were read
	// from do not change (see answers): DefaultAnswerCacheSize when 0, none when negative.
	AnswerCache int
	// AnswerMaxStale is how old the reading of a kept answer of an earlier state may be for it
	// to be given while the next is read (see answers): DefaultAnswerMaxStale when 0, never
	// when negative.
	AnswerMaxStale time.Duration
}

// ReadAnswer is every read-model answer: the data and how current it is.
type ReadAnswer struct {
	Data      any               `json:"data"`
	Freshness runtime.Freshness `json:"freshness"`
}

// Headers of a read-model answer, repeating its freshness for clients that only look there.
const (
	HeaderPosition   = "X-Read-Model-Position"
	HeaderLagEvents  = "X-Read-Model-Lag-Events"
	HeaderLagSeconds = "X-Read-Model-Lag-Seconds"
	HeaderStale      = "X-Read-Model-Stale"
)

// readFunc answers a read-model query from a projection's tables.
type readFunc func(r *http.Request, rd read) (any, error)

// MountReadModels adds the projection endpoints (status, poison queue) and the queries of
// the read models the runner runs.
func (s *Server) MountReadModels(rm ReadModels) {
	if rm.MaxWait <= 0 {
		rm.MaxWait = DefaultReadWait
	}
	v1 := prefixed{s.router, "/v1"}
	s.ready.mu.Lock()
	s.ready.runner = rm.Runner
	s.ready.mu.Unlock()
	s.handle(http.MethodGet, "/v1/projections", s.authorize(auth.PermRead, s.query(func(r *http.Request) (any, int64, error) {
		st, feed, err := rm.Runner.Overview(r.Context())
		return ProjectionList{Projections: st, Feed: feed}, 0, err
	})), RouteDoc{Summary: "Every projection: checkpoint, head, lag, state, parked events", Perm: auth.PermRead, Answer: ProjectionList{}})
	s.handle(http.MethodGet, "/v1/projections/parked", s.authorize(auth.PermRead, s.query(func(r *http.Request) (any, int64, error) {
		return listParked(r, rm.Runner)
	})), RouteDoc{Summary: "The poison queue: events a projection refused", Perm: auth.PermRead, Answer: ParkedList{},
		Params: []Param{strParam("projection", "one projection's parked events"), intParamDoc("after_id", "the next_after_id of the previous page"),
			intParamDoc("limit", "page size, 1..1000 (default 100)")}})
	// Retrying applies events to a read model: the same right as rebuilding one.
	s.handle(http.MethodPost, "/v1/projections/parked/{parkedId}/retry", s.authorize(auth.PermRebuild, s.query(func(r *http.Request) (any, int64, error) {
		return retryParked(r, rm.Runner)
	})), RouteDoc{Summary: "Apply a parked event again, and those parked behind it", Perm: auth.PermRebuild,
		Answer: runtime.RetryResult{}, Problems: []int{http.StatusNotFound, http.StatusConflict}})

	if rm.Rebuilds != nil {
		s.mountRebuilds(rm.Rebuilds)
	}

	var kept *answers
	if rm.AnswerCache >= 0 {
		maxStale := rm.AnswerMaxStale
		if maxStale == 0 {
			maxStale = DefaultAnswerMaxStale
		}
		kept = newAnswers(rm.AnswerCache, maxStale)
	}
	s.kept = kept
	for _, qs := range rm.Queries {
		if _, err := rm.Runner.Tables(qs.Projection); err != nil {
			continue // not run here: the endpoints would never answer
		}
		for _, q := range qs.Routes {
			h := s.readModel(rm, kept, qs.Projection, badParams(q.read))
			export := csvExports[q.Path]
			if q.csv != nil {
				export = q.csv
			}
			v1.Handle(q.Path, s.authorize(auth.PermRead, s.orCSV(h, rm, qs.Projection, export))).Methods(http.MethodGet)
			doc := q.Doc
			doc.Perm, doc.readModel = auth.PermRead, true
			if doc.Tag == "" {
				doc.Tag = qs.Projection
			}
			if export != nil {
				doc.CSV = true
				doc.Params = append(append([]Param(nil), doc.Params...), Param{Name: "format", Description: "csv: every page as CSV (or Accept: text/csv)", Enum: []string{"json", "csv"}},
					boolParam("bom", "with format=csv: a UTF-8 byte order mark first, for Excel"))
			}
			s.describe(http.MethodGet, v1.prefix+q.Path, doc)
		}
	}
}

// badParams answers a parameter a read model refuses (a domain error with code invalid) as
// the bad query parameter it is: 400 naming it, not the 422 of a command's field.
func badParams(h readFunc) readFunc {
	return func(r *http.Request, rd read) (any, error) {
		data, err := h(r, rd)
		var de *domain.Error
		if errors.As(err, &de) && de.Code == domain.CodeInvalid {
			return nil, badField(de.Field, "%s", de.Error())
		}
		return data, err
	}
}

// readModel answers a query with its freshness. With ?min_position=N it first waits, up to
// the configured bound, for the projection to reach N; when it has not, the answer says
// stale: true (and the X-Read-Model-Stale header) rather than fail, so the client decides.
//
// Answers are kept in kept (when not nil) under the question and the state of the tables.
func (s *Server) readModel(rm ReadModels, kept *answers, projection string, h readFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if travel, ok, err := timeTravelParams(r); err != nil || ok {
			if err == nil {
				err = s.travel(w, r, rm, projection, h, travel)
			}
			if err != nil {
				s.writeError(w, r, err)
			}
			return
		}
		var minPosition int64
		if v := r.URL.Query().Get("min_position"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.writeError(w, r, badField("min_position", "min_position %q is not a log position", v))
				return
			}
			minPosition = n
		}
		f, err := rm.Runner.WaitFor(r.Context(), projection, minPosition, rm.MaxWait)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// Read before the tables: an answer read after it is at least as fresh as this state.
		changes, err := rm.Runner.Changes(projection)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// Held until the answer is read: a rebuild drops the set it replaced only after.
		tables, release, err := rm.Runner.Read(projection)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		rd := read{db: rm.Runner.DB(), t: tables, memo: direct}
		if kept != nil {
			state := tablesState{set: tables.Prefix(), changes: changes}
			// A reading in the background for a later state reads its state, freshness and
			// tables again, as this request did.
			again := func() (tablesState, runtime.Freshness, func(), error) {
				ctx := context.WithoutCancel(r.Context())
				f, err := rm.Runner.WaitFor(ctx, projection, 0, 0)
				if err != nil {
					return tablesState{}, runtime.Freshness{}, nil, err
				}
				changes, err := rm.Runner.Changes(projection)
				if err != nil {
					return tablesState{}, runtime.Freshness{}, nil, err
				}
				tables, release, err := rm.Runner.Read(projection)
				if err != nil {
					return tablesState{}, runtime.Freshness{}, nil, err
				}
				return tablesState{set: tables.Prefix(), changes: changes}, f, release, nil
			}
			rd.memo = func(ctx context.Context, question string, compute func(context.Context) (any, error)) (any, error) {
				v, answered, err := kept.get(ctx, projection+" "+question, state, f, compute, again)
				f = answered // a joined reading answers with its own freshness
				return v, err
			}
		}
		data, err := func() (any, error) {
			defer release() // also when h panics: a rebuild waits for the set's readers
			return h(r, rd)
		}()
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		hd := w.Header()
		hd.Set(HeaderPosition, strconv.FormatInt(f.Position, 10))
		hd.Set(HeaderLagEvents, strconv.FormatInt(f.Lag.Events, 10))
		hd.Set(HeaderLagSeconds, strconv.FormatFloat(f.Lag.Seconds, 'f', 3, 64))
		if f.Stale {
			hd.Set(HeaderStale, "true")
		}
		hd.Set("Cache-Control", "no-store")
		s.writeReadAnswer(w, data, f)
	})
}

// maxPooledAnswer is the largest buffer kept for reuse.
const maxPooledAnswer = 1 << 20

// jsonAppender is an answer that writes its JSON itself, faster than encoding/json would
// (from parts encoded once and kept): AppendJSON appends exactly what json.Marshal would.
type jsonAppender interface {
	AppendJSON(dst []byte) ([]byte, error)
}

// writeReadAnswer writes ReadAnswer{data, f} as writeJSON does; an answer that appends its own
// JSON is written in one piece, with its length.
func (s *Server) writeReadAnswer(w http.ResponseWriter, data any, f runtime.Freshness) {
	a, ok := data.(jsonAppender)
	if !ok {
		writeJSON(w, http.StatusOK, ReadAnswer{Data: data, Freshness: f})
		return
	}
	buf, _ := s.answerBuffers.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	defer func() {
		if cap(*buf) <= maxPooledAnswer {
			s.answerBuffers.Put(buf)
		}
	}()
	body, err := a.AppendJSON(append((*buf)[:0], `{"data":`...))
	*buf = body
	if err == nil {
		var fresh []byte
		if fresh, err = json.Marshal(f); err == nil {
			body = append(append(append(body, `,"freshness":`...), fresh...), "}\n"...)
		}
	}
	if err != nil { // not reached: answers of strings and numbers encode
		writeJSON(w, http.StatusOK, ReadAnswer{Data: data, Freshness: f})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}

// ProjectionList is the answer of GET /v1/projections.
type ProjectionList struct {
	Projections []runtime.Status `json:"projections"`
	// Feed is how far the store's feed has reached against the store's own head, and
	// whether it is stalled.
	Feed runtime.Feed `json:"feed"`
}

// ParkedList is the answer of GET /v1/projections/parked.
type ParkedList struct {
	Parked []projections.ParkedEvent `json:"parked"`
	// NextAfterID pages: pass it as after_id for the next page; 0 on the last page.
	NextAfterID int64 `json:"next_after_id,omitempty"`
}

func listParked(r *http.Request, runner *runtime.Runner) (any, int64, error) {
	q := r.URL.Query()
	f := projections.ParkedFilter{Projection: q.Get("projection"), Limit: 100}
	if v := q.Get("after_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, 0, badField("after_id", "after_id %q is not a parked event id", v)
		}
		f.AfterID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, 0, badField("limit", "limit %q is not in 1..1000", v)
		}
		f.Limit = n
	}
	list, err := runner.Parked(r.Context(), f)
	if err != nil {
		return nil, 0, err
	}
	answer := ParkedList{Parked: list}
	if len(list) == f.Limit {
		answer.NextAfterID = list[len(list)-1].ID
	}
	return answer, 0, nil
}

// retryParked answers 200 with what the retry did, also when the event failed again
// (failed names it): the request itself succeeded and changed the parked row.
func retryParked(r *http.Request, runner *runtime.Runner) (any, int64, error) {
	raw := mux.Vars(r)["parkedId"] // not "id": that one is a contact's or a deal's UUID
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id < 1 {
		return nil, 0, notFound("%q is not a parked event id", raw)
	}
	// The retry runs to its end even if the client goes away: it is a small, bounded piece of
	// work, and stopping it halfway would only leave more to retry.
	res, err := runner.RetryParked(context.WithoutCancel(r.Context()), id)
	if err != nil {
		return nil, 0, err
	}
	return res, 0, nil
}
