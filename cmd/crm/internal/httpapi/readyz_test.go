package httpapi_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/cmd/crm/internal/readmodels"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/sqlite"
	"github.com/eventcrm/crm/eventstore/wmstore"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/runtime"
)

// GET /readyz answers 503, naming the read models still behind, until every read model has
// reached the log's head as it was at start; then 200, and it stays ready while events keep
// coming. A store that does not answer is not ready either.
func TestReadyzWaitsForTheReadModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "crm.db"), sqlite.WithPollInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	cmds := commands.NewHandler(store)
	const written = 5 // one event each: the log's head is 5
	for i := range written {
		if _, err := cmds.CreateContact(ctx, commands.Meta{Actor: "seed"}, commands.CreateContact{Name: fmt.Sprintf("C%d", i), Channel: "web_form"}); err != nil {
			t.Fatal(err)
		}
	}
	db, err := projections.OpenSQLite(ctx, filepath.Join(dir, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.SQL.Close() })
	rms := readmodels.All(readmodels.Options{})
	runner, err := runtime.NewRunner(runtime.RunnerConfig{DB: db, Store: store, Decode: wmstore.EventFromMessage,
		NewSubscriber: func(group string) (message.Subscriber, error) {
			return wmstore.NewSubscriber(store, wmstore.SubscriberConfig{ConsumerGroup: group}, nil)
		}}, readmodels.Projections(rms)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Init(ctx); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.ParseTokens("web:app:" + appToken)
	if err != nil {
		t.Fatal(err)
	}
	server := httpapi.New(httpapi.Config{Store: store, Commands: cmds, Tokens: tokens})
	server.MountReadModels(httpapi.ReadModels{Runner: runner, Queries: readmodels.HTTPQueries(rms)})
	a := &api{t: t, url: describedServer(t, server).URL}

	// Not running yet: every read model is at 0.
	r := a.do("GET", "/readyz", "", "")
	if r.status != 503 || r.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("before catch-up: %d %s", r.status, r.body)
	}
	detail := r.json(t)["detail"].(string)
	for _, name := range runner.Names() {
		if !strings.Contains(detail, name+" at 0") {
			t.Errorf("detail %q does not name %s", detail, name)
		}
	}
	if !strings.Contains(detail, "position 5") {
		t.Errorf("detail %q does not name the position to reach", detail)
	}
	if r := a.do("GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("healthz while catching up: %d, want 200 (liveness)", r.status)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = a.do("GET", "/readyz", "", "")
		if r.status == 200 {
			break
		}
		if r.status != 503 || time.Now().After(deadline) {
			t.Fatalf("readyz: %d %s", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := string(r.body); got != `{"status":"ready","caught_up_to":5}`+"\n" {
		t.Fatalf("ready answer %q", got)
	}
	// Ready stays ready while new events are applied.
	a.createContact()
	if r := a.do("GET", "/readyz", "", ""); r.status != 200 {
		t.Fatalf("after a new event: %d %s", r.status, r.body)
	}
	// A store that does not answer is not ready.
	cancel()
	<-done
	done <- nil
	_ = store.Close()
	r = a.do("GET", "/readyz", "", "")
	if r.status != 503 || !strings.Contains(r.json(t)["detail"].(string), "event store does not answer") {
		t.Fatalf("store closed: %d %s", r.status, r.body)
	}
}

// Without read models, ready is the store answering.
func TestReadyzWithoutReadModels(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	if r := a.do("GET", "/readyz", "", ""); r.status != 200 || string(r.body) != `{"status":"ready","caught_up_to":0}`+"\n" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
