package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/eventcrm/crm/eventstore"
)

// The chain hash of a stored row is eventstore.ChainHash of the event it decodes to, so a
// tree fed through a Store and one verified from raw rows agree.
func TestRowChainHashIsTheEventsChainHash(t *testing.T) {
	at := time.Date(2024, 3, 31, 9, 30, 0, 123456000, time.UTC)
	for _, tc := range []struct {
		name string
		e    eventstore.Event
	}{
		{"first of a stream", eventstore.Event{ID: "a", Stream: "contact-1", Version: 1, Type: "contact.created.v1",
			Data: []byte(`{"name":"Ada"}`), OccurredAt: at, RecordedAt: at}},
		{"with every metadata field", eventstore.Event{ID: "b", Stream: "deal-9", Version: 7, Type: "deal.won.v1",
			Data: []byte(`{}`), PrevHash: bytes.Repeat([]byte{7}, 32), OccurredAt: at.Add(-time.Hour), RecordedAt: at,
			Metadata: eventstore.Metadata{Actor: "ann", CommandID: "c", CorrelationID: "co", CausationID: "ca",
				Reason: `needs "quotes" & <escapes>`, RequestHash: "rh", Headers: `{"k":"v"}`}}},
		{"no data, old dates", eventstore.Event{ID: "c", Stream: "s", Version: 2, Type: "x.v1", PrevHash: []byte{1},
			OccurredAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), RecordedAt: at}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := RowOf(tc.e)
			got := newHasher().chainHash(&row)
			if want := eventstore.ChainHash(tc.e.PrevHash, tc.e); !bytes.Equal(got[:], want) {
				t.Fatalf("row chain hash %s, eventstore.ChainHash %x", got, want)
			}
		})
	}
}

// The leaf is frozen: changing it orphans every checkpoint ever signed. This spells it out
// byte by byte, as the README does for independent verifiers.
func TestLeafLayout(t *testing.T) {
	chain := sha256.Sum256([]byte("chain"))
	var want []byte
	want = append(want, 1)
	want = binary.BigEndian.AppendUint64(want, 42)
	want = binary.BigEndian.AppendUint64(want, 3)
	want = binary.BigEndian.AppendUint64(want, uint64(len("contact-7")))
	want = append(want, "contact-7"...)
	want = append(want, chain[:]...)
	if got := AppendLeaf(nil, 42, "contact-7", 3, chain); !bytes.Equal(got, want) {
		t.Fatalf("leaf %x, want %x", got, want)
	}
	sum := sha256.Sum256(append([]byte{0}, want...))
	if got := EventLeafHash(42, "contact-7", 3, chain); got != Hash(sum) {
		t.Fatalf("leaf hash %s, want %x", got, sum)
	}
	// The README's example, computed there with Python's hashlib and struct.
	if got := EventLeafHash(42, "contact-7", 3, chain).String(); got != "b27ad8db0e0047b69cb4d319afa5990fef121b83fa25d2184452304c4e6ff168" {
		t.Fatalf("leaf hash %s differs from the README's example", got)
	}
	row := Row{Position: 42, Stream: "contact-7", Version: 3}
	if got := newHasher().leafHash(&row, chain); got != Hash(sum) {
		t.Fatalf("hasher leaf hash %s, want %x", got, sum)
	}
}
