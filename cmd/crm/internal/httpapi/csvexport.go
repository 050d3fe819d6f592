package httpapi

import (
	"encoding/csv"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/runtime"
)

// exportPage is the page size an export reads its list with.
const exportPage = 500

// exportWriteTime is how long an export may take to be written: the server's write timeout is
// for an answer of a page, not for every contact of a large directory to a slow client.
const exportWriteTime = 30 * time.Minute

// csvExport writes every row of a read-model question as CSV: it reads the list page by page
// and calls out.header before its first row, once the first page has been read (a bad
// parameter is still a problem answer then).
type csvExport func(r *http.Request, rd read, out *csvOut) error

// csvExports are the read-model routes that also answer CSV.
var csvExports = map[string]csvExport{
	"/contacts":       exportContacts,
	"/deals":          exportDeals,
	"/accounts":       exportAccounts,
	"/pipeline/board": exportBoard,
}

// wantsCSV tells whether a request asks for CSV: ?format=csv, or an Accept that names text/csv
// before application/json. ?format=json asks for JSON whatever Accept says.
func wantsCSV(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, badField("format", "format %q is not csv or json", f)
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		media, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch media {
		case "text/csv":
			return true, nil
		case "application/json", "application/*", "*/*":
			return false, nil
		}
	}
	return false, nil
}

// orCSV answers a request that asks for CSV with exp, and the others with h. A route without
// an export refuses ?format=csv.
func (s *Server) orCSV(h http.Handler, rm ReadModels, projection string, exp csvExport) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		csvAsked, err := wantsCSV(r)
		switch {
		case err != nil:
			s.writeError(w, r, err)
		case csvAsked && exp == nil && r.URL.Query().Get("format") == "csv":
			s.writeError(w, r, badField("format", "this question has no CSV form: the contacts, deals and accounts lists, the board, the KPIs and the customers have one"))
		case csvAsked && exp != nil:
			if err := s.exportCSV(w, r, rm, projection, exp); err != nil {
				s.writeError(w, r, err)
			}
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// exportCSV streams the whole answer of a question as CSV, every page, from one set of the
// projection's tables: the live one (a rebuild's switch waits for the export), or with
// at_position/known_at the set as it stood then. Its freshness is in the headers. A failure after the first row cuts the answer off, so the client sees an error
// rather than a short file.
func (s *Server) exportCSV(w http.ResponseWriter, r *http.Request, rm ReadModels, projection string, exp csvExport) error {
	q := r.URL.Query()
	bom := false
	if v := q.Get("bom"); v != "" {
		var err error
		if bom, err = strconv.ParseBool(v); err != nil {
			return badField("bom", "bom %q is not true or false", v)
		}
	}
	var (
		f      runtime.Freshness
		source read
	)
	tp, past, err := timeTravelParams(r)
	switch {
	case err != nil:
		return err
	case past:
		set, release, rr, err := s.travelSet(r, rm, projection, tp)
		if err != nil {
			return err
		}
		defer release()
		r, f, source = rr, travelFreshness(projection, set, tp), read{db: set.DB, t: set.Tables, memo: direct}
	default:
		var minPosition int64
		if v := q.Get("min_position"); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return badField("min_position", "min_position %q is not a log position", v)
			}
			minPosition = n
		}
		if f, err = rm.Runner.WaitFor(r.Context(), projection, minPosition, rm.MaxWait); err != nil {
			return err
		}
		tables, release, err := rm.Runner.Read(projection)
		if err != nil {
			return err
		}
		defer release()
		source = read{db: rm.Runner.DB(), t: tables, memo: direct}
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(exportWriteTime))
	out := &csvOut{w: w, bom: bom, fresh: f, name: exportName(r)}
	err = exp(r, source, out)
	if err == nil {
		err = out.flush()
	}
	if err != nil && out.cw != nil {
		s.log.Error("CSV export cut off", zap.String("request_id", requestID(r.Context())), zap.String("path", r.URL.Path), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.CodeInvalid {
		return badField(de.Field, "%s", de.Error())
	}
	return err
}

// exportName is the file name offered for a question: its last path segment.
func exportName(r *http.Request) string {
	p := strings.TrimSuffix(r.URL.Path, "/")
	return p[strings.LastIndex(p, "/")+1:] + ".csv"
}

// csvOut is the CSV answer being written.
type csvOut struct {
	w     http.ResponseWriter
	bom   bool
	fresh runtime.Freshness
	name  string
	cw    *csv.Writer
}

// header starts the answer: status, headers (freshness included), the byte order mark when
// asked, and the header row; once (a later call does nothing).
func (o *csvOut) header(cols ...string) error {
	if o.cw != nil {
		return nil
	}
	h := o.w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+o.name+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderPosition, strconv.FormatInt(o.fresh.Position, 10))
	h.Set(HeaderLagEvents, strconv.FormatInt(o.fresh.Lag.Events, 10))
	h.Set(HeaderLagSeconds, strconv.FormatFloat(o.fresh.Lag.Seconds, 'f', 3, 64))
	if o.fresh.Stale {
		h.Set(HeaderStale, "true")
	}
	if o.fresh.AtPosition != nil {
		h.Set(HeaderAtPosition, strconv.FormatInt(*o.fresh.AtPosition, 10))
	}
	o.w.WriteHeader(http.StatusOK)
	if o.bom {
		if _, err := o.w.Write([]byte("\uFEFF")); err != nil {
			return err
		}
	}
	o.cw = csv.NewWriter(o.w)
	return o.cw.Write(cols)
}

func (o *csvOut) row(vals ...string) error { return o.cw.Write(vals) }

func (o *csvOut) flush() error {
	if o.cw == nil {
		return nil
	}
	o.cw.Flush()
	return o.cw.Error()
}

// Values as the JSON answers write them.
func csvTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func csvTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return csvTime(*t)
}

func csvInt(n int64) string { return strconv.FormatInt(n, 10) }

// pages reads a list page after page until next says there is none, writing the header row
// once the first page is in.
func pages[P any](out *csvOut, cols []string, read func(cursor string) (P, string, error), rows func(P) error) error {
	cursor := ""
	for first := true; ; first = false {
		page, next, err := read(cursor)
		if err != nil {
			return err
		}
		if first {
			if err := out.header(cols...); err != nil {
				return err
			}
		}
		if err := rows(page); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

func exportContacts(r *http.Request, rd read, out *csvOut) error {
	if _, err := listParams(r); err != nil {
		return err
	}
	p := contactParams(r.URL.Query())
	p.Limit = exportPage
	cols := []string{"contact_id", "name", "email", "phone", "company", "account_id", "account_name", "phase", "phase_since",
		"owner", "segment", "channel", "created_at", "last_activity", "open_deals", "opted_out"}
	return pages(out, cols, func(cursor string) (directory.Contacts, string, error) {
		p.Cursor = cursor
		page, err := directory.QueryContacts(r.Context(), rd.db, rd.t, p)
		return page, page.NextCursor, err
	}, func(page directory.Contacts) error {
		for _, c := range page.Contacts {
			var accountID, accountName string
			if c.Account != nil {
				accountID, accountName = c.Account.AccountID, c.Account.Name
			}
			if err := out.row(c.ContactID, c.Name, c.Email, c.Phone, c.Company, accountID, accountName, string(c.Phase),
				csvTime(c.PhaseSince), c.Owner, c.Segment, c.Channel, csvTime(c.CreatedAt), csvTimePtr(c.LastActivity),
				csvInt(c.OpenDeals), strings.Join(c.OptedOut, " ")); err != nil {
				return err
			}
		}
		return nil
	})
}

func exportDeals(r *http.Request, rd read, out *csvOut) error {
	if _, err := listParams(r); err != nil {
		return err
	}
	p := dealParams(r.URL.Query())
	p.Limit, p.At = exportPage, now(r)
	cols := []string{"deal_id", "title", "contact_id", "counts_for", "contact_name", "account_id", "owner", "amount", "currency",
		"status", "stage", "probability", "expected_close", "closed_on", "lost_reason", "opened_at"}
	return pages(out, cols, func(cursor string) (directory.Deals, string, error) {
		p.Cursor = cursor
		page, err := directory.QueryDeals(r.Context(), rd.db, rd.t, p)
		return page, page.NextCursor, err
	}, func(page directory.Deals) error {
		for _, d := range page.Deals {
			if err := out.row(d.DealID, d.Title, d.ContactID, d.CountsFor, d.ContactName, d.AccountID, d.Owner,
				csvInt(d.Amount.Amount), d.Amount.Currency, d.Status, string(d.Stage), strconv.Itoa(d.Probability),
				string(d.ExpectedClose), string(d.ClosedOn), d.LostReason, csvTime(d.OpenedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

func exportAccounts(r *http.Request, rd read, out *csvOut) error {
	if _, err := listParams(r); err != nil {
		return err
	}
	q := r.URL.Query()
	p := directory.AccountParams{Q: q.Get("q"), Sort: q.Get("sort"), Limit: exportPage}
	cols := []string{"account_id", "name", "domain", "industry", "size", "created_at", "contacts", "last_activity"}
	return pages(out, cols, func(cursor string) (directory.Accounts, string, error) {
		p.Cursor = cursor
		page, err := directory.QueryAccounts(r.Context(), rd.db, rd.t, p)
		return page, page.NextCursor, err
	}, func(page directory.Accounts) error {
		for _, a := range page.Accounts {
			if err := out.row(a.AccountID, a.Name, a.Domain, a.Industry, a.Size, csvTime(a.CreatedAt), csvInt(a.Contacts),
				csvTimePtr(a.LastActivity)); err != nil {
				return err
			}
		}
		return nil
	})
}

// exportBoard writes every card of the board, stage after stage in pipeline order (the cards
// of a stage as the board orders them), all at one as_of (default now).
func exportBoard(r *http.Request, rd read, out *csvOut) error {
	asOf, err := asOfParam(r, true)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	stages := deal.OpenStages()
	if s := q.Get("stage"); s != "" {
		stages = []deal.Stage{deal.Stage(s)}
	}
	cols := []string{"stage", "probability", "deal_id", "title", "contact_id", "contact_name", "owner", "amount", "currency",
		"weighted_amount", "expected_close", "stage_entered_at", "days_in_stage"}
	for _, stage := range stages {
		p := board.Params{AsOf: asOf, Owner: q.Get("owner"), Stage: string(stage), Limit: board.MaxLimit}
		err := pages(out, cols, func(cursor string) (board.Column, string, error) {
			p.Cursor = cursor
			ans, err := board.Query(r.Context(), rd.db, rd.t, p)
			if err != nil || len(ans.Stages) == 0 {
				return board.Column{}, "", err
			}
			return ans.Stages[0], ans.Stages[0].NextCursor, nil
		}, func(col board.Column) error {
			for _, c := range col.Cards {
				if err := out.row(string(col.Stage), strconv.Itoa(col.Probability), c.DealID, c.Title, c.ContactID,
					c.ContactName, c.Owner, csvInt(c.Amount.Amount), c.Amount.Currency, csvInt(c.WeightedAmount),
					string(c.ExpectedClose), csvTime(c.StageEnteredAt), csvFloat(&c.DaysInStage)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
