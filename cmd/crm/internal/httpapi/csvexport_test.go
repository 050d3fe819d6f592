package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// getCSV asks a question for CSV, by ?format=csv or by Accept.
func (a *wholeAPI) getCSV(t *testing.T, path string, accept bool) (response, [][]string) {
	t.Helper()
	if !accept {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "format=csv"
	}
	req, err := http.NewRequest(http.MethodGet, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+appToken)
	if accept {
		req.Header.Set("Accept", "text/csv, application/json;q=0.5")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: body}
	if r.status != http.StatusOK {
		return r, nil
	}
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	records, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\uFEFF")))).ReadAll()
	if err != nil {
		t.Fatalf("GET %s: the answer is not CSV: %v", path, err)
	}
	return r, records
}

// jsonRows pages through a JSON list, all of it, and returns its rows as objects.
func (a *wholeAPI) jsonRows(t *testing.T, path, member string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	cursor := ""
	for {
		r := a.send(t, http.MethodGet, path+"&limit=50&cursor="+url.QueryEscape(cursor), appToken, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		var ans struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.body, &ans); err != nil {
			t.Fatal(err)
		}
		var page []map[string]any
		if err := json.Unmarshal(ans.Data[member], &page); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, page...)
		next := ans.Data["next_cursor"]
		if next == nil {
			return rows
		}
		if err := json.Unmarshal(next, &cursor); err != nil {
			t.Fatal(err)
		}
	}
}

// cell is what CSV column col holds of a JSON row: strings as they are, numbers in full,
// null as nothing, lists joined by spaces, the contact's account and a money amount split in
// their columns.
func cell(t *testing.T, row map[string]any, col string) string {
	t.Helper()
	v, ok := row[col]
	if acc, isMap := row["account"].(map[string]any); !ok && isMap && strings.HasPrefix(col, "account_") {
		v, ok = acc[strings.TrimPrefix(col, "account_")], true
		if col == "account_id" {
			v = acc["account_id"]
		}
	} else if _, isNull := row["account"]; !ok && isNull && strings.HasPrefix(col, "account_") {
		v, ok = nil, true
	}
	if m, isMap := row["amount"].(map[string]any); isMap && (col == "amount" || col == "currency") {
		v, ok = m[col], true
	}
	if !ok {
		v = nil // left out of the JSON when empty
	}
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		var parts []string
		for _, p := range x {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, " ")
	}
	t.Fatalf("column %s: JSON value %v", col, v)
	return ""
}

// sameRows compares a CSV answer with the JSON rows of the same question.
func sameRows(t *testing.T, what string, records [][]string, rows []map[string]any, extra func(row map[string]any, col string) (string, bool)) {
	t.Helper()
	if len(records) != len(rows)+1 {
		t.Fatalf("%s: %d CSV rows, %d JSON rows", what, len(records)-1, len(rows))
	}
	header := records[0]
	for i, row := range rows {
		for j, col := range header {
			want, done := "", false
			if extra != nil {
				want, done = extra(row, col)
			}
			if !done {
				want = cell(t, row, col)
			}
			if got := records[i+1][j]; got != want {
				t.Fatalf("%s row %d column %s: CSV %q, JSON %q", what, i+1, col, got, want)
			}
		}
	}
}

func TestCSVExportEqualsJSON(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			// More contacts than one page of the export holds.
			a.importDone(t, "?kind=contacts", "text/csv", contactsCSV(1100))
			accountID, _ := a.post(t, "/v1/accounts", `{"name":"田中商事","domain":"tanaka.example"}`)
			contactID, _ := a.post(t, "/v1/contacts", `{"name":"佐藤, \"花子\"","email":"hanako@tanaka.example","channel":"seminar","owner":"rep-a"}`)
			a.send(t, http.MethodPut, "/v1/contacts/"+contactID+"/account", appToken, `{"account_id":"`+accountID+`"}`)
			a.send(t, http.MethodPost, "/v1/contacts/"+contactID+"/opt-out", appToken, `{"channel":"email"}`)
			a.send(t, http.MethodPost, "/v1/contacts/"+contactID+"/opt-out", appToken, `{"channel":"sms"}`)
			for i, stage := range []string{"qualification", "proposal", "proposal", "negotiation"} {
				dealID, _ := a.post(t, "/v1/deals", fmt.Sprintf(`{"contact_id":%q,"title":"案件 %d","amount":%d,"currency":"JPY","expected_close":"2025-0%d-01"}`, contactID, i, 100000*(i+1), i+1))
				if stage != "qualification" {
					a.post(t, "/v1/deals/"+dealID+"/stage", `{"stage":"`+stage+`"}`)
				}
			}
			lost, _ := a.post(t, "/v1/deals", `{"contact_id":"`+contactID+`","title":"失注","amount":5,"currency":"USD"}`)
			_, pos := a.post(t, "/v1/deals/"+lost+"/lose", `{"reason":"price"}`)
			min := "min_position=" + strconv.FormatInt(pos, 10)
			// Under load the read models may take longer than one answer's wait: wait for
			// both before comparing answers read at different times.
			a.waitFresh(t, "/v1/contacts?limit=1&"+min)
			a.waitFresh(t, "/v1/pipeline/board?limit=1&"+min)

			for _, tt := range []struct {
				name, path, member string
				accept             bool
			}{
				{"contacts", "/v1/contacts?" + min, "contacts", false},
				{"contacts by Accept", "/v1/contacts?sort=-created&" + min, "contacts", true},
				{"contacts filtered", "/v1/contacts?q=contact+00&" + min, "contacts", false},
				{"deals", "/v1/deals?" + min, "deals", false},
				{"open deals by Accept", "/v1/deals?status=open&sort=title&" + min, "deals", true},
				{"accounts", "/v1/accounts?" + min, "accounts", false},
			} {
				t.Run(tt.name, func(t *testing.T) {
					r, records := a.getCSV(t, tt.path, tt.accept)
					if r.status != http.StatusOK {
						t.Fatalf("%d %s", r.status, r.body)
					}
					if r.header.Get("X-Read-Model-Position") == "" || !strings.Contains(r.header.Get("Content-Disposition"), tt.member+".csv") {
						t.Fatalf("headers %v", r.header)
					}
					sameRows(t, tt.name, records, a.jsonRows(t, tt.path, tt.member), nil)
				})
			}
			t.Run("all contacts", func(t *testing.T) {
				_, records := a.getCSV(t, "/v1/contacts?"+min, false)
				if len(records) != 1+1101 {
					t.Fatalf("%d contacts exported, want 1101", len(records)-1)
				}
			})
			t.Run("board", func(t *testing.T) {
				asOf := "as_of=2030-01-01T00:00:00Z"
				_, records := a.getCSV(t, "/v1/pipeline/board?"+asOf+"&"+min, false)
				var cards []map[string]any
				for _, stage := range []string{"qualification", "needs_analysis", "proposal", "negotiation"} {
					type boardAnswer struct {
						Data struct {
							Stages []struct {
								Stage       string           `json:"stage"`
								Probability float64          `json:"probability"`
								Cards       []map[string]any `json:"cards"`
								NextCursor  string           `json:"next_cursor"`
							} `json:"stages"`
						} `json:"data"`
					}
					for cursor := ""; ; {
						var ans boardAnswer
						r := a.send(t, http.MethodGet, "/v1/pipeline/board?limit=1&stage="+stage+"&"+asOf+"&cursor="+url.QueryEscape(cursor), appToken, "")
						if err := json.Unmarshal(r.body, &ans); err != nil || len(ans.Data.Stages) != 1 {
							t.Fatalf("board %s: %v %s", stage, err, r.body)
						}
						col := ans.Data.Stages[0]
						for _, c := range col.Cards {
							c["stage"], c["probability"] = col.Stage, col.Probability
							cards = append(cards, c)
						}
						if cursor = col.NextCursor; cursor == "" {
							break
						}
					}
				}
				if len(cards) != 4 {
					t.Fatalf("%d cards on the board, want 4", len(cards))
				}
				sameRows(t, "board", records, cards, nil)
			})
			t.Run("longer than the write timeout", func(t *testing.T) {
				// A server whose answers must be written within a millisecond still writes a
				// whole export: an export is not an answer of a page.
				slow := httptest.NewUnstartedServer(a.handler)
				slow.Config.WriteTimeout = time.Millisecond
				slow.Start()
				defer slow.Close()
				_, records := (&wholeAPI{api: &api{t: t, url: slow.URL}}).getCSV(t, "/v1/contacts?"+min, false)
				if len(records) != 1+1101 {
					t.Fatalf("%d contacts exported, want 1101", len(records)-1)
				}
			})
			t.Run("BOM for Excel", func(t *testing.T) {
				r, records := a.getCSV(t, "/v1/accounts?bom=true&"+min, false)
				if !bytes.HasPrefix(r.body, []byte("\uFEFFaccount_id,")) || len(records) != 2 {
					t.Fatalf("answer %q", r.body)
				}
				r, _ = a.getCSV(t, "/v1/accounts?"+min, false)
				if !bytes.HasPrefix(r.body, []byte("account_id,")) {
					t.Fatalf("answer without bom=true %q", r.body)
				}
			})
			t.Run("refused", func(t *testing.T) {
				for _, tt := range []struct{ path, field string }{
					{"/v1/contacts?format=xml", "format"},
					{"/v1/contacts?format=csv&bom=perhaps", "bom"},
					{"/v1/contacts?format=csv&sort=shoe_size", "sort"},
					{"/v1/contacts?format=csv&as_of=2024-01-01T00:00:00Z", "as_of"},
					{"/v1/contacts?format=csv&at_position=3", "at_position"}, // not served by this server
					{"/v1/contacts?format=csv&at_position=3&min_position=1", "min_position"},
					{"/v1/pipeline/board?format=csv&stage=won", "stage"},
					{"/v1/tasks?format=csv", "format"},
				} {
					r := a.send(t, http.MethodGet, tt.path, appToken, "")
					if r.status != http.StatusBadRequest || r.json(t)["field"] != tt.field {
						t.Errorf("GET %s: %d %s, want 400 naming %s", tt.path, r.status, r.body, tt.field)
					}
				}
			})
		})
	}
}

// waitFresh asks path until its answer is not stale.
func (a *wholeAPI) waitFresh(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := a.send(t, http.MethodGet, path, appToken, "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		if r.header.Get("X-Read-Model-Stale") == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: still stale", path)
		}
	}
}
