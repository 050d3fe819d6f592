package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{"valid", "web:app:0123456789abcdef,ana:analyst:fedcba9876543210", ""},
		{"spaces and empty entries", " web:app:0123456789abcdef , ,", ""},
		{"empty", "", "no token configured"},
		{"missing part", "web:app", "want name:role:token"},
		{"unknown role", "web:boss:0123456789abcdef", `unknown role "boss"`},
		{"short token", "web:app:short", "shorter than 16"},
		{"duplicate token", "a:app:0123456789abcdef,b:admin:0123456789abcdef", "used twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTokens(tc.spec)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseTokens: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParseTokens error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestAuthenticateAndRoles(t *testing.T) {
	t.Parallel()
	tokens, err := ParseTokens("web:app:app-token-0123456789,aud:auditor:auditor-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tokens.Authenticate("app-token-0123456789")
	if !ok || p.Name != "web" || p.Role != RoleApp {
		t.Fatalf("Authenticate = %+v, %v", p, ok)
	}
	if _, ok := tokens.Authenticate("app-token-012345678"); ok {
		t.Fatal("a prefix of a token authenticated")
	}
	perms := []struct {
		role Role
		perm Permission
		want bool
	}{
		{RoleApp, PermWrite, true}, {RoleApp, PermHistory, false}, {RoleApp, PermRebuild, false},
		{RoleAnalyst, PermWrite, false}, {RoleAnalyst, PermRead, true}, {RoleAnalyst, PermRebuild, true},
		{RoleAuditor, PermWrite, false}, {RoleAuditor, PermHistory, true}, {RoleAuditor, PermVerify, true},
		{RoleAdmin, PermWrite, true}, {RoleAdmin, PermRebuild, true}, {RoleAdmin, PermVerify, true},
		{RoleAdmin, PermImport, true}, {RoleApp, PermImport, false}, {RoleAnalyst, PermImport, false},
		{RoleAuditor, PermImport, false},
	}
	for _, tc := range perms {
		if got := tc.role.Can(tc.perm); got != tc.want {
			t.Errorf("%s.Can(%s) = %v, want %v", tc.role, tc.perm, got, tc.want)
		}
	}
}

func TestEnsureAdminTokenIsStable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, created, err := EnsureAdminToken(dir)
	if err != nil || !created || len(first) < 32 {
		t.Fatalf("first EnsureAdminToken = %q, %v, %v", first, created, err)
	}
	second, created, err := EnsureAdminToken(dir)
	if err != nil || created || second != first {
		t.Fatalf("second EnsureAdminToken = %q, %v, %v; want %q, false", second, created, err, first)
	}
}

func TestEnsureAdminTokenRefusesALooseFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    os.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o400, false},
		{0o640, true},
		{0o644, true},
		{0o604, true},
		{0o666, true},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, AdminTokenFile)
			if err := os.WriteFile(path, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			token, created, err := EnsureAdminToken(dir)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
					t.Fatalf("EnsureAdminToken = %q, %v; want an error naming chmod 600 %s", token, err, path)
				}
				return
			}
			if err != nil || created || token != "0123456789abcdef0123" {
				t.Fatalf("EnsureAdminToken = %q, %v, %v; want the stored token", token, created, err)
			}
		})
	}
}

// A new token file is 0600 whatever the umask.
func TestEnsureAdminTokenCreatesAPrivateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := EnsureAdminToken(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin token mode %v, want 0600", st.Mode().Perm())
	}
}
