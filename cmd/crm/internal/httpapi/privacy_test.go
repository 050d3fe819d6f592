package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/codec"
	"github.com/eventcrm/crm/eventstore/postgres"
	"github.com/eventcrm/crm/projections/projectiontest"
)

// newPrivacyAPI serves commands and the export over a PostgreSQL log sealed as crm serve
// seals it; the log reader waits only briefly at a gap, so an export that took a short read
// for the end of the log would end early at once.
func newPrivacyAPI(t *testing.T, p httpapi.Privacy) (*api, *postgres.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := postgres.Open(ctx, projectiontest.PostgresURL(), postgres.WithSchema(freshSchema(t, "httpapi_test_privacy_")),
		postgres.WithReadWait(20*time.Millisecond))
	if err != nil {
		t.Fatalf("open postgres at %s (set CRM_TEST_POSTGRES_URL): %v", projectiontest.PostgresURL(), err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	c := projectiontest.SealingCodec(t, "")
	sealed := codec.NewStore(raw, c)
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",aud:auditor:" + auditorToken)
	if err != nil {
		t.Fatal(err)
	}
	server := httpapi.New(httpapi.Config{Store: sealed, Commands: commands.NewHandler(sealed, commands.WithShredder(c)),
		Tokens: tokens, Log: zaptest.NewLogger(t)})
	p.Raw, p.Codec = raw, c
	server.MountPrivacy(p)
	return &api{t: t, url: describedServer(t, server).URL}, raw
}

// holdPosition begins a transaction that takes a position of the log and holds it, as an
// append does between taking its positions and committing; end commits it.
func holdPosition(t *testing.T, store *postgres.Store) (end func()) {
	t.Helper()
	tx, err := store.Pool().Begin(context.Background())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(context.Background(), `SELECT pg_current_xact_id(), nextval('events_position_seq')`); err != nil {
		t.Fatalf("take a position: %v", err)
	}
	return func() {
		if err := tx.Commit(context.Background()); err != nil {
			t.Errorf("commit the held transaction: %v", err)
		}
	}
}

// exportAsync asks for the export of id; the answer comes on the channel.
func exportAsync(ctx context.Context, a *api, id string) <-chan response {
	out := make(chan response, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/v1/contacts/"+id+"/export", nil)
		if err != nil {
			out <- response{body: []byte(err.Error())}
			return
		}
		req.Header.Set("Authorization", "Bearer "+auditorToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- response{body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			b = fmt.Appendf(b, " (%v)", err)
		}
		out <- response{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	return out
}

// An append that took a lower position is still committing when the export is asked for: the
// export waits at that gap and holds the contact's later event, committed before it was asked.
func TestExportWaitsForAnAppendStillCommitting(t *testing.T) {
	t.Parallel()
	a, store := newPrivacyAPI(t, httpapi.Privacy{})
	id := a.createContact()
	commit := holdPosition(t, store)
	r := a.do("POST", "/v1/contacts/"+id+"/notes", appToken, `{"text":"call after the trade fair"}`)
	if r.status != http.StatusOK {
		t.Fatalf("add note: %d %s", r.status, r.body)
	}
	note := int64(r.json(t)["position"].(float64))

	answer := exportAsync(t.Context(), a, id)
	time.Sleep(300 * time.Millisecond) // the export reads the log meanwhile
	commit()
	r = <-answer
	if r.status != http.StatusOK {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	var export httpapi.Export
	if err := json.Unmarshal(r.body, &export); err != nil {
		t.Fatalf("export %s: %v", r.body, err)
	}
	var positions []int64
	for _, e := range export.Events {
		positions = append(positions, e.Position)
	}
	if len(positions) != 2 || positions[1] != note {
		t.Errorf("export holds the events at %v, want the contact's creation and its note at %d", positions, note)
	}
}

// An append that took a position and never commits holds an export at most GapWait: then it
// is refused for now, not answered without the events after the gap.
func TestExportRefusedAtAGapHeldTooLong(t *testing.T) {
	t.Parallel()
	a, store := newPrivacyAPI(t, httpapi.Privacy{GapWait: 200 * time.Millisecond})
	id := a.createContact()
	holdPosition(t, store)
	if r := a.do("POST", "/v1/contacts/"+id+"/notes", appToken, `{"text":"call after the trade fair"}`); r.status != http.StatusOK {
		t.Fatalf("add note: %d %s", r.status, r.body)
	}
	r := a.do("GET", "/v1/contacts/"+id+"/export", auditorToken, "")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("export behind a held gap: %d (Retry-After %q) %s; want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
	}
}
