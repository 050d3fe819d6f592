package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// Readiness is the answer of GET /readyz when the server is ready.
type Readiness struct {
	Status string `json:"status" doc:"ready"`
	// CaughtUpTo is the log position every read model had to reach: the head of the log when
	// readiness was first asked (0 without read models).
	CaughtUpTo int64 `json:"caught_up_to"`
}

// readiness remembers whether the read models have caught up since start: once they have,
// the server stays ready while the store answers and the feed moves, whatever the lag of a
// busy moment (that is what freshness and the metrics tell). A stalled feed (events committed
// in the store reach no projection, see runtime.Runner.Feed) makes it not ready until the
// feed moves again: its answers would stay behind the store however long a client waits.
type readiness struct {
	mu       sync.Mutex
	runner   *runtime.Runner // nil: no read models are served
	target   int64
	known    bool // target is set
	caughtUp bool
}

// readyz answers 200 once the store answers and every read model has reached the log's head
// as it was when readiness was first asked, while the feed is not stalled; 503 otherwise,
// naming what is missing.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.ReadAll(ctx, 0, 1); err != nil {
		s.log.Warn("readiness: store unreachable", zap.Error(err))
		s.writeError(w, r, unavailable("not ready: the event store does not answer"))
		return
	}
	// A stalled feed first: read models behind it cannot catch up until it moves.
	if feed, held, err := s.ready.stalled(ctx); err != nil {
		s.log.Warn("readiness: read models unknown", zap.Error(err))
		s.writeError(w, r, unavailable("not ready: the read models' state is unknown"))
		return
	} else if feed.Stalled {
		s.writeError(w, r, unavailable(fmt.Sprintf("not ready: the feed is stalled for %gs, events up to position %d committed in the store reach no projection: %s",
			feed.StalledSeconds, feed.StoreHead, strings.Join(held, ", "))))
		return
	}
	target, behind, err := s.ready.check(ctx, s.store)
	if err != nil {
		s.log.Warn("readiness: read models unknown", zap.Error(err))
		s.writeError(w, r, unavailable("not ready: the read models' state is unknown"))
		return
	}
	if len(behind) > 0 {
		s.writeError(w, r, unavailable(fmt.Sprintf("not ready: read models behind the log at start (position %d): %s",
			target, strings.Join(behind, ", "))))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, Readiness{Status: "ready", CaughtUpTo: target})
}

// check returns the position to reach and the read models still behind it ("name at N").
func (rd *readiness) check(ctx context.Context, store eventstore.Store) (int64, []string, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.runner == nil || rd.caughtUp {
		return rd.target, nil, nil
	}
	if !rd.known {
		head, err := projections.LogHead(ctx, store)
		if err != nil {
			return 0, nil, fmt.Errorf("log head: %w", err)
		}
		rd.target, rd.known = head, true
	}
	st, err := rd.runner.Status(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("projection status: %w", err)
	}
	var behind []string
	for _, p := range st {
		if p.Checkpoint < rd.target {
			behind = append(behind, fmt.Sprintf("%s at %d", p.Name, p.Checkpoint))
		}
	}
	rd.caughtUp = len(behind) == 0
	return rd.target, behind, nil
}

// stalled returns the feed and, when it is stalled, the projections it holds back ("name at
// N"): those the runner reports stalled, else every one behind the store's head.
func (rd *readiness) stalled(ctx context.Context) (runtime.Feed, []string, error) {
	rd.mu.Lock()
	runner := rd.runner
	rd.mu.Unlock()
	if runner == nil {
		return runtime.Feed{}, nil, nil
	}
	feed := runner.Feed()
	if !feed.Stalled {
		return feed, nil, nil
	}
	st, err := runner.Status(ctx)
	if err != nil {
		return feed, nil, fmt.Errorf("projection status: %w", err)
	}
	var stalled, behind []string
	for _, p := range st {
		name := fmt.Sprintf("%s at %d", p.Name, p.Checkpoint)
		if p.State == runtime.StateStalled {
			stalled = append(stalled, name)
		}
		if p.Checkpoint < feed.StoreHead {
			behind = append(behind, name)
		}
	}
	if len(stalled) > 0 {
		return feed, stalled, nil
	}
	return feed, behind, nil
}
