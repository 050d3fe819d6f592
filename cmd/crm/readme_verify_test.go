package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
)

// TestReadmeWebhookVerifier compiles the Go function the README gives receivers to verify a
// delivery's signature, exactly as written, and asks it about messages signed as the server
// signs its deliveries: it takes a fresh one (also among several signatures) and refuses a
// changed body, another secret and a timestamp too far from the clock.
func TestReadmeWebhookVerifier(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "```go\nfunc verify(")
	if !ok {
		t.Fatal("the README shows no Go func verify")
	}
	fn, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the README's func verify has no end")
	}
	program := `package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// main: verify secret id timestamp signatures < body; exit 0 when verified.
func main() {
	body, _ := io.ReadAll(os.Stdin)
	h := http.Header{}
	h.Set("webhook-id", os.Args[2])
	h.Set("webhook-timestamp", os.Args[3])
	h.Set("webhook-signature", os.Args[4])
	if !verify(os.Args[1], h, body) {
		os.Exit(1)
	}
}

func verify(` + fn
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "verify.go"), []byte(program), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "verify")
	build := exec.Command("go", "build", "-o", bin, "verify.go")
	build.Dir = dir
	build.Env = append(os.Environ(), "GO111MODULE=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's func verify does not compile: %v\n%s\n%s", err, out, program)
	}

	secret, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	other, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	const id = "msg_2f0c6b1e9a2d5c8e7b4a1f0e2d3c4b5a"
	body := `{"type":"contact.became_hot.v1","data":{"event":{"score":52.38}}}`
	sign := func(secret string, at time.Time, body string) (string, string) {
		sig, err := webhooks.Sign(secret, id, at, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return strconv.FormatInt(at.Unix(), 10), sig
	}
	now := time.Now()
	ts, sig := sign(secret, now, body)
	oldTS, oldSig := sign(secret, now.Add(-10*time.Minute), body)
	_, otherSig := sign(other, now, body)
	tests := []struct {
		name, ts, signatures, body string
		verified                   bool
	}{
		{"fresh", ts, sig, body, true},
		{"one of several", ts, otherSig + " " + sig, body, true},
		{"changed body", ts, sig, strings.Replace(body, "52.38", "92.38", 1), false},
		{"another secret", ts, otherSig, body, false},
		{"ten minutes old", oldTS, oldSig, body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, secret, id, tt.ts, tt.signatures)
			cmd.Stdin = strings.NewReader(tt.body)
			err := cmd.Run()
			if (err == nil) != tt.verified {
				t.Fatalf("verify = %v, want verified %v", err, tt.verified)
			}
		})
	}
}
