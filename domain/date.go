package domain

import "time"

// Date is a calendar date (YYYY-MM-DD) with no time zone: an expected close date, a task's due
// date. Its string form sorts in time order.
type Date string

// DateLayout is the only accepted form of a Date.
const DateLayout = "2006-01-02"

// ParseDate validates s as a Date; field names the command field for errors.
func ParseDate(field, s string) (Date, error) {
	if _, err := time.Parse(DateLayout, s); err != nil {
		return "", Invalid(field, "%q is not a date of the form YYYY-MM-DD", s)
	}
	return Date(s), nil
}

// DateOf is the UTC calendar date of t.
func DateOf(t time.Time) Date { return Date(t.UTC().Format(DateLayout)) }

// DateIn is the calendar date of t in the time zone loc: the business date of an instant when
// loc is the business time zone.
func DateIn(t time.Time, loc *time.Location) Date { return Date(t.In(loc).Format(DateLayout)) }

// Time is the start of the date, in UTC.
func (d Date) Time() time.Time {
	t, _ := time.Parse(DateLayout, string(d))
	return t
}
