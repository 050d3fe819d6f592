package csvimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"
)

// sniffSize is how much of a file decides its encoding when it is not named.
const sniffSize = 64 << 10

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// File is a CSV file being read: its encoding decided, its header checked.
type File struct {
	kind     kind
	encoding string
	csv      *csv.Reader
	// columns[i] is the column of the file's i-th field ("" when ignored); headers[i] its
	// name in the file.
	columns []string
	headers []string
	// line is the spreadsheet row number of the record last read (the header is 1).
	line int64
}

// Open reads the header of a file of the kind in opts, after deciding its encoding: a byte
// order mark means UTF-8, and so does a start that is valid UTF-8; anything else is read as
// Shift_JIS. progress (may be nil) counts the bytes read of size (0 when unknown). A file
// that cannot be imported at all is a *HeaderError.
func Open(r io.Reader, size int64, opts Options, progress *Progress) (*File, error) {
	k, ok := kinds[opts.Kind]
	if !ok {
		return nil, &HeaderError{fmt.Sprintf("%q is not a kind of file: contacts, deals or touchpoints", opts.Kind)}
	}
	enc, err := ParseEncoding(opts.Encoding)
	if err != nil {
		return nil, &HeaderError{err.Error()}
	}
	if progress == nil {
		progress = &Progress{}
	}
	progress.bytesTotal.Store(size)
	br := bufio.NewReaderSize(countingReader{r, &progress.bytesRead}, sniffSize)
	head, err := br.Peek(sniffSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read the file: %w", err)
	}
	if bytes.HasPrefix(head, utf8BOM) {
		if enc == EncodingShiftJIS {
			return nil, &HeaderError{"the file starts with a UTF-8 byte order mark: it is not Shift_JIS"}
		}
		enc = EncodingUTF8
		_, _ = br.Discard(len(utf8BOM))
	} else if enc == EncodingAuto {
		enc = detect(head, len(head) < sniffSize)
	}
	var text io.Reader = br
	if enc == EncodingShiftJIS {
		text = transform.NewReader(br, japanese.ShiftJIS.NewDecoder())
	}
	cr := csv.NewReader(text)
	cr.FieldsPerRecord = -1 // a short or long row is that row's problem, not the file's
	cr.ReuseRecord = true
	f := &File{kind: k, encoding: enc, csv: cr}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &HeaderError{"the file is empty: it needs a header row"}
	}
	if err != nil {
		return nil, &HeaderError{fmt.Sprintf("the header row is not CSV: %v", err)}
	}
	f.line = 1
	if err := f.mapHeader(header, opts.Mapping); err != nil {
		return nil, err
	}
	return f, nil
}

// Encoding is the file's encoding, as named or detected.
func (f *File) Encoding() string { return f.encoding }

// detect tells UTF-8 from Shift_JIS by the start of a file: valid UTF-8 (a character cut at
// the end of the sample aside) is UTF-8. Shift_JIS text of any length is almost never valid
// UTF-8, and ASCII is both.
func detect(head []byte, whole bool) string {
	if !whole {
		// Drop a character the sample may have cut.
		for i := 0; i < utf8.UTFMax && len(head) > 0 && !utf8.RuneStart(head[len(head)-1]); i++ {
			head = head[:len(head)-1]
		}
		if len(head) > 0 && head[len(head)-1] >= utf8.RuneSelf {
			head = head[:len(head)-1]
		}
	}
	if utf8.Valid(head) {
		return EncodingUTF8
	}
	return EncodingShiftJIS
}

// mapHeader names the column of every field of the header and checks that the kind's
// required columns are there.
func (f *File) mapHeader(header []string, mapping map[string]string) error {
	known := f.kind.columns()
	seen := map[string]string{}
	for i, h := range header {
		name := strings.TrimSpace(h)
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF") // a BOM inside Shift_JIS-declared text
		}
		col, mapped := mapping[name]
		if !mapped {
			col = name
		}
		if col != "" && !slices.Contains(known, col) {
			return &HeaderError{fmt.Sprintf("column %q is not a column of %s files (%s): name it so, or map it in a mapping file (to \"\" to ignore it)",
				name, f.kind.name(), strings.Join(known, ", "))}
		}
		if col != "" {
			if other, dup := seen[col]; dup {
				return &HeaderError{fmt.Sprintf("columns %q and %q are both %s", other, name, col)}
			}
			seen[col] = name
		}
		f.columns = append(f.columns, col)
		f.headers = append(f.headers, name)
	}
	for _, alternatives := range f.kind.required() {
		found := slices.ContainsFunc(alternatives, func(c string) bool { _, ok := seen[c]; return ok })
		if !found {
			return &HeaderError{fmt.Sprintf("%s files need a column %s", f.kind.name(), strings.Join(alternatives, " or "))}
		}
	}
	return nil
}

// next reads the next data row; io.EOF at the end. A row that is not CSV, or has more or
// fewer fields than the header, comes back with its problem.
func (f *File) next() (row, *Problem, error) {
	for {
		rec, err := f.csv.Read()
		if errors.Is(err, io.EOF) {
			return row{}, nil, io.EOF
		}
		line, _ := f.csv.FieldPos(0)
		f.line++
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return row{n: f.line}, &Problem{Row: f.line, Why: fmt.Sprintf("not CSV at line %d of the file: %v", pe.Line, pe.Err)}, nil
		}
		if err != nil {
			return row{}, nil, fmt.Errorf("read line %d: %w", line, err)
		}
		if blank(rec) {
			continue // Excel writes rows of empty cells after the data
		}
		if len(rec) != len(f.columns) {
			return row{n: f.line}, &Problem{Row: f.line, Why: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(f.columns))}, nil
		}
		r := row{n: f.line, vals: make(map[string]string, len(rec)), headers: make(map[string]string, len(rec))}
		for i, v := range rec {
			if col := f.columns[i]; col != "" {
				r.vals[col] = strings.TrimSpace(v)
				r.headers[col] = f.headers[i]
			}
		}
		if p := r.undecodable(f.encoding); p != nil {
			return r, p, nil
		}
		return r, nil, nil
	}
}

func blank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n interface{ Add(int64) int64 }
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
