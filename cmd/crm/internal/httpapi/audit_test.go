package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
	"github.com/eventcrm/crm/cmd/crm/internal/httpapi"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/audit"
)

const adminToken = "admin-token-000000001"

type auditAPI struct {
	*api
	auditStore
	access *audit.AccessLog
	logs   *observer.ObservedLogs
	dir    string // the data directory: tree, key and access log
}

// newAuditAPI is the server with the audit endpoints over a SQLite store, its tree, key and
// access log in a temporary directory.
func newAuditAPI(t *testing.T) *auditAPI { return newAuditAPIOn(t, "sqlite") }

// newAuditAPIOn is newAuditAPI over a fresh store of the named backend.
func newAuditAPIOn(t *testing.T, backend string) *auditAPI {
	t.Helper()
	dir := t.TempDir()
	signer, _, err := audit.LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	return serveAudit(t, openAuditStore(t, backend, dir), dir, signer)
}

// serveAudit serves st with the audit endpoints, their tree and access log in dir.
func serveAudit(t *testing.T, st auditStore, dir string, signer *audit.Signer) *auditAPI {
	t.Helper()
	ctx := context.Background()
	store := st.store
	tokens, err := auth.ParseTokens("web:app:" + appToken + ",aud:auditor:" + auditorToken + ",root:admin:" + adminToken)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := audit.OpenTree(ctx, filepath.Join(dir, "tree.db"), audit.WithTileHeight(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tree.Close() })
	ledger, err := audit.NewLedger(audit.LedgerConfig{Tree: tree, Feed: st.feed, Source: st.src, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	access, err := audit.OpenAccessLog(ctx, filepath.Join(dir, "access.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = access.Close() })
	core, logs := observer.New(zap.InfoLevel)
	s := httpapi.New(httpapi.Config{Store: store, Commands: commands.NewHandler(store), Tokens: tokens, Log: zap.New(core)})
	s.MountAudit(httpapi.Audit{Ledger: ledger, AccessLog: access})
	srv := describedServer(t, s)
	return &auditAPI{api: &api{t: t, url: srv.URL}, auditStore: st, access: access, logs: logs, dir: dir}
}

func decodeInto[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func TestAuditEndpoints(t *testing.T) {
	t.Parallel()
	a := newAuditAPI(t)
	id := a.createContact()
	for i := range 6 {
		if r := a.do("POST", "/v1/contacts/"+id+"/touchpoints", appToken, fmt.Sprintf(`{"kind":"call","note":"call %d"}`, i)); r.status != http.StatusOK {
			t.Fatalf("touchpoint: %d %s", r.status, r.body)
		}
	}
	stream := "contact-" + id

	// The key an auditor pins, then a checkpoint it verifies.
	info := decodeInto[audit.KeyInfo](t, a.do("GET", "/v1/audit/key", auditorToken, ""))
	key, err := audit.NewPublicKey(info.PublicKey)
	if err != nil || key.ID() != info.KeyID {
		t.Fatalf("key %+v: %v", info, err)
	}
	first := decodeInto[audit.Checkpoint](t, a.do("GET", "/v1/audit/checkpoint", auditorToken, ""))
	if err := key.Verify(first); err != nil || first.Size != 7 {
		t.Fatalf("checkpoint %+v: %v", first, err)
	}

	// An inclusion proof of each event, against the checkpoint it carries, whose chain hash
	// is the hash the history shows.
	history := decodeInto[httpapi.History](t, a.do("GET", "/v1/contacts/"+id+"/history", auditorToken, ""))
	for _, e := range history.Events {
		p := decodeInto[audit.InclusionProof](t, a.do("GET", fmt.Sprintf("/v1/audit/proof?stream=%s&version=%d", stream, e.Version), auditorToken, ""))
		if p.Checkpoint == nil {
			t.Fatal("a proof against the current tree carries no checkpoint")
		}
		if err := p.Verify(key, *p.Checkpoint); err != nil {
			t.Fatalf("proof of version %d: %v", e.Version, err)
		}
		if p.ChainHash.String() != e.Hash || p.Position != e.Position {
			t.Fatalf("proof of version %d: chain hash %s position %d, history %s %d", e.Version, p.ChainHash, p.Position, e.Hash, e.Position)
		}
	}

	// The log grows; the new checkpoint extends the first, and old proofs still hold.
	for range 5 {
		a.createContact()
	}
	second := decodeInto[audit.Checkpoint](t, a.do("GET", "/v1/audit/checkpoint", auditorToken, ""))
	c := decodeInto[audit.ConsistencyProof](t, a.do("GET", fmt.Sprintf("/v1/audit/consistency?from=%d&to=%d", first.Size, second.Size), auditorToken, ""))
	if err := c.Verify(key, first, second); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	c = decodeInto[audit.ConsistencyProof](t, a.do("GET", fmt.Sprintf("/v1/audit/consistency?from=%d", first.Size), adminToken, ""))
	if c.Checkpoint == nil || c.Verify(key, first, *c.Checkpoint) != nil {
		t.Fatalf("consistency with the current tree: %+v", c)
	}
	old := decodeInto[audit.InclusionProof](t, a.do("GET", fmt.Sprintf("/v1/audit/proof?stream=%s&version=3&size=%d", stream, first.Size), auditorToken, ""))
	if err := old.Verify(key, first); err != nil {
		t.Fatalf("proof against the first checkpoint: %v", err)
	}
	if err := old.Verify(key, second); !errors.Is(err, audit.ErrInvalidProof) {
		t.Fatalf("a proof for the first checkpoint verified against the second: %v", err)
	}

	for _, tc := range []struct {
		name, path, token string
		status            int
		problem           string
	}{
		{"an app may not", "/v1/audit/checkpoint", appToken, 403, "forbidden"},
		{"nobody without a token", "/v1/audit/key", "", 401, "unauthorized"},
		{"no stream", "/v1/audit/proof?version=1", auditorToken, 400, "bad-request"},
		{"no version", "/v1/audit/proof?stream=" + stream, auditorToken, 400, "bad-request"},
		{"version 0", "/v1/audit/proof?stream=" + stream + "&version=0", auditorToken, 400, "bad-request"},
		{"unknown stream", "/v1/audit/proof?stream=contact-nobody&version=1", auditorToken, 404, "not-found"},
		{"unknown version", "/v1/audit/proof?stream=" + stream + "&version=99", auditorToken, 404, "not-found"},
		{"tree too small for the event", "/v1/audit/proof?stream=" + stream + "&version=7&size=3", auditorToken, 422, "out-of-range"},
		{"tree larger than the log", "/v1/audit/proof?stream=" + stream + "&version=1&size=999", auditorToken, 422, "out-of-range"},
		{"consistency backwards", "/v1/audit/consistency?from=9&to=3", auditorToken, 422, "out-of-range"},
		{"consistency without from", "/v1/audit/consistency", auditorToken, 400, "bad-request"},
		{"an auditor may not read the access log", "/v1/audit/access-log", auditorToken, 403, "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do("GET", tc.path, tc.token, "")
			if r.status != tc.status || !strings.HasSuffix(r.json(t)["type"].(string), "/"+tc.problem) {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.problem)
			}
		})
	}

	// Every authorized read, the history's included, is in the access log, in order, chained.
	page := decodeInto[struct {
		Entries   []audit.Access `json:"entries"`
		NextAfter int64          `json:"next_after"`
	}](t, a.do("GET", "/v1/audit/access-log?limit=1000", adminToken, ""))
	var paths []string
	for _, e := range page.Entries {
		paths = append(paths, e.Path)
	}
	joined := strings.Join(paths, " ")
	for _, want := range []string{"/v1/audit/key", "/v1/audit/checkpoint", "/v1/contacts/" + id + "/history", "/v1/audit/proof", "/v1/audit/consistency"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("no %s in the access log: %s", want, joined)
		}
	}
	first0 := page.Entries[0]
	if first0.Actor != "aud" || first0.Role != "auditor" || first0.RequestID == "" || first0.Status != 200 || first0.What != "key "+key.ID() {
		t.Fatalf("first access %+v", first0)
	}
	for _, e := range page.Entries {
		if strings.Contains(e.Path, "history") && e.What != "history of "+id {
			t.Fatalf("history access %+v", e)
		}
		if e.Actor == "web" {
			t.Fatalf("a refused read was recorded: %+v", e)
		}
	}
	if n, err := a.access.Verify(context.Background()); err != nil || n < int64(len(page.Entries)) {
		t.Fatalf("access log chain: %d, %v", n, err)
	}
	if a.logs.FilterMessage("auditor read").FilterField(zap.String("actor", "aud")).Len() == 0 {
		t.Fatal("no zap line for auditor reads")
	}
}

// A read that cannot be recorded is not served.
func TestAuditorReadsAreNotServedUnrecorded(t *testing.T) {
	t.Parallel()
	a := newAuditAPI(t)
	id := a.createContact()
	if r := a.do("GET", "/v1/contacts/"+id+"/history", auditorToken, ""); r.status != http.StatusOK {
		t.Fatalf("history: %d", r.status)
	}
	if err := a.access.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/contacts/" + id + "/history", "/v1/audit/checkpoint"} {
		r := a.do("GET", path, auditorToken, "")
		if r.status != http.StatusInternalServerError || strings.Contains(string(r.body), "Yui") || strings.Contains(string(r.body), "root_hash") {
			t.Fatalf("%s with the access log down: %d %s", path, r.status, r.body)
		}
	}
	// Reads that are not audited do not depend on it.
	if r := a.do("GET", "/v1/contacts/"+id, appToken, ""); r.status != http.StatusOK {
		t.Fatalf("contact: %d %s", r.status, r.body)
	}
}

// A consistency proof from the empty tree, or between trees of one size, is empty: the
// verifier checks the newer signature, and for equal sizes that the roots are equal.
func TestConsistencyOfEmptyAndEqualTrees(t *testing.T) {
	t.Parallel()
	for _, backend := range auditBackends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			a := newAuditAPIOn(t, backend)
			for range 3 {
				a.createContact()
			}
			for _, tc := range []struct {
				name, query string
				from, to    int64
			}{
				{"empty with empty", "from=0&to=0", 0, 0},
				{"empty with the current tree", "from=0", 0, 3},
				{"empty with a tree", "from=0&to=2", 0, 2},
				{"a tree with itself", "from=2&to=2", 2, 2},
				{"the current tree with itself", "from=3", 3, 3},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := decodeInto[audit.ConsistencyProof](t, a.do("GET", "/v1/audit/consistency?"+tc.query, auditorToken, ""))
					if p.From != tc.from || p.To != tc.to || p.Proof == nil || len(p.Proof) != 0 {
						t.Fatalf("proof %+v, want an empty proof from %d to %d", p, tc.from, tc.to)
					}
				})
			}
			for _, tc := range []struct {
				name, query string
				status      int
				problem     string
			}{
				{"a tree with the empty tree", "from=1&to=0", 422, "out-of-range"},
				{"a negative size", "from=0&to=-1", 400, "bad-request"},
				{"an empty size", "from=0&to=", 400, "bad-request"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := a.do("GET", "/v1/audit/consistency?"+tc.query, auditorToken, "")
					if r.status != tc.status || !strings.HasSuffix(r.json(t)["type"].(string), "/"+tc.problem) {
						t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.problem)
					}
				})
			}
		})
	}
}
