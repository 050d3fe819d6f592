package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestAccessLogIsAppendOnlyAndChained(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "access.db")
	l, err := OpenAccessLog(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 5 {
		a, err := l.Record(ctx, Access{Actor: "aud", Role: "auditor", RequestID: fmt.Sprint(i), Method: "GET",
			Path: "/v1/audit/checkpoint", Status: 200, What: "checkpoint"})
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != int64(i+1) {
			t.Fatalf("seq %d", a.Seq)
		}
	}
	list, err := l.List(ctx, 2, 10)
	if err != nil || len(list) != 3 || list[0].Seq != 3 || list[0].PrevHash == (Hash{}) {
		t.Fatalf("list after 2: %+v, %v", list, err)
	}
	if n, err := l.Verify(ctx); err != nil || n != 5 {
		t.Fatalf("verify: %d, %v", n, err)
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{"UPDATE access_log SET actor = 'x' WHERE seq = 2", "DELETE FROM access_log WHERE seq = 5"} {
		if _, err := db.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	// Whoever drops the triggers can edit, but not without breaking the chain.
	if _, err := db.Exec("DROP TRIGGER access_log_no_update; UPDATE access_log SET actor = 'someone else' WHERE seq = 2"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Verify(ctx); !errors.Is(err, ErrLogAltered) || !strings.Contains(err.Error(), "entry 2") {
		t.Fatalf("verify an edited log: %v", err)
	}
}
