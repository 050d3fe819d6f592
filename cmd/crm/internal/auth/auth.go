// Package auth maps bearer tokens to principals and roles.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Role is what a principal may do.
type Role string

// Roles.
const (
	RoleApp     Role = "app"     // writes commands and reads
	RoleAnalyst Role = "analyst" // reads and rebuilds read models
	RoleAuditor Role = "auditor" // reads, reads history and verifies it
	RoleAdmin   Role = "admin"   // everything
)

// Permission is one capability checked by an endpoint.
type Permission string

// Permissions.
const (
	PermWrite   Permission = "write"
	PermRead    Permission = "read"
	PermHistory Permission = "history"
	PermVerify  Permission = "verify"
	PermRebuild Permission = "rebuild"
	PermErase   Permission = "erase"  // erase a person's personal data
	PermExport  Permission = "export" // export everything kept about a person
	// PermAdmin: change the settings, manage webhooks.
	PermAdmin  Permission = "admin"
	PermImport Permission = "import" // import CSV files
)

var grants = map[Role][]Permission{
	RoleApp:     {PermWrite, PermRead},
	RoleAnalyst: {PermRead, PermRebuild},
	RoleAuditor: {PermRead, PermHistory, PermVerify, PermExport},
	RoleAdmin:   {PermWrite, PermRead, PermHistory, PermVerify, PermRebuild, PermErase, PermExport, PermAdmin, PermImport},
}

// Permissions lists every permission, in a fixed order.
func Permissions() []Permission {
	return []Permission{PermWrite, PermRead, PermHistory, PermVerify, PermRebuild, PermErase, PermExport, PermAdmin, PermImport}
}

// Can reports whether role has permission p.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// Principal is an authenticated caller; its Name is the actor recorded on events.
type Principal struct {
	Name string
	Role Role
}

// Tokens authenticates bearer tokens. Tokens are kept only as SHA-256 digests, so a lookup
// does not compare secrets byte by byte.
type Tokens struct {
	byDigest map[[32]byte]Principal
}

// ParseTokens reads a CRM_TOKENS value: "name:role:token,name:role:token".
func ParseTokens(spec string) (*Tokens, error) {
	t := &Tokens{byDigest: map[[32]byte]Principal{}}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
			return nil, fmt.Errorf("token entry %d: want name:role:token", i+1)
		}
		role := Role(parts[1])
		if _, ok := grants[role]; !ok {
			return nil, fmt.Errorf("token entry %d (%s): unknown role %q (app, analyst, auditor, admin)", i+1, parts[0], parts[1])
		}
		if len(parts[2]) < 16 {
			return nil, fmt.Errorf("token entry %d (%s): token shorter than 16 characters", i+1, parts[0])
		}
		digest := sha256.Sum256([]byte(parts[2]))
		if _, dup := t.byDigest[digest]; dup {
			return nil, fmt.Errorf("token entry %d (%s): token used twice", i+1, parts[0])
		}
		t.byDigest[digest] = Principal{Name: parts[0], Role: role}
	}
	if len(t.byDigest) == 0 {
		return nil, errors.New("no token configured")
	}
	return t, nil
}

// Authenticate returns the principal of a bearer token.
func (t *Tokens) Authenticate(token string) (Principal, bool) {
	p, ok := t.byDigest[sha256.Sum256([]byte(token))]
	return p, ok
}

// AdminTokenFile is where EnsureAdminToken keeps the generated token, inside the data directory.
const AdminTokenFile = "admin.token"

// EnsureAdminToken returns the admin token stored in dataDir, creating it (mode 0600) on first
// use; created tells whether it was just made. Like the audit key, a token file that group or
// others may read is refused: it grants every right.
func EnsureAdminToken(dataDir string) (token string, created bool, err error) {
	path := filepath.Join(dataDir, AdminTokenFile)
	token, err = readAdminToken(path)
	if err == nil && token != "" {
		return token, false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generate admin token: %w", err)
	}
	token = hex.EncodeToString(raw)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("create data directory: %w", err)
	}
	if err := writePrivate(path, []byte(token+"\n")); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return token, true, nil
}

// readAdminToken reads the token file at path, refusing one that group or others may read.
// An empty file reads as "" so that a new token replaces it.
func readAdminToken(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("read admin token: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("admin token %s has mode %v: others may read it; run chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writePrivate writes b to path with mode 0600 whatever the umask, also over an empty file
// left with another mode.
func writePrivate(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
