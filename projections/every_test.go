package projections_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
)

func TestEvery(t *testing.T) {
	for _, tc := range []struct {
		name      string
		every     time.Duration
		stopAfter int  // do returns false on this call (0: never)
		cancel    bool // ctx is cancelled before Every starts
		want      int  // calls of do
	}{
		{name: "until do stops", every: time.Millisecond, stopAfter: 3, want: 3},
		{name: "not after ctx ends", every: time.Hour, cancel: true, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				cancel()
			}
			calls := 0
			projections.Every(ctx, tc.every, func() bool {
				calls++
				return calls != tc.stopAfter
			})
			if calls != tc.want {
				t.Errorf("do called %d times, want %d", calls, tc.want)
			}
		})
	}
}
