package contact

import (
	"time"

	"github.com/eventcrm/crm/domain"
)

// OverdueBefore is the first due date that is not overdue at t: a task still open at t is
// overdue when its due date is before t's business date. Business dates are UTC dates
// (domain.DateOf) until a business time zone is configurable; this is the one place that
// turns a time into the date tasks are judged by.
func OverdueBefore(t time.Time) domain.Date { return domain.DateOf(t) }

// Overdue reports whether a task due on due, still open at t, is overdue at t.
func Overdue(due domain.Date, t time.Time) bool { return due < OverdueBefore(t) }
