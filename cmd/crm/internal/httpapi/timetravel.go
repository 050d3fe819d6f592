package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/timetravel"
)

// travelParams is a log-time question: at_position=N, or known_at=T (the last position
// recorded by T). as_of, the business time, is read by each query as usual: both together
// make a bitemporal question.
type travelParams struct {
	position int64
	knownAt  *time.Time
}

// timeTravelParams parses at_position and known_at; ok is false when neither is given.
func timeTravelParams(r *http.Request) (travelParams, bool, error) {
	q := r.URL.Query()
	pos, known := q.Get("at_position"), q.Get("known_at")
	switch {
	case pos == "" && known == "":
		return travelParams{}, false, nil
	case pos != "" && known != "":
		return travelParams{}, false, badField("known_at", "at_position and known_at both name a log time: give one")
	case q.Get("min_position") != "":
		// min_position waits for the live read model; a past one has nothing to wait for.
		return travelParams{}, false, badField("min_position", "min_position does not go with at_position or known_at")
	case pos != "":
		n, err := strconv.ParseInt(pos, 10, 64)
		if err != nil || n < 0 {
			return travelParams{}, false, badField("at_position", "at_position %q is not a log position", pos)
		}
		return travelParams{position: n}, true, nil
	default:
		t, err := time.Parse(time.RFC3339Nano, known)
		if err != nil {
			return travelParams{}, false, badField("known_at", "known_at %q is not an RFC 3339 time", known)
		}
		t = t.UTC()
		return travelParams{knownAt: &t}, true, nil
	}
}

// travel answers a query from the read model as it stood at a past log position.
func (s *Server) travel(w http.ResponseWriter, r *http.Request, rm ReadModels, projection string, h readFunc, tp travelParams) error {
	set, release, r, err := s.travelSet(r, rm, projection, tp)
	if err != nil {
		return err
	}
	data, err := h(r, read{db: set.DB, t: set.Tables, memo: direct})
	release()
	if err != nil {
		return err
	}
	f := travelFreshness(projection, set, tp)
	hd := w.Header()
	hd.Set(HeaderPosition, strconv.FormatInt(f.Position, 10))
	hd.Set(HeaderLagEvents, strconv.FormatInt(f.Lag.Events, 10))
	hd.Set(HeaderAtPosition, strconv.FormatInt(f.Position, 10))
	hd.Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, ReadAnswer{Data: data, Freshness: f})
	return nil
}

// travelSet holds the set of projection as it stood at tp until release is called, and
// returns r with the moment asked about standing for "now": without as_of, the queries that
// measure time (days in stage, dormancy) measure it then (known_at, or when the event at
// at_position was recorded).
func (s *Server) travelSet(r *http.Request, rm ReadModels, projection string, tp travelParams) (timetravel.TravelSet, func(), *http.Request, error) {
	if rm.TimeTravel == nil {
		return timetravel.TravelSet{}, nil, r, badField("at_position", "time travel is not served here")
	}
	ctx := r.Context()
	start := time.Now()
	defer func() { s.metrics.TimeTravel(projection, time.Since(start)) }()
	if tp.knownAt != nil {
		n, err := rm.TimeTravel.PositionAt(ctx, *tp.knownAt)
		if err != nil {
			return timetravel.TravelSet{}, nil, r, err
		}
		tp.position = n
	}
	set, release, err := rm.TimeTravel.At(ctx, projection, tp.position)
	if err != nil {
		return timetravel.TravelSet{}, nil, r, err
	}
	then := set.RecordedAt
	if tp.knownAt != nil {
		then = *tp.knownAt
	}
	if !then.IsZero() {
		r = r.WithContext(context.WithValue(ctx, nowKey{}, then))
	}
	return set, release, r, nil
}

// travelFreshness is the freshness of an answer from set.
func travelFreshness(projection string, set timetravel.TravelSet, tp travelParams) runtime.Freshness {
	at := set.Position
	return runtime.Freshness{Projection: projection, Position: at, Head: set.Head,
		Lag: runtime.Lag{Events: set.Head - at}, AtPosition: &at, KnownAt: tp.knownAt}
}

// HeaderAtPosition repeats the log position of a time-travel answer.
const HeaderAtPosition = "X-Read-Model-At-Position"

// nowKey carries, in a time-travel request's context, the time that stands for "now".
type nowKey struct{}

// now is the time a query without as_of is asked at: the wall clock, or the moment a
// time-travel question is about.
func now(r *http.Request) time.Time {
	if t, ok := r.Context().Value(nowKey{}).(time.Time); ok {
		return t.UTC()
	}
	return time.Now().UTC()
}
