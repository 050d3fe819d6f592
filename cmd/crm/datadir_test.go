package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDataDirWithURISyntaxInItsName runs the built crm in a data directory whose name holds
// what a SQLite URI reads as syntax ('?', '#', '%', '&', '=') and a space and Japanese: seed,
// verify, serve, a contact written, erased and purged, verify again. Every file must land in
// that directory: a path cut at its '?' would leave a database named "data " beside it, and the
// store, the keys and the read models would not be where the next command looks for them.
func TestDataDirWithURISyntaxInItsName(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "crm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build crm: %v\n%s", err, out)
	}
	root := t.TempDir()
	const name = "data ?#%&=佐藤"
	dir := filepath.Join(root, name)
	const token = "datadir-admin-token-0001"
	env := map[string]string{"CRM_DATA_DIR": name, "CRM_STORE": "", "CRM_LOG_LEVEL": "warn",
		"CRM_TOKENS": "ops:admin:" + token}
	crmBin := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = root, environ(env)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("crm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	if out := crmBin("seed", "--contacts", "20", "--quiet"); !strings.HasPrefix(out, "seeded 20 contacts") {
		t.Fatalf("seed: %q", out)
	}
	if out := crmBin("verify", "--quiet"); !strings.HasPrefix(out, "OK") {
		t.Fatalf("verify: %q", out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	serve := exec.Command(bin, "serve", "--addr", addr)
	serve.Dir, serve.Env = root, environ(env)
	var serveErr syncBuffer
	serve.Stdout, serve.Stderr = io.Discard, &serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = serve.Process.Signal(os.Interrupt)
			if err := serve.Wait(); err != nil {
				t.Errorf("serve: %v\n%s", err, serveErr.String())
			}
		}
	}
	t.Cleanup(stop)
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 300 {
			t.Fatalf("crm serve did not come up: %v\n%s", err, serveErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := &erasureServer{t: t, base: "http://" + addr, token: token, env: env}
	var page struct {
		Data struct {
			Total int `json:"total"`
		} `json:"data"`
	}
	for i := 0; i < 100; i++ { // the read models may still be catching up with the seeded log
		s.must("GET", "/v1/contacts", "", &page)
		if page.Data.Total == 20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if page.Data.Total != 20 {
		t.Errorf("the server counts %d contacts, want the 20 seeded", page.Data.Total)
	}
	var c commandAnswer
	s.must("POST", "/v1/contacts", `{"name":"Quillon Erasable","email":"quillon@erase.example","channel":"seminar"}`, &c)
	s.must("POST", "/v1/contacts/"+c.ID+"/notes", `{"text":"quillon note"}`, nil)
	if code := s.do("POST", "/v1/contacts/"+c.ID+"/erase", `{"reason":"right to erasure"}`, nil); code != http.StatusOK {
		t.Fatalf("erase: %d", code)
	}
	waitPurged(t, s, c.ID)
	var contact map[string]any
	s.must("GET", "/v1/contacts/"+c.ID, "", &contact)
	if contact["erased"] != true || contact["name"] != "" {
		t.Errorf("contact after erasure: %v", contact)
	}
	stop()
	if hits := filesHolding(t, dir); len(hits) > 0 {
		t.Errorf("files still holding the erased person: %v", hits)
	}
	if out := crmBin("verify", "--quiet"); !strings.HasPrefix(out, "OK") {
		t.Fatalf("verify after the erasure: %q", out)
	}

	if got := dirNames(t, root); !slices.Equal(got, []string{name}) {
		t.Errorf("the working directory holds %q, want only the data directory %q", got, name)
	}
	files := dirNames(t, dir)
	for _, want := range []string{"crm.db", "keys.db", "readmodels.db"} {
		if !slices.Contains(files, want) {
			t.Errorf("the data directory lacks %s: %q", want, files)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
