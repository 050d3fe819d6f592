package contact

import (
	"time"

	"github.com/eventcrm/crm/domain"
)

// OverdueBefore is the first due date that is not overdue at t: a task still open at t is
// overdue when its due date is before t's business date, its date in the business time zone
// loc (UTC when nil). This is the one place that turns a time into the date tasks are judged
// by.
func OverdueBefore(t time.Time, loc *time.Location) domain.Date {
	if loc == nil {
		loc = time.UTC
	}
	return domain.DateIn(t, loc)
}

// Overdue reports whether a task due on due, still open at t, is overdue at t in zone loc.
func Overdue(due domain.Date, t time.Time, loc *time.Location) bool {
	return due < OverdueBefore(t, loc)
}
