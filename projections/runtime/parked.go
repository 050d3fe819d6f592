package runtime

import (
	"context"
	"fmt"

	"github.com/eventcrm/crm/projections"
)

// RetryResult is what a retry of a parked event did.
type RetryResult struct {
	// Applied lists the parked events now applied, in stream order: the one retried first,
	// then those that waited behind it.
	Applied []projections.ParkedEvent `json:"applied"`
	// Failed is the event that failed again, if any; it and the events behind it stay parked.
	Failed *projections.ParkedEvent `json:"failed,omitempty"`
	// StillParked counts the events of the stream that remain parked.
	StillParked int `json:"still_parked"`
}

// Parked lists parked events in id order (the order they were parked).
func (r *Runner) Parked(ctx context.Context, f projections.ParkedFilter) ([]projections.ParkedEvent, error) {
	return r.db.ListParked(ctx, f)
}

// RetryParked applies the parked event id again and, if it succeeds, the events of the same
// stream parked behind it, in stream order, each in its own transaction that also removes it
// from the queue. It stops at the first that fails again, which stays parked with its new
// error. Only the earliest parked event of a stream can be retried (ErrNotFirstParked):
// anything else would apply a stream out of order. It returns ErrParkedNotFound for an
// unknown id.
//
// The retry is serialized with whoever applies the projection (the live handler of this
// process or another server's): each of its transactions takes the set's lock and reads the
// queue under it, so no event of the stream is applied or parked in between. Any server may
// retry, whether it holds the projection's lease or not.
func (r *Runner) RetryParked(ctx context.Context, id int64) (RetryResult, error) {
	target, err := r.db.ParkedByID(ctx, id)
	if err != nil {
		return RetryResult{}, err
	}
	pj := r.byName[target.Projection]
	if pj == nil {
		return RetryResult{}, fmt.Errorf("parked event %d: projection set %s is not running here", id, target.TableSet)
	}
	pj.mu.Lock()
	defer pj.mu.Unlock()
	if t := pj.tables(); t.Prefix() != target.TableSet {
		return RetryResult{}, fmt.Errorf("parked event %d: projection set %s is not running here (%s is)", id, target.TableSet, t.Prefix())
	}

	var res RetryResult
	for {
		next, found, err := r.db.FirstParked(ctx, pj.tables(), target.Stream)
		if err != nil {
			return res, err
		}
		if !found {
			break
		}
		if len(res.Applied) == 0 && next.ID != id {
			if next.Position > target.Position {
				// The event asked for was retried concurrently and is gone.
				return res, fmt.Errorf("parked event %d: %w", id, projections.ErrParkedNotFound)
			}
			return res, &projections.NotFirstError{ID: id, First: next.ID}
		}
		applyErr, err := r.reapply(ctx, pj, next)
		if err != nil {
			return res, err
		}
		if applyErr != nil {
			next.Attempts++
			next.Error = applyErr.Error()
			res.Failed = &next
			break
		}
		res.Applied = append(res.Applied, next)
		pj.unpark()
	}
	still, err := r.db.ParkedInStream(ctx, pj.tables(), target.Stream)
	if err != nil {
		return res, err
	}
	res.StillParked = still
	return res, nil
}

// reapply applies one parked event and removes it from the queue in one transaction, which
// takes the set's lock first and counts the change for every server (ChangesTable). The
// checkpoint does not move: it passed the event when it was parked. applyErr is the
// projection's refusal (recorded on the parked row); err is anything else, and
// ErrParkedNotFound when another retry took the event meanwhile.
func (r *Runner) reapply(ctx context.Context, pj *projector, p projections.ParkedEvent) (applyErr, err error) {
	e, err := r.store.EventByID(ctx, p.EventID)
	if err != nil {
		return nil, fmt.Errorf("read parked event %s: %w", p.EventID, err)
	}
	defer r.db.LockWrites()()
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin retry of %s: %w", p.EventID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := r.db.Dialect.LockSet(ctx, tx, pj.tables()); err != nil {
		return nil, err
	}
	var still int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+projections.ParkedTable+` WHERE id = ?`, p.ID).Scan(&still); err != nil {
		return nil, fmt.Errorf("parked event %d: %w", p.ID, err)
	}
	if still == 0 {
		return nil, fmt.Errorf("parked event %d: %w", p.ID, projections.ErrParkedNotFound)
	}
	if applyErr = projections.SafeApply(ctx, pj.p, tx, pj.tables(), e); applyErr != nil {
		if err := tx.Rollback(); err != nil {
			return nil, fmt.Errorf("roll back retry of %s: %w", p.EventID, err)
		}
		if err := r.db.RecordFailedRetry(ctx, p, applyErr); err != nil {
			return nil, err
		}
		return applyErr, nil
	}
	if err := projections.Unpark(ctx, tx, p); err != nil {
		return nil, err
	}
	if err := projections.BumpChanges(ctx, tx, pj.tables()); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit retry of %s: %w", p.EventID, err)
	}
	pj.changes.Add(1)
	return nil, nil
}
