package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/audit"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the worked example in docs/audit-worked-example.md")

// workedExampleDoc holds the worked example; the test owns the part between the markers.
const (
	workedExampleDoc   = "../../../../docs/audit-worked-example.md"
	workedExampleBegin = "<!-- values: written by TestWorkedExample, do not edit -->\n"
	workedExampleEnd   = "<!-- end of values -->\n"
)

// The worked example's log: three events at fixed times, with fixed ids, signed by a key
// made from a fixed seed.
const (
	exampleContact = "6f1c2b9e-4d3a-4c8e-9b7f-2a5d8e1c3f40"
	exampleDeal    = "0b7e4a12-9c5d-4f3e-8a1b-6d2c9e7f5a31"
)

func appendExampleLog(t *testing.T, store eventstore.Store) {
	t.Helper()
	ctx := context.Background()
	meta := eventstore.Metadata{Actor: "web", CommandID: "1c9d7e2a-5b3f-4e8d-a6c1-9f2e4b7d3a58",
		CorrelationID: "展示会-2026", CausationID: "1c9d7e2a-5b3f-4e8d-a6c1-9f2e4b7d3a58", Reason: "seminar <follow-up> & call\u2028next"}
	at := time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC)
	for _, a := range []struct {
		stream   string
		expected int64
		event    eventstore.EventData
	}{
		{"contact-" + exampleContact, eventstore.NoStream, eventstore.EventData{ID: "3e2a8c5d-7f1b-4a9e-b3d6-5c8f2e1a7b94", Type: "contact.created.v1",
			Data:     []byte(`{"contact_id":"` + exampleContact + `","name":"佐藤 ユイ","email":"yui@example.com","company":"A&B <Corp>","channel":"seminar","owner":"rep-mori"}`),
			Metadata: meta, OccurredAt: at}},
		{"contact-" + exampleContact, 1, eventstore.EventData{ID: "9a4f1e7c-2d8b-4c3a-95e6-1b7d4f8a2c63", Type: "contact.touchpoint_recorded.v1",
			Data:     []byte(`{"contact_id":"` + exampleContact + `","touchpoint_id":"tp-1","kind":"call","note":"Q&A <demo> 予約\u2028済み","phase":"lead"}`),
			Metadata: meta, OccurredAt: at.Add(time.Hour)}},
		{"deal-" + exampleDeal, eventstore.NoStream, eventstore.EventData{ID: "5d8b3f1a-6e2c-4b7d-8f9a-3c1e5a7d9b26", Type: "deal.opened.v1",
			Data:     []byte(`{"deal_id":"` + exampleDeal + `","contact_id":"` + exampleContact + `","title":"導入","amount":120000,"currency":"JPY","owner":"rep-mori"}`),
			Metadata: eventstore.Metadata{Actor: "web", CommandID: "7b2e9d4c-1a6f-4e3b-8c5d-2f9a7e1b4d86"}, OccurredAt: at.Add(2 * time.Hour)}},
	} {
		if _, err := store.Append(ctx, a.stream, a.expected, []eventstore.EventData{a.event}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWorkedExample recomputes, step by step and with crypto/sha256 and crypto/ed25519
// alone, the audit of the second event of a fixed three-event log, checks every step against
// what the server answers, and pins the values in docs/audit-worked-example.md.
func TestWorkedExample(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	recorded := time.Date(2026, 1, 15, 12, 0, 0, 123456000, time.UTC)
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "crm.db"), sqlite.WithClock(func() time.Time { return recorded }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	appendExampleLog(t, store)
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	signedAt := time.Date(2026, 1, 15, 12, 30, 0, 0, time.UTC)
	signer := audit.NewSigner(ed25519.NewKeyFromSeed(seed), func() time.Time { return signedAt })
	raw := audit.SQLiteSource(store.DB())
	a := serveAudit(t, auditStore{store: store, feed: raw, src: raw}, dir, signer)

	var out strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

	// The history's event, as served.
	var h struct {
		Stream string            `json:"stream"`
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(a.do("GET", "/v1/contacts/"+exampleContact+"/history", auditorToken, "").body, &h); err != nil {
		t.Fatal(err)
	}
	var e struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		Version     int64  `json:"version"`
		Position    int64  `json:"position"`
		OccurredAt  string `json:"occurred_at"`
		RecordedAt  string `json:"recorded_at"`
		DataB64     string `json:"data_b64"`
		MetadataB64 string `json:"metadata_b64"`
		PrevHash    string `json:"prev_hash"`
		Hash        string `json:"hash"`
	}
	if err := json.Unmarshal(h.Events[1], &e); err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, h.Events[1], "", "  "); err != nil {
		t.Fatal(err)
	}
	line("The second event of `GET /v1/contacts/%s/history` (top-level `stream`: `%s`):", exampleContact, h.Stream)
	line("")
	line("```json\n%s\n```", pretty.String())
	line("")

	// 1. The chain hash, from the stored bytes.
	data, meta := unb64(t, e.DataB64), unb64(t, e.MetadataB64)
	prev := unhex(t, e.PrevHash)
	occurred, rec := micros(t, e.OccurredAt), micros(t, e.RecordedAt)
	preimage := bytes.Join([][]byte{lp(prev), lp([]byte(e.ID)), lp([]byte(h.Stream)), u64(e.Version), lp([]byte(e.Type)),
		u64(occurred), u64(rec), lp(data), lp(meta)}, nil)
	chain := sha256.Sum256(preimage)
	if hex.EncodeToString(chain[:]) != e.Hash {
		t.Fatalf("chain hash %x, the history says %s", chain, e.Hash)
	}
	line("1. Chain hash")
	line("")
	line("```")
	line("data (%d bytes, base64-decoded data_b64):\n  %s", len(data), data)
	line("metadata (%d bytes, base64-decoded metadata_b64):\n  %s", len(meta), meta)
	line("occurred_at = %d µs, recorded_at = %d µs", occurred, rec)
	line("lp(prev_hash)   %x", lp(prev))
	line("lp(id)          %x", lp([]byte(e.ID)))
	line("lp(stream)      %x", lp([]byte(h.Stream)))
	line("u64(version)    %x", u64(e.Version))
	line("lp(type)        %x", lp([]byte(e.Type)))
	line("u64(occurred)   %x", u64(occurred))
	line("u64(recorded)   %x", u64(rec))
	line("lp(data)        %s", wrapHex(lp(data)))
	line("lp(metadata)    %s", wrapHex(lp(meta)))
	line("chain hash = SHA-256(all of the above, in this order)\n  %x", chain)
	line("```")
	line("")

	// 2. The leaf and its hash.
	leaf := bytes.Join([][]byte{{0x01}, u64(e.Position), u64(e.Version), lp([]byte(h.Stream)), chain[:]}, nil)
	leafHash := sha256.Sum256(append([]byte{0x00}, leaf...))
	line("2. Leaf and leaf hash")
	line("")
	line("```")
	line("leaf = 01 || u64(position %d) || u64(version %d) || lp(stream) || chain hash\n  %s", e.Position, e.Version, wrapHex(leaf))
	line("leaf hash = SHA-256(00 || leaf)\n  %x", leafHash)
	line("```")
	line("")

	// 3. The inclusion proof, walked to the root.
	var p verifierProof
	if err := json.Unmarshal(a.do("GET", fmt.Sprintf("/v1/audit/proof?stream=%s&version=%d", h.Stream, e.Version), auditorToken, "").body, &p); err != nil {
		t.Fatal(err)
	}
	line("3. Inclusion proof (`GET /v1/audit/proof?stream=%s&version=%d`): leaf_index %d, tree_size %d", h.Stream, e.Version, p.LeafIndex, p.TreeSize)
	line("")
	line("```")
	fn, sn, r := p.LeafIndex, p.TreeSize-1, leafHash[:]
	for i, s := range p.AuditPath {
		step := unhex(t, s)
		if fn&1 == 1 || fn == sn {
			r = nodeHash(step, r)
			line("audit_path[%d] %s\n  fn=%d is odd or the last: r = SHA-256(01 || audit_path[%d] || r)\n  r = %x", i, s, fn, i, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, step)
			line("audit_path[%d] %s\n  fn=%d is even: r = SHA-256(01 || r || audit_path[%d])\n  r = %x", i, s, fn, i, r)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || hex.EncodeToString(r) != p.Checkpoint.RootHash {
		t.Fatalf("the path leads to %x with sn %d; the checkpoint's root is %s", r, sn, p.Checkpoint.RootHash)
	}
	line("sn = 0 and r is the checkpoint's root_hash")
	line("```")
	line("")

	// 4. The checkpoint and its signature.
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	keyID := sha256.Sum256(pub)
	cp := p.Checkpoint
	text := fmt.Sprintf("eventcrm audit checkpoint v1\nsize %d\nlast_position %d\nroot_hash %s\ntimestamp %s\nkey_id %s\n",
		cp.Size, cp.LastPosition, cp.RootHash, cp.Timestamp, cp.KeyID)
	sig := unb64(t, cp.Signature)
	if cp.KeyID != hex.EncodeToString(keyID[:8]) || !ed25519.Verify(pub, []byte(text), sig) {
		t.Fatalf("checkpoint %+v does not verify with the example key", cp)
	}
	cpJSON, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	line("4. Checkpoint and signature")
	line("")
	line("```")
	line("Ed25519 seed (RFC 8032 private key) %x", seed)
	line("public key                          %x", []byte(pub))
	line("public key, base64                  %s", base64.StdEncoding.EncodeToString(pub))
	line("key_id = first 8 bytes of SHA-256(public key) = %s", cp.KeyID)
	line("```")
	line("")
	line("```json\n%s\n```", cpJSON)
	line("")
	line("The signed text (%d bytes, each line ending in \\n):", len(text))
	line("")
	line("```\n%s```", text)
	line("")
	line("```")
	line("signature (hex) %s", wrapHex(sig))
	line("```")

	checkWorkedExample(t, out.String())
	// The README states the chain hash, leaf hash and root of the example.
	readme, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{e.Hash, hex.EncodeToString(leafHash[:]), cp.RootHash} {
		if !bytes.Contains(readme, []byte("`"+v+"`")) {
			t.Errorf("the README does not state the worked example's %s", v)
		}
	}
}

// wrapHex is b in hex, 64 digits a line.
func wrapHex(b []byte) string {
	s := hex.EncodeToString(b)
	var lines []string
	for len(s) > 64 {
		lines = append(lines, s[:64])
		s = s[64:]
	}
	return strings.Join(append(lines, s), "\n  ")
}

// checkWorkedExample compares values with the part of the document the test owns, or writes
// them there with -rewrite.
func checkWorkedExample(t *testing.T, values string) {
	t.Helper()
	doc, err := os.ReadFile(workedExampleDoc)
	if err != nil {
		t.Fatal(err)
	}
	begin := bytes.Index(doc, []byte(workedExampleBegin))
	end := bytes.Index(doc, []byte(workedExampleEnd))
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %q and %q", workedExampleDoc, workedExampleBegin, workedExampleEnd)
	}
	current := string(doc[begin+len(workedExampleBegin) : end])
	if current == values {
		return
	}
	if !*rewrite {
		t.Fatalf("%s does not state the worked example's values (go test -run TestWorkedExample -rewrite writes them; review the diff). Want:\n%s",
			workedExampleDoc, values)
	}
	updated := append(append(append([]byte{}, doc[:begin+len(workedExampleBegin)]...), values...), doc[end:]...)
	if err := os.WriteFile(workedExampleDoc, updated, 0o644); err != nil {
		t.Fatal(err)
	}
}
