package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// flatKPIs is what the KPI CSV should hold of a JSON answer, computed apart from the export:
// every leaf of every period under its dotted path, a list's items named by their phase or
// owner, keyed by period and figure.
func flatKPIs(t *testing.T, body []byte) map[[2]string][2]string {
	t.Helper()
	var ans struct {
		Data struct {
			Periods []map[string]any `json:"periods"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatal(err)
	}
	out := map[[2]string][2]string{}
	for _, p := range ans.Data.Periods {
		period, end := p["period"].(string), p["end"].(string)
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, item := range x {
					walk(path+"."+k, item)
				}
			case []any:
				for _, item := range x {
					m := item.(map[string]any)
					name, _ := m["phase"].(string)
					if name == "" {
						name = m["owner"].(string)
					}
					for k, leaf := range m {
						if k != "phase" && k != "owner" {
							walk(path+"."+name+"."+k, leaf)
						}
					}
				}
			default:
				out[[2]string{period, strings.TrimPrefix(path, ".")}] = [2]string{end, cell(t, map[string]any{"v": x}, "v")}
			}
		}
		for k, v := range p {
			if k != "period" && k != "end" {
				walk("."+k, v)
			}
		}
	}
	return out
}

// The KPIs and the customers export as CSV with what their JSON answers say, on both
// backends: every figure of every period, every customer of every page with a column group
// per currency.
func TestCSVExportAnalyticsEqualsJSON(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			// More customers than one page of the export holds.
			const buyers = 510
			a.importDone(t, "?kind=contacts", "text/csv", contactsCSV(buyers))
			// A contact made after the import: once the directory has it, it has them all.
			marker, pos := a.post(t, "/v1/contacts", `{"name":"Marker","channel":"web_form"}`)
			since := "min_position=" + strconv.FormatInt(pos, 10)
			a.waitFresh(t, "/v1/contacts?limit=1&"+since)
			var ids []string
			for _, c := range a.jsonRows(t, "/v1/contacts?sort=created&"+since, "contacts") {
				if id := c["contact_id"].(string); id != marker {
					ids = append(ids, id)
				}
			}
			if len(ids) != buyers {
				t.Fatalf("%d contacts imported, want %d", len(ids), buyers)
			}
			var (
				mu   sync.Mutex
				last int64
				wg   sync.WaitGroup
			)
			work := make(chan int)
			for range 4 {
				wg.Go(func() {
					for i := range work {
						body := fmt.Sprintf(`{"amount":%d,"currency":"JPY","product":"Basic","occurred_at":"2024-0%d-10T09:00:00Z"}`, 1000*(i%9+1), i%6+1)
						if i%3 == 0 {
							body = fmt.Sprintf(`{"amount":%d,"currency":"USD","product":"Pro","occurred_at":"2024-07-%02d T09:00:00Z"}`, 5*(i%4+1), i%28+1)
							body = strings.ReplaceAll(body, " T", "T")
						}
						_, pos := a.post(t, "/v1/contacts/"+ids[i]+"/purchases", body)
						if i%5 == 0 {
							_, pos = a.post(t, "/v1/contacts/"+ids[i]+"/purchases", `{"amount":2000,"currency":"JPY","product":"Add-on","occurred_at":"2024-08-01T09:00:00Z"}`)
						}
						mu.Lock()
						last = max(last, pos)
						mu.Unlock()
					}
				})
			}
			for i := range ids {
				work <- i
			}
			close(work)
			wg.Wait()
			contactID, _ := a.post(t, "/v1/contacts", `{"name":"佐藤, \"花子\"","channel":"seminar","owner":"rep-a"}`)
			a.post(t, "/v1/contacts/"+contactID+"/touchpoints", `{"kind":"call"}`)
			for i, cur := range []string{"JPY", "USD", "JPY"} {
				dealID, _ := a.post(t, "/v1/deals", fmt.Sprintf(`{"contact_id":%q,"title":"案件 %d","amount":%d,"currency":%q}`, contactID, i, 1000*(i+1), cur))
				if i < 2 {
					a.post(t, "/v1/deals/"+dealID+"/win", `{}`)
				} else {
					a.post(t, "/v1/deals/"+dealID+"/lose", `{"reason":"price"}`)
				}
			}
			_, pos = a.post(t, "/v1/contacts/"+contactID+"/tasks", `{"title":"電話","due":"2030-01-01"}`)
			min := "min_position=" + strconv.FormatInt(max(pos, last), 10)
			a.waitFresh(t, "/v1/analytics/customers?limit=1&"+min)
			a.waitFresh(t, "/v1/analytics/kpis?"+min)

			t.Run("customers", func(t *testing.T) {
				for _, tt := range []struct {
					name, path string
					accept     bool
					rows       int
				}{
					{"all", "/v1/analytics/customers?" + min, false, buyers},
					{"by Accept, by orders, at a past time", "/v1/analytics/customers?sort=orders&as_of=2024-07-01T00:00:00Z&" + min, true, buyers - buyers/3},
				} {
					t.Run(tt.name, func(t *testing.T) {
						r, records := a.getCSV(t, tt.path, tt.accept)
						if r.status != http.StatusOK {
							t.Fatalf("%d %s", r.status, r.body)
						}
						if r.header.Get("X-Read-Model-Position") == "" || !strings.Contains(r.header.Get("Content-Disposition"), "customers.csv") {
							t.Fatalf("headers %v", r.header)
						}
						rows := a.jsonRows(t, tt.path, "list")
						if len(rows) != tt.rows {
							t.Fatalf("%d customers in the JSON answer, want %d", len(rows), tt.rows)
						}
						sameRows(t, tt.name, records, rows, func(row map[string]any, col string) (string, bool) {
							i := strings.LastIndex(col, "_")
							if i < 0 || !slices.Contains([]string{"JPY", "USD"}, col[i+1:]) {
								return "", false
							}
							for _, c := range row["currencies"].([]any) {
								if m := c.(map[string]any); m["currency"] == col[i+1:] {
									return cell(t, m, col[:i]), true
								}
							}
							return "", true
						})
						want := []string{"orders_JPY", "revenue_JPY", "ltv_JPY", "average_order_value_JPY", "monetary_score_JPY"}
						if tt.rows == buyers {
							want = append(want, "orders_USD", "revenue_USD", "ltv_USD", "average_order_value_USD", "monetary_score_USD")
						}
						if got := records[0][13:]; !slices.Equal(got, want) {
							t.Fatalf("currency columns %v, want %v", got, want)
						}
					})
				}
			})
			t.Run("kpis", func(t *testing.T) {
				for _, path := range []string{
					"/v1/analytics/kpis?" + min,
					"/v1/analytics/kpis?period=quarter&from=2024-01-01&owner=rep-a&" + min,
				} {
					r, records := a.getCSV(t, path, false)
					if r.status != http.StatusOK || !slices.Equal(records[0], []string{"period", "end", "figure", "value"}) {
						t.Fatalf("GET %s: %d %s", path, r.status, r.body)
					}
					if !strings.Contains(r.header.Get("Content-Disposition"), "kpis.csv") {
						t.Fatalf("headers %v", r.header)
					}
					j := a.send(t, http.MethodGet, path, appToken, "")
					want := flatKPIs(t, j.body)
					got := map[[2]string][2]string{}
					for _, rec := range records[1:] {
						got[[2]string{rec[0], rec[2]}] = [2]string{rec[1], rec[3]}
					}
					if len(got) != len(records)-1 || len(got) != len(want) {
						t.Fatalf("GET %s: %d CSV rows (%d distinct), %d JSON figures", path, len(records)-1, len(got), len(want))
					}
					for k, v := range want {
						if got[k] != v {
							t.Errorf("GET %s %v: CSV %v, JSON %v", path, k, got[k], v)
						}
					}
					if strings.Contains(path, "quarter") {
						continue
					}
					// This month's figures of this test are in it.
					month := records[len(records)-1][0]
					for _, f := range [][2]string{{"revenue_won.JPY", "1000"}, {"revenue_won.USD", "2000"}, {"deals.won", "2"},
						{"deals.lost", "1"}, {"activity.rep-a.touchpoints.call", "1"}, {"tasks.due", "0"}} {
						if v := got[[2]string{month, f[0]}]; v[1] != f[1] {
							t.Errorf("GET %s: %s %s = %q, want %q", path, month, f[0], v[1], f[1])
						}
					}
				}
			})
			t.Run("refused", func(t *testing.T) {
				for _, tt := range []struct{ path, field string }{
					{"/v1/analytics/kpis?format=csv&explain=deals.won", "explain"},
					{"/v1/analytics/kpis?format=csv&period=fortnight", "period"},
					{"/v1/analytics/kpis?format=csv&bom=perhaps", "bom"},
					{"/v1/analytics/kpis?format=csv&at_position=3", "at_position"},
					{"/v1/analytics/customers?format=csv&sort=shoe_size", "sort"},
					{"/v1/analytics/customers?format=csv&explain=customers", "explain"},
					{"/v1/analytics/customers?format=csv&explain=list.nobody.orders", "explain"},
					{"/v1/analytics/customers?format=csv&as_of=yesterday", "as_of"},
					{"/v1/analytics/forecast?format=csv", "format"},
				} {
					r := a.send(t, http.MethodGet, tt.path, appToken, "")
					if r.status != http.StatusBadRequest || r.json(t)["field"] != tt.field {
						t.Errorf("GET %s: %d %s, want 400 naming %s", tt.path, r.status, r.body, tt.field)
					}
				}
			})
			t.Run("described", func(t *testing.T) {
				var doc struct {
					Paths map[string]map[string]struct {
						Responses map[string]struct {
							Content map[string]any `json:"content"`
						} `json:"responses"`
						Parameters []struct {
							Name string `json:"name"`
						} `json:"parameters"`
					} `json:"paths"`
				}
				if err := json.Unmarshal(a.send(t, http.MethodGet, "/openapi.json", "", "").body, &doc); err != nil {
					t.Fatal(err)
				}
				for path, csv := range map[string]bool{"/v1/analytics/kpis": true, "/v1/analytics/customers": true, "/v1/analytics/forecast": false} {
					op := doc.Paths[path]["get"]
					_, hasCSV := op.Responses["200"].Content["text/csv"]
					hasFormat := slices.ContainsFunc(op.Parameters, func(p struct {
						Name string `json:"name"`
					}) bool {
						return p.Name == "format"
					})
					if hasCSV != csv || hasFormat != csv {
						t.Errorf("%s: text/csv %v, format %v; want %v", path, hasCSV, hasFormat, csv)
					}
				}
			})
			t.Run("BOM for Excel", func(t *testing.T) {
				r, _ := a.getCSV(t, "/v1/analytics/kpis?bom=true&"+min, false)
				if !strings.HasPrefix(string(r.body), "\uFEFFperiod,end,figure,value\r\n") && !strings.HasPrefix(string(r.body), "\uFEFFperiod,end,figure,value\n") {
					t.Fatalf("answer %q", r.body)
				}
			})
		})
	}
}
