package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/eventcrm/crm/projections/directory"
)

// post sends a command and returns its answer's id and position.
func (a *wholeAPI) post(t *testing.T, path, body string) (string, int64) {
	t.Helper()
	r := a.send(t, http.MethodPost, path, appToken, body)
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, r.status, r.body)
	}
	m := r.json(t)
	id, _ := m["id"].(string)
	return id, int64(m["position"].(float64))
}

// list asks a directory query and decodes its data.
func list[T any](t *testing.T, a *wholeAPI, path string) (T, response) {
	t.Helper()
	var out answer[T]
	r := a.send(t, http.MethodGet, path, appToken, "")
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if out.Freshness.Projection != directory.Name {
		t.Fatalf("GET %s: freshness %+v", path, out.Freshness)
	}
	return out.Data, r
}

func TestDirectoryOverHTTP(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			accountID, _ := a.post(t, "/v1/accounts", `{"name":"田中商事","domain":"tanaka.example"}`)
			hanako, _ := a.post(t, "/v1/contacts", `{"name":"佐藤 花子","email":"hanako@tanaka.example","channel":"seminar","owner":"rep-a"}`)
			taro, _ := a.post(t, "/v1/contacts", `{"name":"サトウ タロウ","company":"ｱｸﾒ","channel":"web_form","owner":"rep-b"}`)
			a.send(t, http.MethodPut, "/v1/contacts/"+hanako+"/account", appToken, `{"account_id":"`+accountID+`"}`)
			_, pos := a.post(t, "/v1/deals", `{"contact_id":"`+hanako+`","title":"導入","amount":100000,"currency":"JPY"}`)
			min := "&min_position=" + strconv.FormatInt(pos, 10)

			tests := []struct {
				name, query string
				want        []string
			}{
				{"two kanji", "q=" + url.QueryEscape("佐藤"), []string{hanako}},
				{"half-width kana", "q=" + url.QueryEscape("ｻﾄｳ"), []string{taro}},
				{"full-width kana finds half-width company", "q=" + url.QueryEscape("アクメ"), []string{taro}},
				{"account", "account_id=" + accountID, []string{hanako}},
				{"owner", "owner=rep-b", []string{taro}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, _ := list[directory.Contacts](t, a, "/v1/contacts?"+tt.query+min)
					if got.Total != int64(len(tt.want)) || len(got.Contacts) != len(tt.want) || got.Contacts[0].ContactID != tt.want[0] {
						t.Fatalf("contacts %+v, want %v", got, tt.want)
					}
				})
			}
			deals, _ := list[directory.Deals](t, a, "/v1/deals?status=open&account_id="+accountID+min)
			if deals.Total != 1 || deals.Deals[0].CountsFor != hanako || deals.Deals[0].Probability != 10 {
				t.Fatalf("deals %+v", deals)
			}
			sum, _ := list[directory.AccountSummary](t, a, "/v1/accounts/"+accountID+"/summary?"+min[1:])
			if sum.Contacts != 1 || len(sum.Money) != 1 || sum.Money[0].OpenAmount != 100000 || sum.Money[0].WeightedAmount != 10000 {
				t.Fatalf("summary %+v", sum)
			}
		})
	}
}

// TestDirectoryRefusesBadQueries: every bad parameter is a 400 problem naming it, and
// nothing is appended.
func TestDirectoryRefusesBadQueries(t *testing.T) {
	tests := []struct{ name, path, field string }{
		{"unknown sort", "/v1/contacts?sort=age", "sort"},
		{"unknown phase", "/v1/contacts?phase=dreaming", "phase"},
		{"unknown channel", "/v1/contacts?channel=pigeon", "channel"},
		{"opted_out not a channel", "/v1/contacts?opted_out=maybe", "opted_out"},
		{"created_from not a time", "/v1/contacts?created_from=yesterday", "created_from"},
		{"limit zero", "/v1/contacts?limit=-1", "limit"},
		{"limit too large", "/v1/contacts?limit=501", "limit"},
		{"limit not a number", "/v1/contacts?limit=ten", "limit"},
		{"cursor not base64", "/v1/contacts?cursor=!!", "cursor"},
		{"cursor of another sort", "/v1/contacts?sort=created&cursor=eyJzIjoibmFtZSIsInQiOiJhIiwiaSI6ImIifQ", "cursor"},
		{"as_of", "/v1/contacts?as_of=2024-01-01T00:00:00Z", "as_of"},
		{"deal status", "/v1/deals?status=pending", "status"},
		{"deal stage", "/v1/deals?stage=closing", "stage"},
		{"expected close not a date", "/v1/deals?expected_close_from=2024-13-01", "expected_close_from"},
		{"closed_to not a date", "/v1/deals?closed_to=soon", "closed_to"},
		{"deal sort", "/v1/deals?sort=amount", "sort"},
		{"account sort", "/v1/accounts?sort=-size", "sort"},
		{"summary as_of", "/v1/accounts/00000000-0000-4000-8000-000000000000/summary?as_of=2024-01-01T00:00:00Z", "as_of"},
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			a.createContact()
			head := a.head(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := a.send(t, http.MethodGet, tt.path, appToken, "")
					p := r.json(t)
					if r.status != http.StatusBadRequest || r.header.Get("Content-Type") != "application/problem+json" || p["field"] != tt.field {
						t.Fatalf("GET %s: %d %s, want a 400 problem naming %s", tt.path, r.status, r.body, tt.field)
					}
				})
			}
			if got := a.head(t); got != head {
				t.Fatalf("the log moved from %d to %d", head, got)
			}
		})
	}
}

// TestDirectoryPagingUnderWrites pages through the directory by name while other clients
// create contacts (that sort anywhere) and record touchpoints: every contact that existed
// before the first page is seen exactly once, and no contact is seen twice. Then the exact
// total is every contact created.
func TestDirectoryPagingUnderWrites(t *testing.T) {
	const before, during, pageSize = 40, 40, 7
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newWholeAPI(t, b)
			existing := map[string]bool{}
			var pos int64
			for i := range before {
				id, p := a.post(t, "/v1/contacts", fmt.Sprintf(`{"name":"Member %03d","channel":"other"}`, i*2))
				existing[id], pos = true, p
			}
			min := "&min_position=" + strconv.FormatInt(pos, 10)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range during {
					r, err := a.sendRaw(http.MethodPost, "/v1/contacts", appToken, fmt.Sprintf(`{"name":"Member %03d","channel":"other"}`, i*2+1))
					if err != nil || r.status != http.StatusCreated {
						t.Errorf("create during paging: %v %d %s", err, r.status, r.body)
						return
					}
					var created struct{ ID string }
					_ = json.Unmarshal(r.body, &created)
					if r, err = a.sendRaw(http.MethodPost, "/v1/contacts/"+created.ID+"/touchpoints", appToken, `{"kind":"meeting"}`); err != nil || r.status != http.StatusOK {
						t.Errorf("touchpoint during paging: %v %d %s", err, r.status, r.body)
						return
					}
				}
			}()
			seen := map[string]bool{}
			next := ""
			for pages := 0; ; pages++ {
				if pages > before+during {
					t.Fatal("paging does not end")
				}
				page, _ := list[directory.Contacts](t, a, "/v1/contacts?q=member&sort=name&limit="+strconv.Itoa(pageSize)+"&cursor="+next+min)
				for _, c := range page.Contacts {
					if seen[c.ContactID] {
						t.Fatalf("%s (%s) shown twice", c.ContactID, c.Name)
					}
					seen[c.ContactID] = true
				}
				if next = page.NextCursor; next == "" {
					break
				}
			}
			wg.Wait()
			for id := range existing {
				if !seen[id] {
					t.Errorf("%s was skipped", id)
				}
			}
			head := a.head(t)
			all, _ := list[directory.Contacts](t, a, "/v1/contacts?q=member&limit=1&min_position="+strconv.FormatInt(head, 10))
			if all.Total != before+during {
				t.Fatalf("total %d, want %d", all.Total, before+during)
			}
		})
	}
}
