package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"

	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
)

// upload posts a file to /v1/imports.
func (a *wholeAPI) upload(t *testing.T, query, token, contentType string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.url+"/v1/imports"+query, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// importDone posts a file and follows its import to its end.
func (a *wholeAPI) importDone(t *testing.T, query, contentType string, body []byte) httpapi.ImportStatus {
	t.Helper()
	r := a.upload(t, query, adminToken, contentType, body)
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /v1/imports%s: %d %s", query, r.status, r.body)
	}
	var st httpapi.ImportStatus
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	if loc := r.header.Get("Location"); loc != "/v1/imports/"+st.ID {
		t.Fatalf("Location %q for import %s", loc, st.ID)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for st.State == "running" {
		if time.Now().After(deadline) {
			t.Fatalf("import %s still running: %+v", st.ID, st)
		}
		time.Sleep(20 * time.Millisecond)
		g := a.send(t, http.MethodGet, "/v1/imports/"+st.ID, adminToken, "")
		if g.status != http.StatusOK {
			t.Fatalf("GET /v1/imports/%s: %d %s", st.ID, g.status, g.body)
		}
		st = httpapi.ImportStatus{}
		if err := json.Unmarshal(g.body, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.State != "done" || st.FinishedAt == nil || st.Actor != "root" {
		t.Fatalf("import %+v", st)
	}
	if p := st.Progress; p.Percent != 100 || p.Rows != st.Report.Rows || p.BytesRead != int64(len(body)) && !strings.HasPrefix(contentType, "multipart") {
		t.Fatalf("progress at the end %+v of %d bytes, report %+v", p, len(body), st.Report)
	}
	return st
}

// contactsCSV is a contacts file of n good rows (keys k0000…) and two bad ones.
func contactsCSV(n int) []byte {
	var b strings.Builder
	b.WriteString("key,name,email,company,channel,phase,occurred_at\n")
	for i := range n {
		fmt.Fprintf(&b, "k%04d,Contact %04d,c%04d@example.com,会社 %d,web_form,approach,2024-04-01T09:00:00Z\n", i, i, i, i%7)
	}
	b.WriteString("bad1,Bad Email,bad@,,web_form,,\nbad2,Bad Channel,,,fax,,\n")
	return []byte(b.String())
}

func multipartBody(t *testing.T, file []byte, mapping string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	if mapping != "" {
		if err := w.WriteField("mapping", mapping); err != nil {
			t.Fatal(err)
		}
	}
	part, err := w.CreateFormFile("file", "顧客.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Write(file); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), buf.Bytes()
}

func TestImportsOverHTTP(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			file := contactsCSV(300)
			st := a.importDone(t, "?kind=contacts", "text/csv", file)
			rep := st.Report
			if rep.Rows != 302 || rep.Created != 300 || rep.Refused != 2 || len(rep.Problems) != 2 ||
				rep.Problems[0].Row != 302 || rep.Problems[0].Column != "email" || rep.Problems[1].Column != "channel" {
				t.Fatalf("first import %+v", rep)
			}
			head := a.head(t)
			st = a.importDone(t, "?kind=contacts", "text/csv; charset=utf-8", file)
			if st.Report.Skipped != 300 || st.Report.Created != 0 || st.Report.Refused != 2 || a.head(t) != head {
				t.Fatalf("the same file again appended %d events: %+v", a.head(t)-head, st.Report)
			}

			// Shift_JIS, with Japanese headers mapped, as a dry run: nothing appended.
			sjis, err := japanese.ShiftJIS.NewEncoder().String("顧客番号,氏名,流入経路\nj1,佐藤 花子,seminar\nj2,田中,ファクス\n")
			if err != nil {
				t.Fatal(err)
			}
			ct, body := multipartBody(t, []byte(sjis), `{"顧客番号":"key","氏名":"name","流入経路":"channel"}`)
			st = a.importDone(t, "?kind=contacts&dry_run=true", ct, body)
			if r := st.Report; !r.DryRun || r.Encoding != "shift_jis" || r.Valid != 1 || r.Refused != 1 ||
				r.Problems[0].Column != "流入経路" || r.Problems[0].Value != "ファクス" || a.head(t) != head {
				t.Fatalf("dry run %+v", r)
			}
			st = a.importDone(t, "?kind=contacts&encoding=shift_jis", ct, body)
			if r := st.Report; r.Created != 1 || r.Refused != 1 {
				t.Fatalf("Shift_JIS import %+v", r)
			}
			// Touchpoints of the imported contacts, by key.
			st = a.importDone(t, "?kind=touchpoints", "text/csv", []byte("contact_key,kind,note,occurred_at\nk0001,call,折り返し,2024-04-02T10:00:00Z\nj1,meeting,,2024-04-03\n"))
			if r := st.Report; r.Created != 2 || r.Refused != 0 {
				t.Fatalf("touchpoints %+v", r)
			}
			// An ended import is forgotten on request, with its report.
			if r := a.send(t, http.MethodDelete, "/v1/imports/"+st.ID, adminToken, ""); r.status != http.StatusNoContent {
				t.Fatalf("DELETE /v1/imports/%s: %d %s", st.ID, r.status, r.body)
			}
			for _, method := range []string{http.MethodGet, http.MethodDelete} {
				if r := a.send(t, method, "/v1/imports/"+st.ID, adminToken, ""); r.status != http.StatusNotFound {
					t.Fatalf("%s of a forgotten import: %d %s", method, r.status, r.body)
				}
			}
		})
	}
}

func TestImportRefusals(t *testing.T) {
	a := newWholeAPI(t, backends()[0])
	good := []byte("name,channel\nYui,seminar\n")
	tests := []struct {
		name, query, token, contentType string
		body                            []byte
		status                          int
		field                           string
	}{
		{"no kind", "", adminToken, "text/csv", good, http.StatusBadRequest, "kind"},
		{"unknown kind", "?kind=leads", adminToken, "text/csv", good, http.StatusBadRequest, "kind"},
		{"dry_run not a bool", "?kind=contacts&dry_run=maybe", adminToken, "text/csv", good, http.StatusBadRequest, "dry_run"},
		{"unknown encoding", "?kind=contacts&encoding=latin1", adminToken, "text/csv", good, http.StatusBadRequest, "encoding"},
		{"unknown column", "?kind=contacts", adminToken, "text/csv", []byte("name,channel,memo\n"), http.StatusBadRequest, "file"},
		{"missing column", "?kind=deals", adminToken, "text/csv", good, http.StatusBadRequest, "file"},
		{"empty file", "?kind=contacts", adminToken, "text/csv", nil, http.StatusBadRequest, "file"},
		{"JSON", "?kind=contacts", adminToken, "application/json", []byte(`{}`), http.StatusUnsupportedMediaType, ""},
		{"not an admin", "?kind=contacts", appToken, "text/csv", good, http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.upload(t, tt.query, tt.token, tt.contentType, tt.body)
			if r.status != tt.status {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.status)
			}
			if got := r.json(t)["field"]; tt.field != "" && got != tt.field {
				t.Fatalf("field %v, want %s: %s", got, tt.field, r.body)
			}
		})
	}
	if r := a.send(t, http.MethodGet, "/v1/imports/nope", adminToken, ""); r.status != http.StatusNotFound {
		t.Fatalf("unknown import: %d %s", r.status, r.body)
	}
	if n := a.head(t); n != 0 {
		t.Fatalf("refused imports appended %d events", n)
	}
}

// An upload may take longer than the server's read timeout: a spreadsheet is not a command.
func TestImportUploadOutlastsTheReadTimeout(t *testing.T) {
	a := newWholeAPI(t, backends()[0])
	slow := httptest.NewUnstartedServer(a.handler)
	slow.Config.ReadTimeout = 100 * time.Millisecond
	slow.Start()
	defer slow.Close()
	body, w := io.Pipe()
	go func() {
		_, _ = io.WriteString(w, "name,channel\nYui,seminar\n")
		time.Sleep(400 * time.Millisecond)
		_, _ = io.WriteString(w, "Ken,referral\n")
		_ = w.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, slow.URL+"/v1/imports?kind=contacts", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var st httpapi.ImportStatus
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(out, &st) != nil || st.Progress.BytesTotal != 38 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
}
