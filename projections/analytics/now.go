package analytics

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/period"
	"github.com/eventcrm/crm/projections/probability"
)

// KeptAboutNow tells whether the KPIs of p about now are read from the kept counts alone, so
// that QueryKPIsNow answers them: at most one filter and no explain.
func (p KPIParams) KeptAboutNow() bool {
	_, oneFilter := filterOf(p.Owner, p.Channel, p.Segment)
	return oneFilter && p.Explain == ""
}

// QueryKPIsNow answers the KPIs of params about now on the business date of params.AsOf, as
// QueryKPIs does for every as_of at or after the horizon on that date: that answer depends on
// the tables and the date alone (To defaults to it, open tasks are judged against it), not
// on the time of day, which it only echoes. So it can be kept while the tables do not change
// and given for any such as_of (Present.At, which refuses an as_of before the horizon or on
// another date: those are read as of their time). params must be KeptAboutNow.
func QueryKPIsNow(ctx context.Context, db *projections.DB, t projections.Tables, params KPIParams) (horizon.Present[KPIAnswer], error) {
	if !params.KeptAboutNow() {
		return horizon.Present[KPIAnswer]{}, errors.New("kpis about now: two filters or more, or explain, are read as of their time")
	}
	q, err := params.check()
	if err != nil {
		return horizon.Present[KPIAnswer]{}, err
	}
	return presentFor(ctx, db, t, domain.Date(q.cutoff), q.Zone, kpisHorizon, func(r *reader, from time.Time) (KPIAnswer, error) {
		q.AsOf = from
		return r.kpisFrom(ctx, q, true)
	}, KPIAnswer.withAsOf)
}

// KeptAboutNow tells whether the forecast of p about now is read from the tables and the
// date alone, so that QueryForecastNow answers it: no explain.
func (p ForecastParams) KeptAboutNow() bool { return p.Explain == "" }

// QueryForecastNow answers the forecast of params about now on the business date of
// params.AsOf, as QueryForecast does for every as_of of that date at or after the latest
// change of the stage probabilities: the open deals are those the tables hold whatever the
// as_of, the overdue ones those expected to close before the date, and the probabilities in
// force the latest. So it can be kept while the tables do not change and given for any such
// as_of (Present.At, which refuses an as_of before that change or on another date: those are
// read as of their time). params must be KeptAboutNow.
func QueryForecastNow(ctx context.Context, db *projections.DB, t projections.Tables, params ForecastParams) (horizon.Present[ForecastAnswer], error) {
	if !params.KeptAboutNow() {
		return horizon.Present[ForecastAnswer]{}, errors.New("forecast about now: explain is read as of its time")
	}
	q, err := params.check()
	if err != nil {
		return horizon.Present[ForecastAnswer]{}, err
	}
	return presentFor(ctx, db, t, domain.Date(q.cutoff), q.Zone, forecastHorizon, func(r *reader, from time.Time) (ForecastAnswer, error) {
		q.AsOf = from
		return r.forecastAnswer(ctx, q)
	}, ForecastAnswer.withAsOf)
}

// kpisHorizon is the horizon of the KPIs: the latest business time of a part or of its
// revocation (zero when none).
func kpisHorizon(ctx context.Context, r *reader) (time.Time, error) { return r.horizon(ctx) }

// forecastHorizon is the horizon of the forecast: the latest change of the stage
// probabilities (zero when none); the open deals do not depend on the as_of.
func forecastHorizon(ctx context.Context, r *reader) (time.Time, error) {
	at, _, err := probability.Latest(ctx, r.tx, r.t)
	return at, err
}

// presentFor reads, in one read transaction, the answer about now on business date d in zone
// from the horizon that horizonOf reads on: answer is told the first time of d it holds
// from, at gives it as of a later time, and the present holds until the end of d. A date over at the horizon has no time
// about now: its present is given for none.
func presentFor[A any](ctx context.Context, db *projections.DB, t projections.Tables, d domain.Date, zone *time.Location,
	horizonOf func(context.Context, *reader) (time.Time, error), answer func(r *reader, from time.Time) (A, error),
	at func(A, time.Time) A) (horizon.Present[A], error) {
	var present horizon.Present[A]
	start, end := dateSpan(d, zone)
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		r := &reader{db: db, tx: tx, t: t}
		h, err := horizonOf(ctx, r)
		if err != nil {
			return err
		}
		from := start
		if h.After(from) {
			from = h
		}
		var a A
		if from.Before(end) {
			if a, err = answer(r, from); err != nil {
				return err
			}
		}
		present = horizon.PresentOf(a, from, at).Until(end)
		return nil
	})
	return present, err
}

// withAsOf is the answer as of asOf, for an as_of it holds for.
func (a KPIAnswer) withAsOf(asOf time.Time) KPIAnswer {
	a.AsOf = asOf
	return a
}

// withAsOf is the answer as of asOf, for an as_of it holds for.
func (a ForecastAnswer) withAsOf(asOf time.Time) ForecastAnswer {
	a.AsOf = asOf
	return a
}

// dateSpan is the first instant of business date d in zone and the first of the next one.
func dateSpan(d domain.Date, zone *time.Location) (start, end time.Time) {
	y, m, day := d.Time().Date()
	return period.DateStart(y, m, day, zone), period.DateStart(y, m, day+1, zone)
}
