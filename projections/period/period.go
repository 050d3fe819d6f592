// Package period turns instants into business dates and periods (day, week starting Monday,
// month, quarter, year) in the business time zone, and names the version of a read model
// whose fold takes that zone (and defines such a read model: Define).
package period

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/eventcrm/crm/domain"
)

// Kind is a length of period.
type Kind string

// The kinds of period.
const (
	Day     Kind = "day"
	Week    Kind = "week"
	Month   Kind = "month"
	Quarter Kind = "quarter"
	Year    Kind = "year"
)

// Kinds lists every kind, shortest first.
func Kinds() []Kind { return []Kind{Day, Week, Month, Quarter, Year} }

// Parse validates a kind; field names the parameter for the error.
func Parse(field, s string) (Kind, error) {
	for _, k := range Kinds() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", domain.Invalid(field, "%q is not day, week, month, quarter or year", s)
}

// Start is the first instant of the period of kind k holding t, in zone loc.
func (k Kind) Start(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	switch k {
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return DateStart(y, m, d-back, loc)
	case Month:
		return DateStart(y, m, 1, loc)
	case Quarter:
		return DateStart(y, m-(m-1)%3, 1, loc)
	case Year:
		return DateStart(y, 1, 1, loc)
	}
	return DateStart(y, m, d, loc)
}

// Next is the start of the period after the one starting at start.
func (k Kind) Next(start time.Time) time.Time {
	y, m, d := start.Date()
	loc := start.Location()
	switch k {
	case Week:
		return DateStart(y, m, d+7, loc)
	case Month:
		return DateStart(y, m+1, 1, loc)
	case Quarter:
		return DateStart(y, m+3, 1, loc)
	case Year:
		return DateStart(y+1, 1, 1, loc)
	}
	return DateStart(y, m, d+1, loc)
}

// DateStart is the first instant of business date y-m-d in zone loc (normalized as time.Date
// normalizes it): its midnight, or, where a clock change skips midnight (America/Havana,
// America/Santiago), the moment the day begins. time.Date gives an instant of the day before
// for such a midnight, which would put the day's first hour, and its label, in the day before.
func DateStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	want := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if ty, tm, td := t.Date(); ty == want.Year() && tm == want.Month() && td == want.Day() {
		return t
	}
	// Midnight fell in a gap and t is the instant before it in the earlier offset: the day
	// begins where that offset ends.
	_, end := t.ZoneBounds()
	return end
}

// Label names the period starting at start: its first business date (2025-04-01), the same
// for every kind, so that labels sort in time order.
func Label(start time.Time) string { return start.Format(domain.DateLayout) }

// Of is the label of the period of kind k holding t, in zone loc.
func (k Kind) Of(t time.Time, loc *time.Location) string { return Label(k.Start(t, loc)) }

// MonthOf is the business month (YYYY-MM) of t in zone loc: a cohort's month.
func MonthOf(t time.Time, loc *time.Location) string { return t.In(loc).Format("2006-01") }

// Version is the version of a read model whose fold takes the business zone: base in UTC,
// and in another zone a number of its own (base + 1000 x (1 + a hash of the zone's name mod
// 999,999)), so that the tables built in one zone are never served in another: a changed zone
// is a new version, rebuilt from the log, and the old zone's tables stay until dropped. base
// must stay below 1000.
func Version(base int, loc *time.Location) int {
	if base < 1 || base >= 1000 {
		panic(fmt.Sprintf("period: base version %d out of 1..999", base))
	}
	if loc == nil || loc.String() == "UTC" {
		return base
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(loc.String()))
	return base + 1000*(1+int(h.Sum32()%999_999))
}

// Zone is loc, or UTC when nil.
func Zone(loc *time.Location) *time.Location {
	if loc == nil {
		return time.UTC
	}
	return loc
}
