package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// projection is one row of GET /v1/projections.
type projection struct {
	Name       string `json:"name"`
	Checkpoint int64  `json:"checkpoint"`
	Head       int64  `json:"head"`
	Lag        struct {
		Events  int64   `json:"events"`
		Seconds float64 `json:"seconds"`
	} `json:"lag"`
	State  string `json:"state"`
	Parked int64  `json:"parked"`
	Error  string `json:"error"`
}

func projectionStatus(ctx context.Context, c *client) ([]projection, error) {
	st, payload, err := c.do(ctx, "GET", "/v1/projections", nil)
	if err != nil || st != 200 {
		return nil, fmt.Errorf("projections: %s", failure(st, payload, err))
	}
	var body struct {
		Projections []projection `json:"projections"`
	}
	if err := json.Unmarshal(payload, &body); err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	if len(body.Projections) == 0 {
		return nil, errors.New("projections: the server runs none")
	}
	for _, p := range body.Projections {
		if p.State == "failed" {
			return nil, fmt.Errorf("projection %s failed: %s", p.Name, p.Error)
		}
	}
	return body.Projections, nil
}

// caughtUp reports whether every projection has applied the log up to position at least.
func caughtUp(ps []projection, position int64) bool {
	for _, p := range ps {
		if p.Lag.Events > 0 || p.Checkpoint < position || p.Head < position {
			return false
		}
	}
	return true
}

// parked is the number of events the projections could not apply.
func parked(ps []projection) int64 {
	var n int64
	for _, p := range ps {
		n += p.Parked
	}
	return n
}

// waitCaughtUp polls the projections until they have applied the log up to position and
// report no lag, for at most within. It returns their last status.
func waitCaughtUp(ctx context.Context, s *server, c *client, position int64, within time.Duration) ([]projection, error) {
	deadline := time.Now().Add(within)
	for {
		ps, err := projectionStatus(ctx, c)
		if err != nil {
			return nil, err
		}
		if caughtUp(ps, position) {
			return ps, nil
		}
		if time.Now().After(deadline) {
			return ps, fmt.Errorf("the read models did not catch up with position %d within %s: %+v", position, within, ps)
		}
		if err := s.alive(); err != nil {
			return nil, err
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// quietShare is the processor share under which the server counts as idle.
const quietShare = 0.10

// waitQuiet waits until the server has used under quietShare of a processor for a whole
// span, for at most within: background work that a caught-up status does not show (the
// time-travel snapshots of a first start) must not run beside a measurement.
func waitQuiet(ctx context.Context, s *server, span, within time.Duration) error {
	if span <= 0 {
		return nil
	}
	deadline := time.Now().Add(within)
	m, err := s.meter()
	if err != nil {
		return err
	}
	for time.Now().Before(deadline) {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		used, wall, err := m.read()
		if err != nil {
			return err
		}
		if float64(used) > quietShare*float64(wall) {
			if m, err = s.meter(); err != nil { // busy: the quiet span starts again
				return err
			}
			continue
		}
		if wall >= span {
			return nil
		}
	}
	return fmt.Errorf("the server was not quiet for %s within %s", span, within)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
