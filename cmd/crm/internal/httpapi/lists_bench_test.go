package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/zap"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/directory"
	"github.com/eventcrm/crm/projections/projectiontest"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/tasks"
	"github.com/eventcrm/crm/projections/timeline"
)

// listClients is how many clients ask at once in BenchmarkLists, each sending its next
// request when the previous one is answered.
const listClients = 100

// BenchmarkLists measures the lists an app reads all day through the real handler on a
// loopback listener, with listClients clients, on SQLite and PostgreSQL: the contacts (all,
// one owner's, a search of two characters and one of five), the open deals, the accounts, a
// contact's timeline, the open tasks and one assignee's. The store holds
// CRM_BENCH_LIST_CONTACTS contacts (default 20,000), each with three touchpoints and a task,
// a deal for every other one and an account for every fiftieth; the directory, the timeline
// and the tasks are built from it once per database. health (GET /healthz) is the HTTP stack
// and the clients alone.
//
// Per list it reports p50-ms, p99-ms, requests/s, cpu-us/req (this process's CPU per
// request: the server and its clients) and, on PostgreSQL, pg-cpu-us/req (the CPU of the
// read models' sessions per request). Run it with a fixed count, e.g. -benchtime=3000x.
func BenchmarkLists(b *testing.B) {
	n := projectiontest.EnvCount(b, "CRM_BENCH_LIST_CONTACTS", 100, 20_000)
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := newListServer(b, name, n)
			for _, q := range listQuestions(n) {
				b.Run(q.name, func(b *testing.B) { s.bench(b, q.path) })
			}
		})
	}
}

type listQuestion struct {
	name string
	path func(i int) string
}

func listQuestions(n int) []listQuestion {
	rotate := func(format string, values ...string) func(i int) string {
		return func(i int) string { return fmt.Sprintf(format, values[i%len(values)]) }
	}
	contact := func(i int) string { return "/v1/contacts/" + listContactID(i*7919%n) + "/timeline" }
	owners := make([]string, 20)
	for i := range owners {
		owners[i] = fmt.Sprintf("rep-%d", i)
	}
	return []listQuestion{
		{"health", rotate("/healthz%s", "")},
		{"contacts", rotate("/v1/contacts%s", "")},
		{"contacts-owner", rotate("/v1/contacts?owner=%s", owners...)},
		{"contacts-q2", rotate("/v1/contacts?q=%s", "sa", "mi", "ga", "ro", "ki")},
		{"contacts-q5", rotate("/v1/contacts?q=%s", "smith", "garci", "rossi", "nguye", "brown")},
		{"deals", rotate("/v1/deals?status=open%s", "")},
		{"accounts", rotate("/v1/accounts%s", "")},
		{"timeline", contact},
		{"tasks", rotate("/v1/tasks?status=open%s", "")},
		{"tasks-assignee", rotate("/v1/tasks?assignee=%s", owners...)},
	}
}

// listServer is the server of BenchmarkLists over one database.
type listServer struct {
	url string
	db  *projections.DB
	// app names the read models' sessions on PostgreSQL ("" on SQLite).
	app string
}

func newListServer(b *testing.B, backend string, n int) *listServer {
	ctx := context.Background()
	var (
		store eventstore.Store
		db    *projections.DB
		app   string
		err   error
	)
	switch backend {
	case "sqlite":
		dir := b.TempDir()
		s, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		store = s
		if db, err = projections.OpenSQLite(ctx, filepath.Join(dir, "readmodels.db")); err != nil {
			b.Fatal(err)
		}
	case "postgres":
		url := projectiontest.PostgresURL()
		s, err := postgres.Open(ctx, url, postgres.WithSchema(freshSchema(b, "httpapi_bench_store_")))
		if err != nil {
			b.Fatalf("open postgres store at %s: %v", url, err)
		}
		b.Cleanup(func() { s.Close() })
		store = s
		app = fmt.Sprintf("crm_lists_bench_%d", os.Getpid())
		if db, err = projections.OpenPostgres(ctx, projectiontest.AppURL(url, app), freshSchema(b, "httpapi_bench_rm_")); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { _ = db.SQL.Close() })
	appendListHistory(b, store, n)

	var rms []readmodels.ReadModel
	for _, rm := range readmodels.All(readmodels.Options{}) {
		switch rm.Projection.Name() {
		case directory.Name, timeline.Name, tasks.Name:
			rms = append(rms, rm)
		}
	}
	ps := readmodels.Projections(rms)
	start := time.Now()
	if _, err := rebuild.Rebuild(ctx, rebuild.RebuildConfig{DB: db, Store: store}, ps...); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: read models of %d contacts built in %v", backend, n, time.Since(start).Round(time.Millisecond))
	runner, err := runtime.NewRunner(runtime.RunnerConfig{
		DB: db, Store: store, Decode: wmstore.EventFromMessage,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group}, nil)
		},
	}, ps...)
	if err != nil {
		b.Fatal(err)
	}
	projectiontest.Start(b, runner)
	tokens, err := auth.ParseTokens("web:app:" + appToken)
	if err != nil {
		b.Fatal(err)
	}
	server := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: zap.NewNop()})
	server.MountReadModels(httpapi.ReadModels{Runner: runner, Queries: readmodels.HTTPQueries(rms)})
	srv := httptest.NewServer(server)
	b.Cleanup(srv.Close)
	return &listServer{url: srv.URL, db: db, app: app}
}

// appendListHistory appends the history of BenchmarkLists: n contacts (each its stream with
// its creation, three touchpoints and a task), n/2 deals and n/50 accounts.
func appendListHistory(b *testing.B, store eventstore.Store, n int) {
	ctx := context.Background()
	latin := []string{"Sato", "Suzuki", "Smith", "Jones", "Garcia", "Muller", "Rossi", "Dubois", "Kim", "Nguyen", "Brown", "Lee"}
	companies := []string{"Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "田中商事"}
	at := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	event := func(id, typ, data string, i int) eventstore.EventData {
		return eventstore.EventData{ID: id, Type: typ, Data: []byte(data), OccurredAt: at.Add(time.Duration(i) * time.Minute)}
	}
	type stream struct {
		name   string
		events []eventstore.EventData
	}
	streams := make(chan stream)
	go func() {
		defer close(streams)
		for i := range n / 50 {
			streams <- stream{fmt.Sprintf("account-a%05d", i), []eventstore.EventData{event(fmt.Sprintf("a%d", i), "account.created.v1",
				fmt.Sprintf(`{"account_id":"a%05d","name":"%s %d","domain":"a%d.example.com","industry":"manufacturing"}`, i, companies[i%len(companies)], i, i), i)}}
		}
		for i := range n {
			id := listContactID(i)
			name := latin[i%len(latin)] + " " + latin[i/len(latin)%len(latin)] + fmt.Sprint(i)
			evs := []eventstore.EventData{event("e-"+id, "contact.created.v1",
				fmt.Sprintf(`{"contact_id":%q,"name":%q,"email":"user%d@example.com","phone":"+81-3-%04d-%04d","company":%q,"channel":"web_form","owner":"rep-%d"}`,
					id, name, i, i%10000, i/10000, companies[i%len(companies)], i%20), i)}
			for k := range 3 {
				evs = append(evs, event(fmt.Sprintf("t%d-%s", k, id), "contact.touchpoint_recorded.v1",
					fmt.Sprintf(`{"contact_id":%q,"touchpoint_id":"tp%d-%s","kind":"call","note":"call %d","phase":"lead"}`, id, k, id, k), i+k+1))
			}
			evs = append(evs, event("k-"+id, "contact.task_scheduled.v1",
				fmt.Sprintf(`{"contact_id":%q,"task_id":"task-%s","title":"follow up","due":"2026-%02d-%02d","assignee":"rep-%d"}`, id, id, 1+i%12, 1+i%28, i%20), i+5))
			streams <- stream{"contact-" + id, evs}
			if i%2 == 0 {
				streams <- stream{fmt.Sprintf("deal-d%07d", i), []eventstore.EventData{event("d-"+id, "deal.opened.v1",
					fmt.Sprintf(`{"deal_id":"d%07d","contact_id":%q,"title":"%s renewal %d","amount":{"amount":%d,"currency":"JPY"},"owner":"rep-%d","stage":"qualification"}`,
						i, id, companies[i%len(companies)], i, 1000*(i%97+1), i%20), i+6)}}
			}
		}
	}()
	var (
		wg     sync.WaitGroup
		failed atomic.Value
	)
	for range 8 {
		wg.Go(func() {
			for s := range streams {
				if _, err := store.Append(ctx, s.name, eventstore.NoStream, s.events); err != nil {
					failed.Store(fmt.Errorf("append %s: %w", s.name, err))
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
}

// listContactID is the id of the i-th contact of BenchmarkLists (ids in paths are UUIDs).
func listContactID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// bench asks b.N questions from listClients clients and reports the latencies and the CPU
// per request.
func (s *listServer) bench(b *testing.B, path func(i int) string) {
	transport := &http.Transport{MaxIdleConns: listClients, MaxIdleConnsPerHost: listClients}
	client := &http.Client{Transport: transport}
	defer transport.CloseIdleConnections()
	ask := func(p string) error {
		req, err := http.NewRequest(http.MethodGet, s.url+p, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+appToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
		}
		return nil
	}
	if err := ask(path(0)); err != nil { // warm up: and fail early
		b.Fatal(err)
	}
	var pg *projectiontest.PgCPU
	if s.app != "" {
		pg = projectiontest.SamplePgCPU(s.db, s.app)
	}
	cpu0 := projectiontest.CPUTime()
	var next atomic.Int64
	elapsed := closedLoop(b, listClients, func() func() error {
		return func() error { return ask(path(int(next.Add(1) - 1))) }
	})
	cpu := projectiontest.CPUTime() - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/req")
	if pg != nil {
		b.ReportMetric(float64(pg.Stop().Microseconds())/float64(b.N), "pg-cpu-us/req")
	}
	b.ReportMetric(0, "ns/op")
}
