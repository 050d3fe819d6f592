package httpapi_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/timetravel"
)

// newDirectoryAPI serves the directory, with time travel, on backend b.
func newDirectoryAPI(t *testing.T, b backend) *api {
	t.Helper()
	o := b.open(t)
	p := directory.Projection()
	runner, err := runtime.NewRunner(runtime.RunnerConfig{
		DB: o.db, Store: o.store, Decode: wmstore.EventFromMessage,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(o.store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond}, nil)
		},
		Retry: runtime.RetryConfig{MaxRetries: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
	}, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := runner.Init(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	travel, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: o.db, Store: o.store, Every: 3}, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := travel.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",root:admin:" + adminToken)
	if err != nil {
		t.Fatal(err)
	}
	server := httpapi.New(httpapi.Config{Store: o.store, Commands: commands.NewHandler(o.store), Tokens: tokens, Log: zap.NewNop()})
	server.MountReadModels(httpapi.ReadModels{Runner: runner, MaxWait: 5 * time.Second, TimeTravel: travel,
		Queries: readmodels.HTTPQueries(readmodels.All(readmodels.Options{}))})
	return &api{t: t, url: describedServer(t, server).URL}
}

// TestDirectoryWeighsWithTheProbabilitiesInForce: after a change of the stage probabilities
// the account's weighted pipeline and each deal's probability in the deals list (JSON and
// CSV) follow it; asked at a log position before the change (time travel), they answer as
// before it.
//
// Two open deals of 100,005 JPY in qualification, the account's pipeline 200,010 JPY:
//   - defaults (10 %): 200010*10 = 2000100+50 -> 20001, rounded once for the stage (per deal
//     it would be 1000050+50 -> 10001, twice 20002); each deal 10 %.
//   - after the change (qualification 33 %): 200010*33 = 6600330+50 -> 66003; each deal 33 %.
func TestDirectoryWeighsWithTheProbabilitiesInForce(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a := newDirectoryAPI(t, b)
			created := func(path, body string) (string, int64) {
				t.Helper()
				r := a.do(http.MethodPost, path, appToken, body)
				if r.status != http.StatusCreated && r.status != http.StatusOK {
					t.Fatalf("POST %s: %d %s", path, r.status, r.body)
				}
				m := r.json(t)
				id, _ := m["id"].(string)
				return id, int64(m["position"].(float64))
			}
			accountID, _ := created("/v1/accounts", `{"name":"Mori Trading"}`)
			contactID := a.createContact()
			if r := a.do(http.MethodPut, "/v1/contacts/"+contactID+"/account", appToken, `{"account_id":"`+accountID+`"}`); r.status != http.StatusOK {
				t.Fatalf("link account: %d %s", r.status, r.body)
			}
			for range 2 {
				created("/v1/deals", `{"contact_id":"`+contactID+`","title":"Seats","amount":100005,"currency":"JPY"}`)
			}
			r := a.do(http.MethodPut, "/v1/settings/stage_probabilities", adminToken,
				`{"probabilities":{"qualification":33,"needs_analysis":25,"proposal":50,"negotiation":75}}`, "X-Reason", "calibrated")
			if r.status != http.StatusOK {
				t.Fatalf("PUT stage probabilities: %d %s", r.status, r.body)
			}
			changed := int64(r.json(t)["position"].(float64))

			for _, c := range []struct {
				name, query string
				weighted    int64
				percent     int
			}{
				{"now", "min_position=" + strconv.FormatInt(changed, 10), 66003, 33},
				{"at the change", "at_position=" + strconv.FormatInt(changed, 10), 66003, 33},
				{"before the change", "at_position=" + strconv.FormatInt(changed-1, 10), 20001, 10},
			} {
				t.Run(c.name, func(t *testing.T) {
					var sum answer[directory.AccountSummary]
					if r := readInto(t, a, "/v1/accounts/"+accountID+"/summary?"+c.query, &sum); r.status != http.StatusOK {
						t.Fatalf("summary: %d %s", r.status, r.body)
					}
					if len(sum.Data.Money) != 1 || sum.Data.Money[0].OpenAmount != 200010 || sum.Data.Money[0].WeightedAmount != c.weighted {
						t.Errorf("summary money %+v, want 200010 JPY weighted %d", sum.Data.Money, c.weighted)
					}
					var deals answer[directory.Deals]
					if r := readInto(t, a, "/v1/deals?account_id="+accountID+"&"+c.query, &deals); r.status != http.StatusOK {
						t.Fatalf("deals: %d %s", r.status, r.body)
					}
					if len(deals.Data.Deals) != 2 {
						t.Fatalf("deals %+v, want 2", deals.Data)
					}
					for _, d := range deals.Data.Deals {
						if d.Probability != c.percent {
							t.Errorf("deal %s: probability %d, want %d", d.DealID, d.Probability, c.percent)
						}
					}
					r := a.do(http.MethodGet, "/v1/deals?format=csv&account_id="+accountID+"&"+c.query, appToken, "")
					records, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
					if r.status != http.StatusOK || err != nil || len(records) != 3 {
						t.Fatalf("deals CSV: %d %v %q", r.status, err, r.body)
					}
					column := slices.Index(records[0], "probability")
					for _, rec := range records[1:] {
						if column < 0 || rec[column] != strconv.Itoa(c.percent) {
							t.Errorf("deals CSV row %q: probability column %d, want %d", rec, column, c.percent)
						}
					}
				})
			}
		})
	}
}

// readInto asks a read-model query and decodes its answer when it is a 200.
func readInto(t *testing.T, a *api, path string, v any) response {
	t.Helper()
	r := a.do(http.MethodGet, path, appToken, "")
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, r.body)
		}
	}
	return r
}
