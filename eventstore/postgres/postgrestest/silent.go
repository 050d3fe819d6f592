// Package postgrestest holds what tests of PostgreSQL clients share: a server that never
// answers, to show that a client gives up on its own.
package postgrestest

import (
	"net"
	"sync"
	"testing"
)

// SilentServer listens on a local port, takes every connection and never answers, as a wrong
// host or a hung proxy does. It returns the address; the listener and its connections close
// when t ends.
func SilentServer(t testing.TB) string {
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
