package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A server killed (SIGKILL) while the purge that follows an erasure is recorded but not
// finished finishes it after its next start: then no file or table holds the erased person's
// data, as TestErasureLeavesNoPlaintext searches them.
func TestInterruptedPurgeFinishesAfterRestart(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			dir, store, schema := t.TempDir(), "", ""
			if backend == "postgres" {
				store = boundedSchema(t)
				u, _ := url.Parse(store)
				schema = u.Query().Get("schema")
			}
			search := func() []string {
				if backend == "postgres" {
					return tablesHolding(t, schema, schema+"_readmodels", schema+"_keys")
				}
				return filesHolding(t, dir)
			}
			n := startNode(t, store, dir, filepath.Join(t.TempDir(), "audit.key"))
			id := n.mustCall("POST", "/v1/contacts", `{"name":"Quillon Interrupted","email":"quillon@kill.example","channel":"seminar"}`)["id"].(string)
			n.mustCall("POST", "/v1/contacts/"+id+"/notes", `{"text":"quillon note"}`)
			// Other contacts' events, so that the purge's rebuild is not over at once.
			var wg sync.WaitGroup
			for w := range 8 {
				other := n.mustCall("POST", "/v1/contacts", `{"name":"Filler","channel":"web_form"}`)["id"].(string)
				wg.Go(func() {
					for i := range 100 {
						n.call("POST", "/v1/contacts/"+other+"/usage", fmt.Sprintf(`{"percent_of_limit":%d}`, (w+i)%100))
					}
				})
			}
			wg.Wait()
			erased := n.mustCall("POST", "/v1/contacts/"+id+"/erase", `{"reason":"right to erasure"}`)
			n.kill()
			if state := purgeState(t, backend, dir, schema, id); state != "purging" {
				t.Fatalf("the purge was %q when the server was killed: the test would prove nothing", state)
			}
			if hits := search(); len(hits) == 0 {
				t.Fatal("nothing holds the person after the kill: the test would prove nothing")
			}

			n.start()
			deadline := time.Now().Add(3 * time.Minute)
			for {
				st := n.mustCall("GET", "/v1/contacts/"+id+"/erase", "")
				if st["state"] == "done" {
					if st["position"] != erased["position"] {
						t.Errorf("purge state %v after the erasure %v", st, erased)
					}
					break
				}
				if st["state"] == "failed" || time.Now().After(deadline) {
					t.Fatalf("purge after the restart: %v", st)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if c := n.mustCall("GET", "/v1/contacts/"+id, ""); c["erased"] != true || strings.Contains(fmt.Sprint(c), "Quillon") {
				t.Errorf("contact after the purge: %v", c)
			}
			if hits := search(); len(hits) > 0 {
				t.Errorf("still holding the erased person's data after the purge finished at restart: %v", hits)
			}
		})
	}
}

// purgeState reads the recorded state of contact id's purge from the read-model database of a
// stopped server.
func purgeState(t *testing.T, backend, dir, schema, id string) string {
	t.Helper()
	ctx := context.Background()
	var state string
	if backend == "postgres" {
		conn, err := pgx.Connect(ctx, postgresURL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT state FROM `+pgx.Identifier{schema + "_readmodels", "erasure_purges"}.Sanitize()+
			` WHERE contact_id = $1`, id).Scan(&state); err != nil {
			t.Fatal(err)
		}
		return state
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "readmodels.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT state FROM erasure_purges WHERE contact_id = ?`, id).Scan(&state); err != nil {
		t.Fatal(err)
	}
	return state
}
