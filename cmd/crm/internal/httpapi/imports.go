package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/csvimport"
	"github.com/eventcrm/crm/projections"
)

// DefaultMaxImport is the largest file POST /v1/imports accepts.
const DefaultMaxImport = 1 << 30

// importReadTime is how long the upload of a file may take: the server's read timeout is for
// requests of a page of JSON, not for a spreadsheet of 100,000 rows on a slow link.
const importReadTime = 30 * time.Minute

// keptImports is how many imports GET /v1/imports/{id} still knows; the oldest finished one
// is forgotten first.
const keptImports = 100

// maxMapping is the largest mapping part of an upload.
const maxMapping = 64 << 10

// Imports is what POST /v1/imports and GET /v1/imports/{id} need.
type Imports struct {
	// DB keeps the imports' states and reports (the read-model database: every server that
	// shares it answers for every import, and after a restart).
	DB *projections.DB
	// Dir is where uploads are spooled (created 0700; files 0600, unlinked once the import
	// has them open, so nothing is left behind when it ends or the process stops).
	Dir string
	// Zone is the business time zone.
	Zone *time.Location
	// Context ends the imports that run when the server stops.
	Context context.Context
	// Workers is how many rows an import works on at once (csvimport.DefaultWorkers when 0).
	Workers int
	// MaxBytes is the largest file accepted (DefaultMaxImport when 0).
	MaxBytes int64
}

// ImportStatus is the answer of POST /v1/imports and GET /v1/imports/{id}.
type ImportStatus struct {
	ID string `json:"id"`
	// State is running, done or failed (with Error; the rows imported until then stay, and
	// importing the file again completes it).
	State      string                     `json:"state"`
	Actor      string                     `json:"actor"`
	Progress   csvimport.ProgressSnapshot `json:"progress"`
	Report     csvimport.Report           `json:"report"`
	Error      string                     `json:"error,omitempty"`
	StartedAt  time.Time                  `json:"started_at"`
	FinishedAt *time.Time                 `json:"finished_at"`
}

// importRun is one import, running or finished.
type importRun struct {
	progress csvimport.Progress
	mu       sync.Mutex
	status   ImportStatus
}

func (ir *importRun) snapshot() ImportStatus {
	ir.mu.Lock()
	defer ir.mu.Unlock()
	st := ir.status
	st.Progress = ir.progress.Snapshot()
	return st
}

// MountImports adds POST /v1/imports, GET and DELETE /v1/imports/{id} (role admin).
func (s *Server) MountImports(im Imports) error {
	if im.MaxBytes <= 0 {
		im.MaxBytes = DefaultMaxImport
	}
	if im.Zone == nil {
		im.Zone = time.UTC
	}
	if im.Context == nil {
		im.Context = context.Background()
	}
	if err := os.MkdirAll(im.Dir, 0o700); err != nil {
		return fmt.Errorf("imports directory: %w", err)
	}
	if left, err := filepath.Glob(filepath.Join(im.Dir, "*.csv")); err == nil {
		for _, f := range left {
			_ = os.Remove(f) // an upload of a stopped process: its import ended with it
		}
	}
	reg, err := newImportRuns(im.Context, im.DB)
	if err != nil {
		return err
	}
	v1 := prefixed{s.router, "/v1"}
	v1.Handle("/imports", s.authorize(auth.PermImport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.startImport(w, r, im, reg)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/imports/"+st.ID)
		writeJSON(w, http.StatusAccepted, st)
	}))).Methods(http.MethodPost)
	s.describe(http.MethodPost, "/v1/imports", RouteDoc{Tag: "imports", Perm: auth.PermImport,
		Summary: "Import a CSV file of contacts, deals or touchpoints (text/csv, or multipart with parts file and mapping); follow it at Location",
		Params: []Param{{Name: "kind", Description: "what the rows are", Required: true, Enum: []string{"contacts", "deals", "touchpoints"}},
			boolParam("dry_run", "check every row and append nothing"), strParam("encoding", "auto (default), utf-8 or shift_jis")},
		Uploads: []string{"text/csv", "multipart/form-data"}, Answer: ImportStatus{}, Status: http.StatusAccepted,
		Problems: []int{http.StatusUnsupportedMediaType}})
	v1.Handle("/imports/{importId}", s.authorize(auth.PermImport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := mux.Vars(r)["importId"]
		st, ok, err := reg.get(r.Context(), id)
		if err == nil && !ok {
			err = noSuchImport(id)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, st)
	}))).Methods(http.MethodGet)
	s.describe(http.MethodGet, "/v1/imports/{importId}", RouteDoc{Tag: "imports", Perm: auth.PermImport,
		Summary: "An import's state, progress and report (from any server sharing the database)", Answer: ImportStatus{}, Problems: []int{http.StatusNotFound}})
	v1.Handle("/imports/{importId}", s.authorize(auth.PermImport, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := reg.remove(r.Context(), mux.Vars(r)["importId"]); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))).Methods(http.MethodDelete)
	s.describe(http.MethodDelete, "/v1/imports/{importId}", RouteDoc{Tag: "imports", Perm: auth.PermImport,
		Summary: "Forget an import that has ended, with its report", Status: http.StatusNoContent,
		Problems: []int{http.StatusNotFound, http.StatusConflict}})
	return nil
}

// importParams reads ?kind=&dry_run=&encoding=.
func importParams(r *http.Request) (csvimport.Options, error) {
	q := r.URL.Query()
	var opts csvimport.Options
	if q.Get("kind") == "" {
		return opts, badField("kind", "kind is required: contacts, deals or touchpoints")
	}
	kind, err := csvimport.ParseKind(q.Get("kind"))
	if err != nil {
		return opts, badField("kind", "%v", err)
	}
	opts.Kind = kind
	if v := q.Get("dry_run"); v != "" {
		if opts.DryRun, err = strconv.ParseBool(v); err != nil {
			return opts, badField("dry_run", "dry_run %q is not true or false", v)
		}
	}
	if opts.Encoding, err = csvimport.ParseEncoding(q.Get("encoding")); err != nil {
		return opts, badField("encoding", "%v", err)
	}
	return opts, nil
}

// startImport spools the upload, checks its header and starts the import.
func (s *Server) startImport(w http.ResponseWriter, r *http.Request, im Imports, reg *importRuns) (ImportStatus, error) {
	opts, err := importParams(r)
	if err != nil {
		return ImportStatus{}, err
	}
	opts.Actor, opts.Zone, opts.Workers = principal(r.Context()).Name, im.Zone, im.Workers
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(importReadTime))
	r.Body = http.MaxBytesReader(w, r.Body, im.MaxBytes)
	id := newImportID()
	path := filepath.Join(im.Dir, id+".csv")
	size, mapping, err := spoolUpload(r, path)
	if err != nil {
		_ = os.Remove(path)
		return ImportStatus{}, err
	}
	if mapping != nil {
		opts.Mapping = mapping
	}
	file, err := os.Open(path)
	if err == nil {
		_ = os.Remove(path) // open, it stays readable; removed, nothing is left behind
	}
	if err != nil {
		return ImportStatus{}, fmt.Errorf("open the spooled upload: %w", err)
	}
	ir := &importRun{status: ImportStatus{ID: id, State: importRunning, Actor: opts.Actor, StartedAt: time.Now().UTC()}}
	f, err := csvimport.Open(file, size, opts, &ir.progress)
	var he *csvimport.HeaderError
	if errors.As(err, &he) {
		file.Close()
		return ImportStatus{}, badField("file", "%s", he.Msg)
	}
	if err != nil {
		file.Close()
		return ImportStatus{}, err
	}
	ir.status.Report = csvimport.Report{Kind: opts.Kind, DryRun: opts.DryRun, Encoding: f.Encoding(), Problems: []csvimport.Problem{}}
	if err := reg.add(r.Context(), ir); err != nil {
		file.Close()
		return ImportStatus{}, err
	}
	done := make(chan struct{})
	go func() {
		if err := reg.follow(im.Context, ir, done); err != nil {
			s.log.Error("import state not recorded", zap.String("import_id", id), zap.Error(err))
		}
	}()
	go func() {
		defer close(done)
		defer file.Close()
		rep, err := csvimport.Run(im.Context, s.cmds, f, opts, &ir.progress)
		ir.mu.Lock()
		defer ir.mu.Unlock()
		now := time.Now().UTC()
		ir.status.Report, ir.status.FinishedAt, ir.status.State = rep, &now, importDone
		if err != nil {
			ir.status.State, ir.status.Error = importFailed, err.Error()
			s.log.Error("import failed", zap.String("import_id", id), zap.Error(err))
		}
	}()
	return ir.snapshot(), nil
}

// spoolUpload writes the uploaded file to path: the body itself (text/csv), or the part
// "file" of a multipart/form-data body, whose part "mapping" is the mapping file's JSON.
func spoolUpload(r *http.Request, path string) (size int64, mapping map[string]string, err error) {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("spool the upload: %w", err)
	}
	defer out.Close()
	ct := r.Header.Get("Content-Type")
	media, _, _ := mime.ParseMediaType(ct)
	switch media {
	case "text/csv", "application/octet-stream", "":
		size, err = io.Copy(out, r.Body)
		if err != nil {
			return 0, nil, bodyReadError(err)
		}
	case "multipart/form-data":
		if size, mapping, err = spoolParts(r, out); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, unsupportedUpload(ct, "text/csv, or multipart/form-data with the parts file and mapping")
	}
	if err := out.Close(); err != nil {
		return 0, nil, fmt.Errorf("spool the upload: %w", err)
	}
	return size, mapping, nil
}

func spoolParts(r *http.Request, out io.Writer) (size int64, mapping map[string]string, err error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return 0, nil, badField("Content-Type", "%v", err)
	}
	gotFile := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, bodyReadError(err)
		}
		switch part.FormName() {
		case "file":
			if size, err = io.Copy(out, part); err != nil {
				return 0, nil, bodyReadError(err)
			}
			gotFile = true
		case "mapping":
			b, err := io.ReadAll(io.LimitReader(part, maxMapping+1))
			if err != nil {
				return 0, nil, bodyReadError(err)
			}
			if len(b) > maxMapping {
				return 0, nil, badField("mapping", "the mapping is longer than %d bytes", maxMapping)
			}
			if err := json.Unmarshal(b, &mapping); err != nil {
				return 0, nil, badField("mapping", "want a JSON object of header names to column names: %v", err)
			}
		default:
			return 0, nil, badField(part.FormName(), "unknown part %q: send file and, optionally, mapping", part.FormName())
		}
	}
	if !gotFile {
		return 0, nil, badField("file", "the part file is missing")
	}
	return size, mapping, nil
}

// bodyReadError is an upload that could not be read: too large, too slow or cut.
func bodyReadError(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return err
	}
	return &bodyError{err: err}
}

func newImportID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
