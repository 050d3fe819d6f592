// Package csvimport brings the contacts, deals and touchpoints a sales team keeps in
// spreadsheets into the log, through the command handler: a file is read as it streams (never
// held in memory), row by row, each row becoming the commands it stands for, with idempotency
// keys derived from the row so that importing a file again appends nothing.
//
// A file has a header row; its columns are named as the Columns of its kind say, or mapped
// to them by a mapping (a file's own header name -> column name). Files are UTF-8, with or
// without a byte order mark, or Shift_JIS (code page 932, as Japanese Excel saves CSV),
// detected or named.
package csvimport

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Kind is what a file holds.
type Kind string

// Kinds of files.
const (
	Contacts    Kind = "contacts"
	Deals       Kind = "deals"
	Touchpoints Kind = "touchpoints"
)

// Kinds lists the kinds of files, in the order an import of a whole history takes them.
func Kinds() []Kind { return []Kind{Contacts, Deals, Touchpoints} }

// ParseKind checks the name of a kind.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if !slices.Contains(Kinds(), k) {
		return "", fmt.Errorf("%q is not a kind of file: contacts, deals or touchpoints", s)
	}
	return k, nil
}

// Encodings of files.
const (
	EncodingAuto     = "auto"
	EncodingUTF8     = "utf-8"
	EncodingShiftJIS = "shift_jis"
)

// ParseEncoding names an encoding: auto (or empty), utf-8 (utf8), shift_jis (sjis, cp932,
// windows-31j), in any case.
func ParseEncoding(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", EncodingAuto:
		return EncodingAuto, nil
	case EncodingUTF8, "utf8":
		return EncodingUTF8, nil
	case EncodingShiftJIS, "shift-jis", "sjis", "cp932", "windows-31j", "ms932":
		return EncodingShiftJIS, nil
	}
	return "", fmt.Errorf("%q is not an encoding: auto, utf-8 or shift_jis", s)
}

// Options are what one import needs besides its file.
type Options struct {
	Kind Kind
	// Encoding is auto (detected), utf-8 or shift_jis.
	Encoding string
	// Mapping maps a header of the file to a column name; a header mapped to "" is ignored.
	Mapping map[string]string
	// DryRun checks every row, as the commands would, and appends nothing.
	DryRun bool
	// Actor is recorded on every event; idempotency keys are the actor's, so the same file
	// imported by the same actor appends nothing the second time.
	Actor string
	// Zone is the business time zone: a time or date without a zone is taken in it.
	Zone *time.Location
	// Workers is how many rows are imported at once (default 16): commands of different
	// rows share the store's commits.
	Workers int
}

// Problem is a bad row, or a row the commands refused: Row numbers rows as a spreadsheet
// does (the header is row 1); Column is the file's own header name, empty when the row as a
// whole is wrong. Value is empty, and Why does not quote it, for a column of personal data.
type Problem struct {
	Row    int64  `json:"row"`
	Column string `json:"column"`
	Value  string `json:"value"`
	Why    string `json:"why"`
}

// Report is what an import did, or, for a dry run, found. Rows counts the data rows read;
// each is counted once in Created, Updated, Skipped (imported before: nothing appended) or
// Refused (bad, or refused by the business rules: Problems says why). A dry run counts the
// rows it would import as Valid.
type Report struct {
	Kind     Kind   `json:"kind"`
	DryRun   bool   `json:"dry_run"`
	Encoding string `json:"encoding"`
	Rows     int64  `json:"rows"`
	Valid    int64  `json:"valid,omitempty"`
	Created  int64  `json:"created"`
	Updated  int64  `json:"updated"`
	Skipped  int64  `json:"skipped"`
	Refused  int64  `json:"refused"`
	// Position is the highest log position of the events of the rows imported or skipped (0
	// for a dry run): pass it as min_position to read them in the read models.
	Position int64     `json:"position"`
	Problems []Problem `json:"problems"`
}

// Progress is how far an import is; it is read while the import runs.
type Progress struct {
	bytesRead  atomic.Int64
	bytesTotal atomic.Int64
	rows       atomic.Int64
}

// ProgressSnapshot is Progress at one moment.
type ProgressSnapshot struct {
	// BytesRead of BytesTotal (0 when the size is not known) of the file.
	BytesRead  int64 `json:"bytes_read"`
	BytesTotal int64 `json:"bytes_total"`
	// Rows is the number of data rows done.
	Rows int64 `json:"rows"`
	// Percent is BytesRead / BytesTotal, to one decimal.
	Percent float64 `json:"percent"`
}

// Snapshot reads the progress.
func (p *Progress) Snapshot() ProgressSnapshot {
	s := ProgressSnapshot{BytesRead: p.bytesRead.Load(), BytesTotal: p.bytesTotal.Load(), Rows: p.rows.Load()}
	if s.BytesTotal > 0 {
		s.Percent = float64(s.BytesRead*1000/s.BytesTotal) / 10
	}
	return s
}

// HeaderError is a file that cannot be imported at all: its header lacks a required column,
// names one that is not known, or the file is not CSV.
type HeaderError struct{ Msg string }

func (e *HeaderError) Error() string { return e.Msg }
