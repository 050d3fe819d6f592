package projections_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/eventcrm/crm/projections"
)

func TestConsumerCheckpoints(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := projections.OpenSQLite(ctx, filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.SQL.Close()
	cps, err := projections.NewConsumerCheckpoints(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if pos, err := cps.LoadCheckpoint(ctx, "g"); err != nil || pos != 0 {
		t.Fatalf("unsaved checkpoint = %d, %v", pos, err)
	}
	for _, want := range []int64{7, 3, 12} {
		if err := cps.SaveCheckpoint(ctx, "g", want); err != nil {
			t.Fatal(err)
		}
		if pos, err := cps.LoadCheckpoint(ctx, "g"); err != nil || pos != want {
			t.Fatalf("checkpoint = %d, %v; want %d", pos, err, want)
		}
	}
	if pos, _ := cps.LoadCheckpoint(ctx, "other"); pos != 0 {
		t.Fatalf("another name sees %d", pos)
	}
	// A second value over the same table sees the same checkpoints.
	again, err := projections.NewConsumerCheckpoints(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := again.LoadCheckpoint(ctx, "g"); pos != 12 {
		t.Fatalf("reopened checkpoint = %d, want 12", pos)
	}
}
