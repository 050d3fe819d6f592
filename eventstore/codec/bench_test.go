package codec_test

import (
	"context"
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

// BenchmarkCodec measures one event through the codec (a touchpoint with a note, its key
// cached): Seal is the append side, Open the read side, Plain the read of an event without
// personal data (the baseline: a type lookup). Compare with what a rebuild spends per event
// (about 16 µs at 62,000 events/s).
func BenchmarkCodec(b *testing.B) {
	ctx := context.Background()
	c := newCodec(b, newKeysB(b))
	data := []byte(`{"contact_id":"4f1c6a2e-8b9d-4e0f-a1b2-c3d4e5f60718","touchpoint_id":"7d2e0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b","kind":"meeting","note":"話した内容: 予算は4月に確定、担当者は田中さん","phase":"proposal"}`)
	sealed, err := c.Seal(ctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","kind":"meeting","text":"話した内容: 予算は4月に確定、担当者は田中さん","phase":"proposal"}`))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Seal", func(b *testing.B) {
		for range b.N {
			if _, err := c.Seal(ctx, "e1", "p.only.v1", []byte(`{"contact_id":"c1","kind":"meeting","text":"話した内容: 予算は4月に確定、担当者は田中さん","phase":"proposal"}`)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Open", func(b *testing.B) {
		e := eventstore.Event{ID: "e1", Type: "p.only.v1", Data: sealed}
		for range b.N {
			if _, err := c.Open(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Plain", func(b *testing.B) {
		e := eventstore.Event{ID: "e1", Type: "contact.touchpoint_recorded.v1", Data: data}
		for range b.N {
			if _, err := c.Open(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
