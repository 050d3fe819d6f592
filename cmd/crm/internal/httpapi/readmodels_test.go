package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/zap/zaptest"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/analytics"
	"github.com/eventcrm/crm/projections/board"
	"github.com/eventcrm/crm/projections/churn"
	"github.com/eventcrm/crm/projections/journey"
	"github.com/eventcrm/crm/projections/rebuild"
	"github.com/eventcrm/crm/projections/runtime"
	"github.com/eventcrm/crm/projections/tasks"
	"github.com/eventcrm/crm/projections/timeline"
	"github.com/eventcrm/crm/projections/timetravel"
	"github.com/eventcrm/crm/projections/value"
)

// picky is a projection of the tests that refuses every event recorded with the reason
// "poison" while picky is set.
type picky struct{ refusing *atomic.Bool }

func (picky) Name() string { return "picky" }
func (picky) Version() int { return 1 }
func (picky) Schema(_ projections.Dialect, t projections.Tables) []string {
	return []string{`CREATE TABLE IF NOT EXISTS ` + t.Name("events") + ` (event_id TEXT PRIMARY KEY)`}
}
func (p picky) Apply(ctx context.Context, tx *projections.Tx, t projections.Tables, e eventstore.Event) error {
	if e.Metadata.Reason == "poison" && p.refusing.Load() {
		return errors.New("picky refuses poison")
	}
	_, err := tx.Exec(ctx, `INSERT INTO `+t.Name("events")+` (event_id) VALUES (?)`, e.ID)
	return err
}

type readAPI struct {
	*api
	refusing *atomic.Bool
	store    eventstore.Store
	runner   *runtime.Runner
}

// newReadAPI serves the API with the read models over real SQLite files: the log, and the
// read models apart from it, with the runner live.
func newReadAPI(t *testing.T, maxWait time.Duration) *readAPI {
	t.Helper()
	rs := newReadServer(t, maxWait)
	srv := describedServer(t, rs.server)
	return &readAPI{api: &api{t: t, url: srv.URL}, refusing: rs.refusing, store: rs.store, runner: rs.runner}
}

// readServer is the server of newReadAPI, not yet served, with the parts behind it.
type readServer struct {
	server   *httpapi.Server
	store    eventstore.Store
	refusing *atomic.Bool
	runner   *runtime.Runner
	travel   *timetravel.TimeTravel
	rebuilds *rebuild.Rebuilds
}

// served are the read models the test server runs, answers at past positions and rebuilds.
func served() []projections.Projection {
	return []projections.Projection{board.Projection(), journey.Projection(), churn.Projection(),
		timeline.Projection(), tasks.Projection(), analytics.Projection(), value.Projection(time.UTC)}
}

// newReadServer is the server of newReadAPI, not yet served; options change its read models'
// settings.
func newReadServer(t *testing.T, maxWait time.Duration, options ...func(*httpapi.ReadModels)) readServer {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "crm.db"), sqlite.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	db, err := projections.OpenSQLite(context.Background(), filepath.Join(dir, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.SQL.Close() })
	refusing := new(atomic.Bool)
	runner, err := runtime.NewRunner(runtime.RunnerConfig{
		DB: db, Store: store, Decode: wmstore.EventFromMessage,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group, NackDelay: 10 * time.Millisecond}, nil)
		},
		Retry: runtime.RetryConfig{MaxRetries: 1, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond},
	}, append(served(), picky{refusing})...)
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
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",ana:analyst:" + analystToken + ",aud:auditor:" + auditorToken)
	if err != nil {
		t.Fatal(err)
	}
	server := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: zaptest.NewLogger(t)})
	travel, err := timetravel.NewTimeTravel(timetravel.TimeTravelConfig{DB: db, Store: store, Every: 3}, served()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := travel.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	rebuilds, err := rebuild.NewRebuilds(rebuild.RebuildConfig{DB: db, Store: store, Runner: runner}, served()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rebuilds.Close)
	rm := httpapi.ReadModels{Runner: runner, MaxWait: maxWait, TimeTravel: travel, Rebuilds: rebuilds,
		Queries: readmodels.HTTPQueries(readmodels.All(readmodels.Options{}))}
	for _, o := range options {
		o(&rm)
	}
	server.MountReadModels(rm)
	return readServer{server: server, store: store, refusing: refusing, runner: runner, travel: travel, rebuilds: rebuilds}
}

func (a *readAPI) read(path string, v any) response {
	a.t.Helper()
	r := a.do("GET", path, appToken, "")
	if v != nil && r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, v); err != nil {
			a.t.Fatalf("GET %s: %v in %s", path, err, r.body)
		}
	}
	return r
}

type answer[T any] struct {
	Data      T                 `json:"data"`
	Freshness runtime.Freshness `json:"freshness"`
}

func TestReadModelAnswersWaitForTheClientsPosition(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	contactID := a.createContact()
	r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"Annual plan","amount":120000,"currency":"JPY"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("open deal: %d %s", r.status, r.body)
	}
	position := int64(r.json(t)["position"].(float64))
	min := "?min_position=" + strconv.FormatInt(position, 10)

	var b answer[board.Answer]
	r = a.read("/v1/pipeline/board"+min, &b)
	if r.status != http.StatusOK {
		t.Fatalf("board: %d %s", r.status, r.body)
	}
	if b.Freshness.Stale || b.Freshness.Position < position || b.Freshness.Projection != board.Name || b.Freshness.MinPosition != position {
		t.Fatalf("board freshness %+v, want at least position %d", b.Freshness, position)
	}
	if r.header.Get(httpapi.HeaderPosition) != strconv.FormatInt(b.Freshness.Position, 10) || r.header.Get(httpapi.HeaderStale) != "" ||
		r.header.Get(httpapi.HeaderLagEvents) == "" || r.header.Get(httpapi.HeaderLagSeconds) == "" {
		t.Fatalf("board headers %v", r.header)
	}
	if len(b.Data.Stages) == 0 || b.Data.Stages[0].Count != 1 || b.Data.Stages[0].Cards[0].ContactID != contactID {
		t.Fatalf("board %+v", b.Data)
	}

	var j answer[journey.ContactAnswer]
	if r := a.read("/v1/journeys/"+contactID+min, &j); r.status != http.StatusOK || j.Data.ContactID != contactID || len(j.Data.Visits) != 1 {
		t.Fatalf("journey: %d %s", r.status, r.body)
	}
	if r := a.read("/v1/journeys/nobody"+min, nil); r.status != http.StatusNotFound {
		t.Fatalf("journey of nobody: %d %s", r.status, r.body)
	}
	var m answer[journey.Answer]
	if r := a.read("/v1/analytics/journey-map?by_stage=true&as_of=2100-01-01T00:00:00Z", &m); r.status != http.StatusOK || m.Data.ByStage == nil {
		t.Fatalf("journey map: %d %s", r.status, r.body)
	}
	var c answer[churn.Answer]
	if r := a.read("/v1/analytics/churn-points"+min, &c); r.status != http.StatusOK || len(c.Data.Phases) != 7 || c.Freshness.Stale {
		t.Fatalf("churn points: %d %s", r.status, r.body)
	}
	for _, bad := range []string{"/v1/pipeline/board?min_position=x", "/v1/pipeline/board?as_of=yesterday", "/v1/analytics/journey-map?by_stage=maybe"} {
		if r := a.read(bad, nil); r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s", bad, r.status, r.body)
		}
	}
	// A value the read model refuses is a bad query parameter too: 400 naming it.
	if r := a.read("/v1/pipeline/board?limit=100000", nil); r.status != http.StatusBadRequest || r.json(t)["field"] != "limit" {
		t.Errorf("limit out of range: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/v1/pipeline/board", "", ""); r.status != http.StatusUnauthorized {
		t.Errorf("without a token: %d", r.status)
	}
}

func TestReadModelAnswerSaysStaleWhenThePositionIsNotReached(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 100*time.Millisecond)
	a.createContact()
	begin := time.Now()
	var b answer[board.Answer]
	r := a.read("/v1/pipeline/board?min_position=1000000", &b)
	if r.status != http.StatusOK || !b.Freshness.Stale || r.header.Get(httpapi.HeaderStale) != "true" {
		t.Fatalf("board beyond the log: %d %s", r.status, r.body)
	}
	if waited := time.Since(begin); waited < 100*time.Millisecond || waited > 3*time.Second {
		t.Fatalf("waited %v, want about 100ms", waited)
	}
}

func TestProjectionStatusAndPoisonQueueOverHTTP(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	a.refusing.Store(true)
	contactID := a.createContact()
	touch := func(reason string) int64 {
		r := a.do("POST", "/v1/contacts/"+contactID+"/touchpoints", appToken, `{"kind":"call"}`, "X-Reason", reason)
		if r.status != http.StatusOK {
			t.Fatalf("touchpoint: %d %s", r.status, r.body)
		}
		return int64(r.json(t)["position"].(float64))
	}
	touch("poison")
	last := touch("fine")

	var status struct {
		Projections []runtime.Status `json:"projections"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r := a.read("/v1/projections", &status); r.status != http.StatusOK {
			t.Fatalf("projections: %d %s", r.status, r.body)
		}
		caughtUp := len(status.Projections) == len(served())+1 // and picky
		for _, p := range status.Projections {
			caughtUp = caughtUp && p.Checkpoint >= last && p.State == runtime.StateRunning
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not catch up: %+v", status.Projections)
		}
		time.Sleep(10 * time.Millisecond)
	}
	byName := map[string]runtime.Status{}
	for _, p := range status.Projections {
		byName[p.Name] = p
	}
	if p := byName["picky"]; p.Parked != 2 || p.Version != 1 || p.TableSet != "picky_v1_" || p.Lag.Events != 0 {
		t.Fatalf("picky %+v, want 2 parked", p)
	}
	if p := byName[board.Name]; p.Parked != 0 {
		t.Fatalf("board %+v", p)
	}

	var list httpapi.ParkedList
	if r := a.read("/v1/projections/parked?projection=picky", &list); r.status != http.StatusOK || len(list.Parked) != 2 {
		t.Fatalf("parked: %d %s", r.status, r.body)
	}
	first, behind := list.Parked[0], list.Parked[1]
	if first.Attempts != 2 || behind.Attempts != 0 || first.Stream != behind.Stream || first.Position >= behind.Position {
		t.Fatalf("parked %+v", list.Parked)
	}
	if r := a.read("/v1/projections/parked?limit=1", &list); r.status != http.StatusOK || len(list.Parked) != 1 || list.NextAfterID != first.ID {
		t.Fatalf("first page: %d %s", r.status, r.body)
	}
	retry := func(token string, id int64) response {
		return a.do("POST", "/v1/projections/parked/"+strconv.FormatInt(id, 10)+"/retry", token, "")
	}
	if r := retry(appToken, first.ID); r.status != http.StatusForbidden {
		t.Fatalf("retry by an app: %d %s", r.status, r.body)
	}
	if r := retry(analystToken, behind.ID); r.status != http.StatusConflict {
		t.Fatalf("retry of an event behind another: %d %s", r.status, r.body)
	}
	if r := retry(analystToken, 999999); r.status != http.StatusNotFound {
		t.Fatalf("retry of no event: %d %s", r.status, r.body)
	}
	var res runtime.RetryResult
	r := retry(analystToken, first.ID)
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != http.StatusOK || res.Failed == nil || res.StillParked != 2 {
		t.Fatalf("retry while still refused: %d %s", r.status, r.body)
	}
	a.refusing.Store(false)
	res = runtime.RetryResult{}
	r = retry(analystToken, first.ID)
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != http.StatusOK || res.Failed != nil || len(res.Applied) != 2 || res.StillParked != 0 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	if r := a.read("/v1/projections/parked", &list); r.status != http.StatusOK || len(list.Parked) != 0 {
		t.Fatalf("parked after the retry: %d %s", r.status, r.body)
	}
}

// TestKeptAnswersFollowTheTables: answers kept between requests are those of the tables as
// they are: a write shows in the next answer that waits for it, the board now counts days in
// stage at each request's as_of, and an as_of before the latest deal event reads the past.
func TestKeptAnswersFollowTheTables(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	contactID := a.createContact()
	openDeal := func(title string) int64 {
		r := a.do("POST", "/v1/deals", appToken, `{"contact_id":"`+contactID+`","title":"`+title+`","amount":1000,"currency":"EUR"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("open deal: %d %s", r.status, r.body)
		}
		return int64(r.json(t)["position"].(float64))
	}
	board1 := func(query string) board.Answer { return readData[board.Answer](a, "/v1/pipeline/board"+query) }
	journeyMap := func(query string) journey.Answer {
		return readData[journey.Answer](a, "/v1/analytics/journey-map"+query)
	}

	first := openDeal("First")
	between := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	for range 3 { // kept from the second request on
		if b := board1("?min_position=" + strconv.FormatInt(first, 10)); b.Stages[0].Count != 1 {
			t.Fatalf("board after one deal: %+v", b.Stages[0])
		}
	}
	if m := journeyMap("?min_position=" + strconv.FormatInt(first, 10)); m.ByPhase.Steps[0].Entered != 1 {
		t.Fatalf("journey map after one contact: %+v", m.ByPhase.Steps[0])
	}

	second := openDeal("Second")
	r := a.do("POST", "/v1/contacts", appToken, `{"name":"Ken Abe","channel":"referral","owner":"rep-mori"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create contact: %d %s", r.status, r.body)
	}
	third := int64(r.json(t)["position"].(float64))
	if b := board1("?min_position=" + strconv.FormatInt(second, 10)); b.Stages[0].Count != 2 || b.Stages[0].Totals[0].Amount != 2000 {
		t.Fatalf("board after two deals: %+v", b.Stages[0])
	}
	if m := journeyMap("?min_position=" + strconv.FormatInt(third, 10)); m.ByPhase.Steps[0].Entered != 2 {
		t.Fatalf("journey map after two contacts: %+v", m.ByPhase.Steps[0])
	}
	// Churn points now and 91 days on: dormancy is judged at each request's as_of.
	for _, tt := range []struct {
		query       string
		wantDormant int
	}{
		{"?min_position=" + strconv.FormatInt(third, 10), 0},
		{"?as_of=" + time.Now().UTC().Add(91*24*time.Hour).Format(time.RFC3339Nano), 2},
		{"", 0},
	} {
		c := readData[churn.Answer](a, "/v1/analytics/churn-points"+tt.query)
		for _, p := range c.Phases {
			if p.Phase == "lead" && (p.Entered != 2 || p.Dormant != tt.wantDormant) {
				t.Fatalf("churn points%s: lead %+v, want 2 entered, %d dormant", tt.query, p, tt.wantDormant)
			}
		}
	}
	// The past: as_of between the two deals reads one.
	if b := board1("?as_of=" + between.Format(time.RFC3339Nano)); b.Stages[0].Count != 1 || b.Stages[0].Cards[0].Title != "First" {
		t.Fatalf("board between the deals: %+v", b.Stages[0])
	}
	// Later: the same deals, days counted at each as_of.
	for _, days := range []int64{0, 3, 40} {
		asOf := time.Now().UTC().Add(time.Duration(days)*24*time.Hour + time.Minute)
		b := board1("?as_of=" + asOf.Format(time.RFC3339Nano))
		if b.Stages[0].Count != 2 || b.Stages[0].Cards[0].DaysInStage != float64(days) || b.Stages[0].Cards[1].DaysInStage != float64(days) || !b.AsOf.Equal(asOf) {
			t.Fatalf("board %d days later: as_of %s, %+v", days, b.AsOf, b.Stages[0])
		}
	}
}

// readData reads a read-model answer at path, failing the test unless it is a 200, and
// returns its data.
func readData[T any](a *readAPI, path string) T {
	a.t.Helper()
	var v answer[T]
	if r := a.read(path, &v); r.status != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	return v.Data
}

// TestChurnPointsPageTheChurnedCustomers: the churned customers come a page at a time, the
// next page asked for with the answer's next_cursor; a limit that is not a number is a
// bad-request, a limit out of range or a cursor that is not one a validation problem, each
// naming the parameter (as the board's).
func TestChurnPointsPageTheChurnedCustomers(t *testing.T) {
	t.Parallel()
	a := newReadAPI(t, 5*time.Second)
	var last int64
	for range 2 {
		id := a.createContact()
		for _, body := range []string{`{"phase":"won","reason":"signed at the fair"}`, `{"phase":"churned","reason":"budget cut"}`} {
			r := a.do("POST", "/v1/contacts/"+id+"/phase", appToken, body)
			if r.status != http.StatusOK {
				t.Fatalf("phase change %s: %d %s", body, r.status, r.body)
			}
			last = int64(r.json(t)["position"].(float64))
		}
	}
	wait := "&min_position=" + strconv.FormatInt(last, 10)
	first := readData[churn.Answer](a, "/v1/analytics/churn-points?limit=1"+wait)
	if len(first.ChurnedCustomers) != 1 || first.NextCursor == "" {
		t.Fatalf("first page: %d churned, next %q", len(first.ChurnedCustomers), first.NextCursor)
	}
	second := readData[churn.Answer](a, "/v1/analytics/churn-points?limit=1&cursor="+first.NextCursor)
	if len(second.ChurnedCustomers) != 1 || second.NextCursor != "" ||
		second.ChurnedCustomers[0].ContactID == first.ChurnedCustomers[0].ContactID {
		t.Fatalf("second page: %+v, next %q (first %+v)", second.ChurnedCustomers, second.NextCursor, first.ChurnedCustomers)
	}
	for _, tt := range []struct {
		name, query string
		status      int
		problem     string
		field       string
	}{
		{"limit over the maximum", "?limit=1001", http.StatusBadRequest, "bad-request", "limit"},
		{"negative limit", "?limit=-1", http.StatusBadRequest, "bad-request", "limit"},
		{"limit not a number", "?limit=ten", http.StatusBadRequest, "bad-request", "limit"},
		{"cursor not a cursor", "?cursor=bm90LWEtY3Vyc29y", http.StatusBadRequest, "bad-request", "cursor"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := a.do("GET", "/v1/analytics/churn-points"+tt.query, appToken, "")
			p := r.json(t)
			if r.status != tt.status || p["type"] != httpapi.ProblemBase+tt.problem || p["field"] != tt.field {
				t.Fatalf("%d %s, want %d %s naming %s", r.status, r.body, tt.status, tt.problem, tt.field)
			}
		})
	}
}
