package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eventcrm/crm/eventstore/audit"
)

// saveCheckpoint runs `crm audit checkpoint` and keeps its output in a file.
func saveCheckpoint(t *testing.T, env map[string]string, path string) audit.Checkpoint {
	t.Helper()
	out, _, err := crm(t, env, "audit", "checkpoint")
	if err != nil {
		t.Fatalf("audit checkpoint: %v", err)
	}
	cp, err := audit.ParseCheckpoint([]byte(out))
	if err != nil {
		t.Fatalf("checkpoint %q: %v", out, err)
	}
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestAuditCommandLine(t *testing.T) {
	t.Parallel()
	env, path := seeded(t, "40")
	dir := env["CRM_DATA_DIR"]
	cpPath := filepath.Join(t.TempDir(), "cp.json")
	cp := saveCheckpoint(t, env, cpPath)

	keyOut, _, err := crm(t, env, "audit", "key")
	if err != nil {
		t.Fatal(err)
	}
	var info audit.KeyInfo
	if err := json.Unmarshal([]byte(keyOut), &info); err != nil || info.KeyID != cp.KeyID {
		t.Fatalf("audit key %q (%v), checkpoint key %s", keyOut, err, cp.KeyID)
	}
	keyPath := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyPath, []byte(keyOut), 0o600); err != nil {
		t.Fatal(err)
	}
	var stream string
	if err := openDB(t, path).QueryRow(`SELECT stream FROM events WHERE version = 3 ORDER BY position LIMIT 1`).Scan(&stream); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"the whole log", []string{"--all", "--quiet"}, "OK: " + itoa(cp.Size) + " events match"},
		{"the whole log, by default, with the pinned key", []string{"--quiet", "--key", keyPath}, "OK: "},
		{"a stream", []string{"--stream", stream}, "chain intact"},
		{"an event", []string{"--event", stream + ":3"}, "OK: " + stream + " version 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := crm(t, env, append([]string{"audit", "verify", "--checkpoint", cpPath}, tc.args...)...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("%q, %v; want %q", out, err, tc.want)
			}
		})
	}

	// The log grows: the newer checkpoint extends the older, not the other way round.
	if _, _, err := crm(t, env, "seed", "--contacts", "50", "--quiet"); err != nil {
		t.Fatal(err)
	}
	newerPath := filepath.Join(t.TempDir(), "newer.json")
	newer := saveCheckpoint(t, env, newerPath)
	if newer.Size <= cp.Size {
		t.Fatalf("checkpoint of %d events after one of %d", newer.Size, cp.Size)
	}
	if out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpPath, "--newer", newerPath); err != nil || !strings.Contains(out, "extends") {
		t.Fatalf("newer extends older: %q, %v", out, err)
	}
	if out, _, err := crm(t, env, "audit", "verify", "--checkpoint", newerPath, "--newer", cpPath); err == nil {
		t.Fatalf("older extends newer: %q", out)
	}
	if out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpPath, "--all", "--quiet"); err != nil || !strings.Contains(out, "newer") {
		t.Fatalf("the old checkpoint against the grown log: %q, %v", out, err)
	}

	// Forged checkpoints and another key.
	forged := filepath.Join(t.TempDir(), "forged.json")
	b, _ := os.ReadFile(cpPath)
	if err := os.WriteFile(forged, []byte(strings.Replace(string(b), cp.RootHash.String(), newer.RootHash.String(), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(t.TempDir(), "other")
	other, _, err := audit.LoadOrCreateKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := filepath.Join(otherKey, "pub.pem")
	if err := os.WriteFile(otherPEM, []byte(other.Public().PEM()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"a checkpoint with another root", []string{"--checkpoint", forged}},
		{"another server's key", []string{"--checkpoint", cpPath, "--key", otherPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := crm(t, env, append([]string{"audit", "verify", "--quiet"}, tc.args...)...)
			if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(err.Error(), "signature") {
				t.Fatalf("%q, %v", out, err)
			}
		})
	}

	// Tampered copies: the first problem is named (want is a regular expression), and the
	// exit is not zero.
	for _, tc := range []struct {
		name, sql, args, want string
	}{
		{"changed data", `UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '"', ' "') AS BLOB) WHERE position = 37`, "--all", "position 37"},
		{"metadata key in other case", `UPDATE events SET metadata = CAST(replace(CAST(metadata AS TEXT), '"actor"', '"Actor"') AS BLOB) WHERE position = 37`, "--all", "position 37"},
		{"deleted the checkpoint's last event", `DELETE FROM events WHERE position = ` + itoa(cp.LastPosition), "--all", "the checkpoint's last is at " + itoa(cp.LastPosition)},
		{"swapped positions", `UPDATE events SET position = -1 WHERE position = 10; UPDATE events SET position = 10 WHERE position = 11; UPDATE events SET position = 11 WHERE position = -1`, "--all",
			// Two events of one stream break its chain; of two streams, the log's root.
			`first change: events 0 to 255|\(position 1[01], event`},
		{"changed event, proven alone", `UPDATE events SET data = CAST(replace(CAST(data AS TEXT), '"', ' "') AS BLOB) WHERE stream = '` + stream + `' AND version = 3`, "--event " + stream + ":3", "version 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tdir := t.TempDir()
			copyDB(t, filepath.Join(dir, "crm.db"), filepath.Join(tdir, "crm.db"))
			copyDB(t, filepath.Join(dir, auditTreeFile), filepath.Join(tdir, auditTreeFile))
			if _, err := openDB(t, filepath.Join(tdir, "crm.db")).Exec(tc.sql); err != nil {
				t.Fatal(err)
			}
			tenv := map[string]string{"CRM_DATA_DIR": tdir}
			args := append([]string{"audit", "verify", "--quiet", "--checkpoint", cpPath, "--key", keyPath}, strings.Fields(tc.args)...)
			out, _, err := crm(t, tenv, args...)
			if err == nil || !strings.Contains(out, "FAILED") || !regexp.MustCompile(tc.want).MatchString(out+err.Error()) {
				t.Fatalf("%q, %v; want the problem named (%q)", out, err, tc.want)
			}
		})
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestAuditCommandLineErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CRM_DATA_DIR": t.TempDir()}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"audit"}, "audit needs a command"},
		{"unknown subcommand", []string{"audit", "sign"}, "unknown audit command"},
		{"verify without a checkpoint", []string{"audit", "verify", "--all"}, "--checkpoint"},
		{"two modes", []string{"audit", "verify", "--checkpoint", "x", "--all", "--stream", "s"}, "one of"},
		{"a malformed event", []string{"audit", "verify", "--checkpoint", "x", "--event", "contact-1"}, "STREAM:VERSION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := crm(t, env, tc.args...)
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !asUsage(err, &ue) {
				t.Fatalf("%v, want a usage error about %q", err, tc.want)
			}
		})
	}
	if _, _, err := crm(t, env, "audit", "verify", "--checkpoint", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("verified against a missing checkpoint")
	}
}

func asUsage(err error, ue *usageError) bool {
	u, ok := err.(usageError)
	*ue = u
	return ok
}

// The same on PostgreSQL: checkpoint and verification read the schema's rows.
func TestAuditCommandLineOnPostgres(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CRM_STORE": boundedSchema(t), "CRM_DATA_DIR": t.TempDir()}
	if _, _, err := crm(t, env, "seed", "--contacts", "30", "--quiet"); err != nil {
		t.Fatal(err)
	}
	cpPath := filepath.Join(t.TempDir(), "cp.json")
	saveCheckpoint(t, env, cpPath)
	out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpPath, "--quiet")
	if err != nil || !strings.HasPrefix(strings.SplitN(out, "\n", 2)[1], "OK: ") {
		t.Fatalf("verify on PostgreSQL: %q, %v", out, err)
	}
	if _, _, err := crm(t, env, "seed", "--contacts", "35", "--quiet"); err != nil {
		t.Fatal(err)
	}
	newerPath := filepath.Join(t.TempDir(), "newer.json")
	saveCheckpoint(t, env, newerPath)
	if out, _, err := crm(t, env, "audit", "verify", "--checkpoint", cpPath, "--newer", newerPath); err != nil {
		t.Fatalf("newer extends older on PostgreSQL: %q, %v", out, err)
	}
}

// CRM_AUDIT_KEY_FILE names the deployment's key: created there (mode 0600) when missing,
// used instead of the data directory's audit.key, and refused when others may read it.
func TestAuditKeyFile(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "keys", "audit.key")
	env := map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_AUDIT_KEY_FILE": keyFile}
	out, _, err := crm(t, env, "audit", "key")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(env["CRM_DATA_DIR"], audit.KeyFile)); err == nil {
		t.Error("audit.key created in the data directory although CRM_AUDIT_KEY_FILE names the key")
	}
	// Another data directory, the same key file: the same key.
	again, _, err := crm(t, map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_AUDIT_KEY_FILE": keyFile}, "audit", "key")
	if err != nil || again != out {
		t.Fatalf("the same key file gives %q (%v), not %q", again, err, out)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := crm(t, env, "audit", "key"); err == nil || !strings.Contains(err.Error(), "CRM_AUDIT_KEY_FILE") || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file others may read: %v", err)
	}
}
