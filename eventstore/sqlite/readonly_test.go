package sqlite_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// files lists the names in dir.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A store opened read-only reads what was written, refuses to write, and leaves the file
// as it was.
func TestOpenReadOnly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "events.db")
	w := mustOpen(t, path)
	if _, err := w.Append(t.Context(), "s-1", eventstore.NoStream, []eventstore.EventData{{ID: "e-1", Type: "t.v1", Data: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	events, err := s.ReadStream(t.Context(), "s-1", 1, 10)
	if err != nil || len(events) != 1 || events[0].ID != "e-1" {
		t.Fatalf("ReadStream = %v, %v", events, err)
	}
	writes := []struct {
		name  string
		write func() error
	}{
		{"append", func() error {
			_, err := s.Append(t.Context(), "s-1", 1, []eventstore.EventData{{ID: "e-2", Type: "t.v1", Data: []byte(`{}`)}})
			return err
		}},
		{"checkpoint", func() error { return s.SaveCheckpoint(t.Context(), "group", 1) }},
		{"through the read pool", func() error {
			_, err := s.DB().ExecContext(t.Context(), "DELETE FROM events")
			return err
		}},
	}
	for _, tc := range writes {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.write(); err == nil {
				t.Fatal("a read-only store wrote")
			}
		})
	}
	if _, err := s.Append(t.Context(), "s-1", 1, []eventstore.EventData{{ID: "e-3", Type: "t.v1"}}); !errors.Is(err, sqlite.ErrReadOnly) {
		t.Fatalf("Append = %v, want ErrReadOnly", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, after) {
		t.Fatal("the file changed")
	}
}

// What OpenReadOnly refuses, creating nothing.
func TestOpenReadOnlyRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	older := filepath.Join(dir, "older.db")
	db, err := sql.Open("sqlite", older)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "missing.db"), "no such file"},
		{"schema not migrated", older, "open it once writable"},
		{"not a file path", ":memory:", "want the path of a file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.OpenReadOnly(t.Context(), tc.path)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
	if got := files(t, dir); !slices.Equal(got, []string{"older.db"}) {
		t.Fatalf("files %v, want only older.db", got)
	}
}
