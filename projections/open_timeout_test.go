package projections_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/projections"
)

// silentServer listens on a local port, takes every connection and never answers. It
// returns the address.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// Opening read models on a server that never answers fails on its own, saying it timed out;
// the caller's deadline is only the test's guard against a hang.
func TestOpenPostgresGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := projections.OpenPostgres(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable", "")
	if err == nil {
		db.SQL.Close()
		t.Fatal("OpenPostgres succeeded against a server that never answers")
	}
	if ctx.Err() != nil {
		t.Fatalf("OpenPostgres waited for the caller's deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %q does not say it timed out", err)
	}
}
