package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/eventstore/audit"
)

// This file checks the audit trail the way a third party would, from the README's
// definitions alone: everything below hashes with crypto/sha256 and verifies with
// crypto/ed25519, never with the project's hashing code.

// verifierHistory is the history as a verifier reads it.
type verifierHistory struct {
	Stream string `json:"stream"`
	Intact bool   `json:"intact"`
	Events []struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		Version     int64  `json:"version"`
		Position    int64  `json:"position"`
		OccurredAt  string `json:"occurred_at"`
		RecordedAt  string `json:"recorded_at"`
		Reason      string `json:"reason"`
		DataB64     string `json:"data_b64"`
		MetadataB64 string `json:"metadata_b64"`
		PrevHash    string `json:"prev_hash"`
		Hash        string `json:"hash"`
	} `json:"events"`
}

type verifierProof struct {
	Stream     string             `json:"stream"`
	Version    int64              `json:"version"`
	Position   int64              `json:"position"`
	ChainHash  string             `json:"chain_hash"`
	LeafIndex  uint64             `json:"leaf_index"`
	TreeSize   uint64             `json:"tree_size"`
	AuditPath  []string           `json:"audit_path"`
	Checkpoint verifierCheckpoint `json:"checkpoint"`
}

type verifierCheckpoint struct {
	Size         int64  `json:"size"`
	LastPosition int64  `json:"last_position"`
	RootHash     string `json:"root_hash"`
	Timestamp    string `json:"timestamp"`
	KeyID        string `json:"key_id"`
	Signature    string `json:"signature"`
}

func lp(b []byte) []byte { return append(binary.BigEndian.AppendUint64(nil, uint64(len(b))), b...) }

func u64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64 %q: %v", s, err)
	}
	return b
}

func micros(t *testing.T, s string) int64 {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at.UnixMicro()
}

// chainHashOf is the README's chain hash.
func chainHashOf(prev []byte, id, stream string, version int64, typ string, occurred, recorded int64, data, meta []byte) []byte {
	var b []byte
	b = append(b, lp(prev)...)
	b = append(b, lp([]byte(id))...)
	b = append(b, lp([]byte(stream))...)
	b = append(b, u64(version)...)
	b = append(b, lp([]byte(typ))...)
	b = append(b, u64(occurred)...)
	b = append(b, u64(recorded)...)
	b = append(b, lp(data)...)
	b = append(b, lp(meta)...)
	sum := sha256.Sum256(b)
	return sum[:]
}

// leafHashOf is the README's leaf hash of an event.
func leafHashOf(position, version int64, stream string, chain []byte) []byte {
	leaf := append([]byte{0x01}, u64(position)...)
	leaf = append(leaf, u64(version)...)
	leaf = append(leaf, lp([]byte(stream))...)
	leaf = append(leaf, chain...)
	sum := sha256.Sum256(append([]byte{0x00}, leaf...))
	return sum[:]
}

func nodeHash(left, right []byte) []byte {
	sum := sha256.Sum256(append(append([]byte{0x01}, left...), right...))
	return sum[:]
}

// rootFromPath walks an audit path as RFC 9162 section 2.1.3.2 says.
func rootFromPath(index, size uint64, leaf []byte, path [][]byte) ([]byte, bool) {
	if index >= size {
		return nil, false
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range path {
		if sn == 0 {
			return nil, false
		}
		if fn&1 == 1 || fn == sn {
			r = nodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = nodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	return r, sn == 0
}

// checkSignature verifies a checkpoint's Ed25519 signature over its six lines.
func checkSignature(t *testing.T, pub ed25519.PublicKey, cp verifierCheckpoint) {
	t.Helper()
	id := sha256.Sum256(pub)
	if cp.KeyID != hex.EncodeToString(id[:8]) {
		t.Fatalf("key_id %s is not the key's", cp.KeyID)
	}
	text := fmt.Sprintf("eventcrm audit checkpoint v1\nsize %d\nlast_position %d\nroot_hash %s\ntimestamp %s\nkey_id %s\n",
		cp.Size, cp.LastPosition, cp.RootHash, cp.Timestamp, cp.KeyID)
	if !ed25519.Verify(pub, []byte(text), unb64(t, cp.Signature)) {
		t.Fatalf("the signature of checkpoint %+v does not verify", cp)
	}
}

// verifyIndependently recomputes every chain hash of stream from its history's stored bytes,
// proves each event into the current signed checkpoint and verifies the signature.
func verifyIndependently(t *testing.T, a *auditAPI, kind, id string) {
	t.Helper()
	var key struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal(a.do("GET", "/v1/audit/key", auditorToken, "").body, &key); err != nil {
		t.Fatal(err)
	}
	pub := ed25519.PublicKey(unb64(t, key.PublicKey))
	r := a.do("GET", "/v1/"+kind+"s/"+id+"/history", auditorToken, "")
	if r.status != http.StatusOK {
		t.Fatalf("history: %d %s", r.status, r.body)
	}
	var h verifierHistory
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Stream != kind+"-"+id || !h.Intact || len(h.Events) == 0 {
		t.Fatalf("history of %s: stream %q intact %v, %d events", id, h.Stream, h.Intact, len(h.Events))
	}
	var prev []byte
	for _, e := range h.Events {
		if !bytes.Equal(unhex(t, e.PrevHash), prev) {
			t.Fatalf("version %d: prev_hash %s is not the previous hash %x", e.Version, e.PrevHash, prev)
		}
		chain := chainHashOf(prev, e.ID, h.Stream, e.Version, e.Type, micros(t, e.OccurredAt), micros(t, e.RecordedAt),
			unb64(t, e.DataB64), unb64(t, e.MetadataB64))
		if hex.EncodeToString(chain) != e.Hash {
			t.Fatalf("version %d: recomputed chain hash %x, history says %s\nmetadata %s", e.Version, chain, e.Hash, unb64(t, e.MetadataB64))
		}
		prev = chain

		var p verifierProof
		path := fmt.Sprintf("/v1/audit/proof?stream=%s&version=%d", url.QueryEscape(h.Stream), e.Version)
		if err := json.Unmarshal(a.do("GET", path, auditorToken, "").body, &p); err != nil {
			t.Fatal(err)
		}
		if p.ChainHash != e.Hash || p.Position != e.Position {
			t.Fatalf("proof of version %d names chain hash %s at %d", e.Version, p.ChainHash, p.Position)
		}
		steps := make([][]byte, len(p.AuditPath))
		for i, s := range p.AuditPath {
			steps[i] = unhex(t, s)
		}
		root, ok := rootFromPath(p.LeafIndex, p.TreeSize, leafHashOf(e.Position, e.Version, h.Stream, chain), steps)
		if !ok || hex.EncodeToString(root) != p.Checkpoint.RootHash || int64(p.TreeSize) != p.Checkpoint.Size {
			t.Fatalf("version %d: the audit path leads to %x (ok %v), checkpoint root %s", e.Version, root, ok, p.Checkpoint.RootHash)
		}
		checkSignature(t, pub, p.Checkpoint)
	}
}

// Whatever the headers and the body hold, the history gives the bytes that were hashed, and a
// verifier that knows only the README recomputes every hash and proof from them.
func TestHistoryVerifiesIndependently(t *testing.T) {
	t.Parallel()
	for _, backend := range auditBackends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			a := newAuditAPIOn(t, backend)
			r := a.do("POST", "/v1/contacts", appToken,
				`{"name":"佐藤 <ユイ> & \u2028 Sato","email":"yui@example.com","company":"A&B <Corp>\u2029","channel":"seminar"}`,
				"X-Reason", "顧客の依頼 <urgent> & \u2028 next line",
				"X-Correlation-ID", "相関-<1>&2",
				"X-Causation-ID", "原因\u2028",
				"Idempotency-Key", "キー-<1>&")
			if r.status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.status, r.body)
			}
			id := r.json(t)["id"].(string)
			for i, note := range []string{"<script>alert(1)</script>", "電話 & メール\u2028次", "plain"} {
				r := a.do("POST", "/v1/contacts/"+id+"/touchpoints", appToken, fmt.Sprintf(`{"kind":"call","note":%q}`, note),
					"X-Reason", fmt.Sprintf("理由 %d <&>\u2028", i))
				if r.status != http.StatusOK {
					t.Fatalf("touchpoint: %d %s", r.status, r.body)
				}
			}
			deal := a.do("POST", "/v1/deals", appToken, fmt.Sprintf(`{"contact_id":%q,"title":"導入 <A&B>","amount":120000,"currency":"JPY"}`, id),
				"X-Reason", "商談\u2028<開始>")
			if deal.status != http.StatusCreated {
				t.Fatalf("deal: %d %s", deal.status, deal.body)
			}
			verifyIndependently(t, a, "contact", id)
			verifyIndependently(t, a, "deal", deal.json(t)["id"].(string))
		})
	}
}

// rawCommand sends a command over a plain connection: Go's client refuses to send the header
// values these tests need.
func rawCommand(t *testing.T, a *auditAPI, path, body, header, value string) (status int, contentType string, answer []byte) {
	t.Helper()
	u, err := url.Parse(a.url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n%s: %s\r\nConnection: close\r\n\r\n%s", path, u.Host, appToken, len(body), header, value, body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), answer
}

// A header that reaches event metadata must be valid UTF-8 without control characters: such a
// command is refused and appends nothing.
func TestMetadataHeadersAreRefused(t *testing.T) {
	t.Parallel()
	for _, backend := range auditBackends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			a := newAuditAPIOn(t, backend)
			id := a.createContact()
			cmds := []struct{ path, body string }{
				{"/v1/contacts", `{"name":"Ken","email":"ken@example.com","channel":"seminar"}`},
				{"/v1/contacts/" + id + "/touchpoints", `{"kind":"call","note":"hello"}`},
			}
			for _, header := range []string{"X-Reason", "X-Correlation-ID", "X-Causation-ID", "Idempotency-Key"} {
				for _, tc := range []struct {
					name, value string
					// problem is false where Go's HTTP server itself refuses the byte (it
					// answers 400 in plain text before any handler runs).
					problem bool
				}{
					{"invalid UTF-8", "bad \xff byte", true},
					{"truncated UTF-8", "\xe3\x81", true},
					{"tab", "a\tb", true},
					{"C1 control", "next\u0085line", true},
					{"NUL", "nul\x00here", false},
					{"escape", "esc\x1b[0m", false},
				} {
					for _, c := range cmds {
						t.Run(header+"/"+tc.name+c.path, func(t *testing.T) {
							before := logLength(t, a.store)
							status, ct, body := rawCommand(t, a, c.path, c.body, header, tc.value)
							if status != http.StatusBadRequest {
								t.Fatalf("status %d: %s", status, body)
							}
							if tc.problem {
								var p struct{ Type, Field, Detail string }
								if err := json.Unmarshal(body, &p); err != nil || ct != "application/problem+json" ||
									!strings.HasSuffix(p.Type, "/bad-request") || p.Field != header || !strings.Contains(p.Detail, header) {
									t.Fatalf("%s %s, want a bad-request problem naming %s", ct, body, header)
								}
							}
							if after := logLength(t, a.store); after != before {
								t.Fatalf("a refused command appended %d events", after-before)
							}
						})
					}
				}
			}
			// Valid UTF-8 beyond ASCII is welcome.
			if r := a.do("POST", "/v1/contacts/"+id+"/touchpoints", appToken, `{"kind":"call"}`, "X-Reason", "理由\u2028<&>"); r.status != http.StatusOK {
				t.Fatalf("a valid reason: %d %s", r.status, r.body)
			}
		})
	}
}

// A log written before the edge refused such headers holds metadata whose stored bytes differ
// from a re-encoding of what they decode to (\ufffd for an invalid byte). It verifies: the
// history is intact, checkpoints and proofs are served, and offline verification agrees.
func TestLogWithReplacedBytesVerifies(t *testing.T) {
	t.Parallel()
	for _, backend := range auditBackends() {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			a := newAuditAPIOn(t, backend)
			ctx := context.Background()
			id := a.createContact()
			// What the edge passed on before it refused such headers.
			h := commands.NewHandler(a.store)
			if _, err := h.RecordTouchpoint(ctx, commands.Meta{Actor: "web", Reason: "bad \xff byte", CorrelationID: "\xfe\xff",
				CausationID: "nul\x00"}, commands.RecordTouchpoint{ContactID: id, Kind: "call"}); err != nil {
				t.Fatal(err)
			}
			a.createContact() // the tree goes on after it

			verifyIndependently(t, a, "contact", id)
			history := a.do("GET", "/v1/contacts/"+id+"/history", auditorToken, "")
			var hist verifierHistory
			if err := json.Unmarshal(history.body, &hist); err != nil {
				t.Fatal(err)
			}
			meta := string(unb64(t, hist.Events[1].MetadataB64))
			if !strings.Contains(meta, `"reason":"bad \ufffd byte"`) || hist.Events[1].Reason != "bad \ufffd byte" {
				t.Fatalf("stored metadata %s, reason %q", meta, hist.Events[1].Reason)
			}

			cp := decodeInto[audit.Checkpoint](t, a.do("GET", "/v1/audit/checkpoint", auditorToken, ""))
			if cp.Size != 3 {
				t.Fatalf("checkpoint of %d events, want 3", cp.Size)
			}
			signer, _, err := audit.LoadOrCreateKey(a.dir)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := audit.Verifier{Key: signer.Public(), Source: a.src}.Log(ctx, cp)
			if err != nil || rep.Covered != 3 {
				t.Fatalf("offline verification: %+v, %v", rep, err)
			}
			c := a.do("GET", "/v1/audit/consistency?from=1", auditorToken, "")
			if c.status != http.StatusOK {
				t.Fatalf("consistency: %d %s", c.status, c.body)
			}
		})
	}
}
