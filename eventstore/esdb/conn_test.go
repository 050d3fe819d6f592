package esdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventcrm/crm/eventstore"
)

func TestClientGaveUp(t *testing.T) {
	t.Parallel()
	discovery, _ := esdbclient.FromError(errors.New("maximum discovery attempt count reached: 10. Last Error: connection refused"))
	other, _ := esdbclient.FromError(errors.New("connection refused"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("maximum discovery attempt count reached"), false},
		{"other client error", other, false},
		{"failed discovery", discovery, true},
		{"wrapped failed discovery", fmt.Errorf("subscribe: %w", discovery), true},
		{"call on a client that gave up", closedClientError(t), true},
	}
	for _, tt := range tests {
		if got := clientGaveUp(tt.err); got != tt.want {
			t.Errorf("%s: clientGaveUp(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// A client that gave up discovery is replaced, and its failure is not reported as a closed store.
func TestDeadClientReplaced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newUnconnected(t)
	defer s.Close()
	first := s.conn
	_, err := s.ReadStream(ctx, "contact-1", 1, 10)
	if !errors.Is(err, errConnectionLost) || errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("ReadStream without a server = %v, want errConnectionLost", err)
	}
	s.mu.Lock()
	second := s.conn
	s.mu.Unlock()
	if second == first {
		t.Fatal("the client that gave up is still in use")
	}
	select {
	case <-first.dead:
	default:
		t.Error("the client that gave up is not marked dead")
	}
	if _, err := s.ReadAll(ctx, 0, 10); !errors.Is(err, errConnectionLost) {
		t.Errorf("ReadAll on the new client = %v, want errConnectionLost", err)
	}
}

// A call the client blocks returns at its context's end, and Close waits for it.
func TestDoHonoursContextAndCloseWaits(t *testing.T) {
	t.Parallel()
	s := newUnconnected(t)
	block := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := s.do(ctx, func(context.Context, *esdbclient.Client) error {
		<-block
		return nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("do with a blocked call = %v, want DeadlineExceeded", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a call was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(block)
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the call ended")
	}
	if err := s.do(context.Background(), func(context.Context, *esdbclient.Client) error { return nil }); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("do after Close = %v, want ErrClosed", err)
	}
}

// Close does not wait for calls stuck on a client that gave up, and does not close it.
func TestCloseLeavesDeadClient(t *testing.T) {
	t.Parallel()
	s := newUnconnected(t)
	block := make(chan struct{})
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.do(ctx, func(context.Context, *esdbclient.Client) error {
		<-block
		return nil
	})
	s.conn.markDead()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for a call stuck on a dead client")
	}
}

// A call stuck on a client that gave up (see conn.go) returns after a grace period.
func TestDoLeavesCallStuckOnDeadClient(t *testing.T) {
	t.Parallel()
	s := newUnconnected(t)
	block := make(chan struct{})
	defer close(block)
	c := s.conn
	go func() {
		time.Sleep(20 * time.Millisecond)
		c.markDead()
	}()
	start := time.Now()
	err := s.do(context.Background(), func(context.Context, *esdbclient.Client) error {
		<-block
		return nil
	})
	if !errors.Is(err, errConnectionLost) {
		t.Errorf("do of a call stuck on a dead client = %v, want errConnectionLost", err)
	}
	if d := time.Since(start); d < deadClientGrace || d > deadClientGrace+5*time.Second {
		t.Errorf("do returned after %v, want about %v", d, deadClientGrace)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
