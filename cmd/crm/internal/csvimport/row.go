package csvimport

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventcrm/crm/domain"
)

// row is one data row: its values by column, and the file's name of each column.
type row struct {
	n       int64
	vals    map[string]string
	headers map[string]string
}

func (r row) get(col string) string { return r.vals[col] }

func (r row) has(col string) bool { return r.vals[col] != "" }

// problem is the problem of column col of the row.
func (r row) problem(col, format string, args ...any) Problem {
	return Problem{Row: r.n, Column: r.headers[col], Value: r.vals[col], Why: fmt.Sprintf(format, args...)}
}

// withoutPersonal is p as a report keeps it: without the values of the row's columns of
// personal data (personal), as its value or quoted in its reason. A report is kept apart from
// the log (import_runs, a file it was saved to), where an erasure does not reach it.
func (r row) withoutPersonal(p Problem, personal []string) Problem {
	for _, col := range personal {
		v, ok := r.vals[col]
		if !ok {
			continue
		}
		if p.Column != "" && p.Column == r.headers[col] {
			p.Value = ""
		}
		if v == "" {
			continue
		}
		p.Why = strings.ReplaceAll(p.Why, strconv.Quote(v), "the value")
		// A reason that names the value otherwise is not kept; a value of one or two
		// characters is part of too many words to tell.
		if utf8.RuneCountInString(v) > 2 && strings.Contains(p.Why, v) {
			p.Why = "refused: the reason quoted a value that may be personal data"
		}
	}
	return p
}

// refusal is the problem of an error of the commands: a domain error names its field, which
// is the column of the same name (fields maps the others).
func (r row) refusal(err error, fields map[string]string) Problem {
	var de *domain.Error
	if errors.As(err, &de) {
		col := de.Field
		if c, ok := fields[col]; ok {
			col = c
		}
		if _, ok := r.vals[col]; ok {
			return r.problem(col, "%s", de.Message)
		}
		return Problem{Row: r.n, Why: de.Error()}
	}
	return Problem{Row: r.n, Why: err.Error()}
}

// undecodable is the problem of a value that is not text in the file's encoding.
func (r row) undecodable(encoding string) *Problem {
	for _, col := range slices.Sorted(maps.Keys(r.vals)) {
		v := r.vals[col]
		switch {
		case encoding == EncodingUTF8 && !utf8.ValidString(v):
			p := r.problem(col, "is not UTF-8 text: save the file as UTF-8, or import it with the encoding shift_jis")
			p.Value = strings.ToValidUTF8(v, "\uFFFD")
			return &p
		case encoding == EncodingShiftJIS && strings.ContainsRune(v, utf8.RuneError):
			p := r.problem(col, "is not Shift_JIS text: import the file with the encoding utf-8 if it is UTF-8")
			return &p
		}
	}
	return nil
}

// hash is a digest of the row's values by column, the same whatever the order of the
// columns, the file's header names or its encoding: a row imported again has the same one.
func (r row) hash(k Kind) string {
	h := sha256.New()
	h.Write([]byte(k))
	for _, col := range slices.Sorted(maps.Keys(r.vals)) {
		fmt.Fprintf(h, "\x00%s=%s", col, r.vals[col])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Time layouts accepted besides RFC 3339, read in the business time zone: what spreadsheets
// write (Japanese Excel: 2024/4/1 9:30).
var localLayouts = []string{
	"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02",
	"2006/1/2 15:04:05", "2006/1/2 15:04", "2006/1/2",
}

// parseTime reads a time: RFC 3339, or a date or date and time in the business time zone.
func parseTime(s string, zone *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, zone); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: RFC 3339 (2024-04-01T09:30:00+09:00), or a date and time in the business time zone (2024-04-01 09:30, 2024/4/1 9:30, 2024-04-01)", s)
}

// parseDate reads a calendar date: 2024-04-01 or 2024/4/1.
func parseDate(s string) (domain.Date, error) {
	for _, l := range []string{domain.DateLayout, "2006/1/2"} {
		if t, err := time.Parse(l, s); err == nil {
			return domain.Date(t.Format(domain.DateLayout)), nil
		}
	}
	return "", fmt.Errorf("%q is not a date: 2024-04-01 or 2024/4/1", s)
}

// parseAmount reads an amount in minor units, thousands separated or not: 1200000 or
// 1,200,000.
func parseAmount(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.ReplaceAll(s, ",", ""), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an amount: a whole number of the currency's minor unit (yen, cents), like 1200000 or 1,200,000", s)
	}
	return n, nil
}

// occurredAt is the row's business time; zero (now) when the row has none.
func (r row) occurredAt(zone *time.Location) (time.Time, *Problem) {
	v := r.get("occurred_at")
	if v == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(v, zone)
	if err != nil {
		p := r.problem("occurred_at", "%v", err)
		return time.Time{}, &p
	}
	return t, nil
}
