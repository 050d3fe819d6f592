package horizon

import "time"

// Present is an answer about now: what a question answers for every as_of from the horizon
// its tables held when it was read (the latest business time folded) on, up to an end when
// the answer holds only until then (the end of a business date it was read for, say). It is
// kept for as long as the tables do not change.
type Present[A any] struct {
	answer A
	// from is the horizon (zero when the tables held no business time); until, when not
	// zero, the first time the answer no longer holds.
	from, until time.Time
	// at is the answer as of a time it holds for.
	at func(answer A, asOf time.Time) A
}

// PresentOf is answer, read from tables of the horizon from (zero: none), given as of a time
// by at.
func PresentOf[A any](answer A, from time.Time, at func(A, time.Time) A) Present[A] {
	return Present[A]{answer: answer, from: from, at: at}
}

// Until is p holding only before until: as of until or later the question must be read
// again.
func (p Present[A]) Until(until time.Time) Present[A] {
	p.until = until
	return p
}

// At is the answer as of asOf when it holds then (ok): at or after the horizon and before
// the end. Otherwise the question must be read as of asOf.
func (p Present[A]) At(asOf time.Time) (answer A, ok bool) {
	if asOf.Before(p.from) || (!p.until.IsZero() && !asOf.Before(p.until)) {
		return answer, false
	}
	return p.at(p.answer, asOf.UTC()), true
}
