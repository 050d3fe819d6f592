package esdb

import (
	"testing"

	"github.com/eventcrm/crm/eventstore"
)

func TestClassifyClaim(t *testing.T) {
	t.Parallel()
	const id = "evt-1"
	ev := func(id string) *eventstore.Event { return &eventstore.Event{ID: id, Stream: "s", Version: 3} }
	tests := []struct {
		name    string
		claim   *claim
		stream  string
		version int64
		atSlot  *eventstore.Event
		want    claimStatus
	}{
		{"never claimed", nil, "s", 3, nil, claimFree},
		{"released", &claim{}, "s", 3, nil, claimFree},
		{"stored where we would write it", &claim{"s", 3}, "s", 3, ev(id), claimStored},
		{"stored elsewhere", &claim{"s", 3}, "t", 1, ev(id), claimStored},
		{"earlier attempt of this append", &claim{"s", 3}, "s", 3, nil, claimOurs},
		{"slot filled by another event", &claim{"s", 3}, "s", 4, ev("other"), claimDead},
		{"our slot filled by another event", &claim{"s", 3}, "s", 3, ev("other"), claimDead},
		{"another stream may still write it", &claim{"s", 3}, "t", 1, nil, claimPending},
		{"another version may still write it", &claim{"s", 3}, "s", 4, nil, claimPending},
		{"lookup only", &claim{"s", 3}, "", 0, nil, claimPending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := classifyClaim(tt.claim, id, tt.stream, tt.version, tt.atSlot); got != tt.want {
				t.Errorf("classifyClaim = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClaimStream(t *testing.T) {
	t.Parallel()
	u, _ := eventUUID("5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d")
	if got, want := claimStream(u), "crm-eventid-5a1e3c4d-2b6f-4a8e-9c0d-1e2f3a4b5c6d"; got != want {
		t.Errorf("claimStream = %q, want %q", got, want)
	}
	if !reservedStream(claimStream(u)) || !internalEvent(claimStream(u), claimEventType) {
		t.Error("claim streams must be reserved and left out of the global log")
	}
}
