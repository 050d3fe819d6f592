package csvimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
)

// DefaultWorkers is how many rows an import works on at once.
const DefaultWorkers = 16

// Run imports the rows of f (opened with the same opts) through h, or only checks them on a
// dry run. Rows are read as they stream and worked on by opts.Workers at once; a bad row is
// refused and the others go on. An error is a failure of the file or the store, which stops
// the import: the rows imported until then stay, and running the same file again completes
// it.
func Run(ctx context.Context, h *commands.Handler, f *File, opts Options, progress *Progress) (Report, error) {
	if progress == nil {
		progress = &Progress{}
	}
	e := env{h: h, actor: opts.Actor, zone: opts.Zone, dry: opts.DryRun, position: new(atomic.Int64)}
	if e.zone == nil {
		e.zone = time.UTC
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type job struct {
		r   row
		bad *Problem
	}
	type result struct {
		out      outcome
		problems []Problem
	}
	jobs := make(chan job, workers*2)
	results := make(chan result, workers*2)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out, ps := refused, []Problem{}
				if j.bad != nil {
					ps = append(ps, *j.bad)
				} else {
					var err error
					if out, ps, err = doRow(ctx, e, f.kind, j.r); err != nil {
						cancel(fmt.Errorf("row %d: %w", j.r.n, err))
						continue
					}
				}
				for i, p := range ps {
					ps[i] = j.r.withoutPersonal(p, f.kind.personal())
				}
				results <- result{out: out, problems: ps}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for {
			r, bad, err := f.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				cancel(err)
				return
			}
			select {
			case jobs <- job{r: r, bad: bad}:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	rep := Report{Kind: opts.Kind, DryRun: opts.DryRun, Encoding: f.encoding, Problems: []Problem{}}
	for res := range results {
		rep.Rows++
		progress.rows.Add(1)
		switch {
		case res.out == refused:
			rep.Refused++
		case opts.DryRun:
			rep.Valid++
		case res.out == created:
			rep.Created++
		case res.out == updated:
			rep.Updated++
		case res.out == skipped:
			rep.Skipped++
		}
		rep.Problems = append(rep.Problems, res.problems...)
	}
	rep.Position = e.position.Load()
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int { return int(a.Row - b.Row) })
	if err := context.Cause(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// doRow checks a row and, unless this is a dry run, applies it.
func doRow(ctx context.Context, e env, k kind, r row) (outcome, []Problem, error) {
	ps, err := k.check(ctx, e, r)
	if err != nil {
		return refused, nil, err
	}
	if len(ps) > 0 {
		return refused, ps, nil
	}
	if e.dry {
		return created, nil, nil
	}
	out, err := k.apply(ctx, e, r)
	switch {
	case err == nil:
		return out, nil, nil
	case isRefusal(err):
		return refused, []Problem{refusalOf(r, err)}, nil
	}
	return refused, nil, err
}

// refusalOf is the problem of a refusal of the commands: on the column of the field it
// names, or of the contact it did not find.
func refusalOf(r row, err error) Problem {
	var de *domain.Error
	if errors.As(err, &de) && (de.Code == domain.CodeNotFound || de.Code == domain.CodeMerged || de.Field == "contact_id") {
		for _, col := range []string{"contact_id", "contact_key"} {
			if r.has(col) {
				return r.problem(col, "%s", de.Message)
			}
		}
	}
	return r.refusal(err, dealFields)
}
