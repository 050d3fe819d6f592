package commands_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/sqlite"
)

// openStore opens a real SQLite store in a temporary file.
func openStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newHandler(t testing.TB) (*commands.Handler, eventstore.Store) {
	t.Helper()
	s := openStore(t, filepath.Join(t.TempDir(), "crm.db"))
	fixed := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	return commands.NewHandler(s, commands.WithClock(func() time.Time { return fixed })), s
}

func mustCreate(t testing.TB, h *commands.Handler) commands.Result {
	t.Helper()
	res, err := h.CreateContact(context.Background(), commands.Meta{Actor: "alice"},
		commands.CreateContact{Name: "Yui Sato", Email: "yui@example.com", Channel: "web_form"})
	if err != nil {
		t.Fatalf("create contact: %v", err)
	}
	return res
}

func TestCreateRecordsMetadataAndTimes(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	ctx := context.Background()
	occurred := time.Date(2025, 11, 5, 14, 30, 0, 0, time.UTC)
	res, err := h.CreateContact(ctx, commands.Meta{Actor: "alice", CorrelationID: "corr-1", CausationID: "cause-1",
		Reason: "imported from fair", OccurredAt: occurred},
		commands.CreateContact{Name: "Yui Sato", Channel: "exhibition"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 1 || res.Position < 1 || res.ID == "" {
		t.Fatalf("result = %+v", res)
	}
	events, err := store.ReadStream(ctx, contact.StreamName(res.ID), 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	if e.Type != contact.TypeCreated || !e.OccurredAt.Equal(occurred) || e.RecordedAt.IsZero() {
		t.Errorf("event type/time = %s %s %s", e.Type, e.OccurredAt, e.RecordedAt)
	}
	m := e.Metadata
	if m.Actor != "alice" || m.CorrelationID != "corr-1" || m.CausationID != "cause-1" || m.Reason != "imported from fair" || m.CommandID == "" || m.RequestHash == "" {
		t.Errorf("metadata = %+v", m)
	}
	c, err := h.Contact(ctx, res.ID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner != "alice" || c.Phase != contact.Lead || !c.PhaseSince.Equal(occurred) {
		t.Errorf("contact = %+v", c)
	}
}

func TestOccurredAtDefaultsToNow(t *testing.T) {
	t.Parallel()
	h, store := newHandler(t)
	res := mustCreate(t, h)
	events, err := store.ReadStream(context.Background(), contact.StreamName(res.ID), 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC); !events[0].OccurredAt.Equal(want) {
		t.Fatalf("occurred_at = %s, want the handler's clock %s", events[0].OccurredAt, want)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "crm.db")
	ctx := context.Background()
	store := openStore(t, path)
	h := commands.NewHandler(store)
	c := mustCreate(t, h)
	meta := commands.Meta{Actor: "alice", IdempotencyKey: "touch-1"}
	cmd := commands.RecordTouchpoint{ContactID: c.ID, Kind: "call", Note: "intro"}
	first, err := h.RecordTouchpoint(ctx, meta, cmd)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.RecordTouchpoint(ctx, meta, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Version != first.Version || again.Position != first.Position || again.EntityID != first.EntityID {
		t.Fatalf("retry = %+v, first = %+v", again, first)
	}

	// The same key after a restart still returns the first result and appends nothing.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openStore(t, path)
	h2 := commands.NewHandler(reopened)
	afterRestart, err := h2.RecordTouchpoint(ctx, meta, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !afterRestart.Replayed || afterRestart.Version != first.Version || afterRestart.EntityID != first.EntityID {
		t.Fatalf("after restart = %+v, first = %+v", afterRestart, first)
	}
	state, err := h2.Contact(ctx, c.ID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if state.Version != 2 || state.Touchpoints != 1 {
		t.Fatalf("contact version %d with %d touchpoints, want 2 and 1", state.Version, state.Touchpoints)
	}

	// The same key with a different body is a conflict and changes nothing.
	_, err = h2.RecordTouchpoint(ctx, meta, commands.RecordTouchpoint{ContactID: c.ID, Kind: "email"})
	if !errors.Is(err, commands.ErrIdempotencyConflict) {
		t.Fatalf("different body with the same key: err = %v, want ErrIdempotencyConflict", err)
	}
	// The same key used by another actor is another command.
	other, err := h2.RecordTouchpoint(ctx, commands.Meta{Actor: "bob", IdempotencyKey: "touch-1"}, cmd)
	if err != nil || other.Replayed || other.Version != 3 {
		t.Fatalf("same key, other actor = %+v, %v", other, err)
	}
}

func TestConcurrentSameIdempotencyKeyAppendsOnce(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	const n = 16
	results := make([]commands.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = h.RecordPurchase(ctx, commands.Meta{Actor: "alice", IdempotencyKey: "order-77"},
				commands.RecordPurchase{ContactID: c.ID, Amount: 120000, Currency: "JPY", Product: "CRM Pro"})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if results[i].Version != 2 || results[i].EntityID != results[0].EntityID {
			t.Fatalf("request %d = %+v, want version 2 like %+v", i, results[i], results[0])
		}
	}
	state, err := h.Contact(ctx, c.ID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if state.Purchases != 1 || state.Revenue["JPY"] != 120000 {
		t.Fatalf("purchases %d revenue %v, want exactly one purchase", state.Purchases, state.Revenue)
	}
}

func TestExpectedVersion(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	stale := int64(0)
	_, err := h.ChangePhase(ctx, commands.Meta{Actor: "alice", ExpectedVersion: &stale}, commands.ChangePhase{ContactID: c.ID, Phase: "approach"})
	if !errors.Is(err, commands.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match: err = %v, want ErrPreconditionFailed", err)
	}
	current := int64(1)
	res, err := h.ChangePhase(ctx, commands.Meta{Actor: "alice", ExpectedVersion: &current}, commands.ChangePhase{ContactID: c.ID, Phase: "approach"})
	if err != nil || res.Version != 2 {
		t.Fatalf("current If-Match: %+v, %v", res, err)
	}
	state, err := h.Contact(ctx, c.ID, commands.At{})
	if err != nil || state.Phase != contact.Approach || state.Version != 2 {
		t.Fatalf("state after: %+v, %v", state, err)
	}
}

func TestConcurrentWritersOnOneStreamAllApply(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.RecordTouchpoint(ctx, commands.Meta{Actor: "alice"}, commands.RecordTouchpoint{ContactID: c.ID, Kind: "email"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	state, err := h.Contact(ctx, c.ID, commands.At{})
	if err != nil {
		t.Fatal(err)
	}
	if state.Touchpoints != n || state.Version != n+1 {
		t.Fatalf("touchpoints %d version %d, want %d and %d", state.Touchpoints, state.Version, n, n+1)
	}
}

func TestRefusedCommandAppendsNothing(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	c := mustCreate(t, h)
	tests := []struct {
		name string
		run  func() error
		code domain.Code
	}{
		{"churn before won", func() error {
			_, err := h.ChangePhase(ctx, commands.Meta{Actor: "a"}, commands.ChangePhase{ContactID: c.ID, Phase: "churned", Reason: "x"})
			return err
		}, domain.CodeRefused},
		{"unknown contact", func() error {
			_, err := h.RecordSurvey(ctx, commands.Meta{Actor: "a"}, commands.RecordSurvey{ContactID: "nope", NPS: 5})
			return err
		}, domain.CodeNotFound},
		{"deal for a missing contact", func() error {
			_, err := h.OpenDeal(ctx, commands.Meta{Actor: "a"}, commands.OpenDeal{ContactID: "nope", Title: "x", Amount: 1, Currency: "JPY"})
			return err
		}, domain.CodeInvalid},
		{"bad currency", func() error {
			_, err := h.RecordPurchase(ctx, commands.Meta{Actor: "a"}, commands.RecordPurchase{ContactID: c.ID, Amount: 1, Currency: "yen", Product: "x"})
			return err
		}, domain.CodeInvalid},
	}
	for _, tc := range tests {
		if got := domain.ErrorCode(tc.run()); got != tc.code {
			t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
		}
	}
	state, err := h.Contact(ctx, c.ID, commands.At{})
	if err != nil || state.Version != 1 {
		t.Fatalf("contact version %d after refused commands, want 1 (%v)", state.Version, err)
	}
}

func TestStateAtAPastPoint(t *testing.T) {
	t.Parallel()
	h, _ := newHandler(t)
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 1, d, 9, 0, 0, 0, time.UTC) }
	c, err := h.CreateContact(ctx, commands.Meta{Actor: "a", OccurredAt: day(1)}, commands.CreateContact{Name: "Ren", Channel: "referral"})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"approach", "discovery", "proposal"} {
		if _, err := h.ChangePhase(ctx, commands.Meta{Actor: "a", OccurredAt: day(10 * (i + 1))}, commands.ChangePhase{ContactID: c.ID, Phase: p}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		at    commands.At
		phase contact.Phase
		err   domain.Code
	}{
		{"now", commands.At{}, contact.Proposal, ""},
		{"as of day 15", commands.At{AsOf: day(15)}, contact.Approach, ""},
		{"as of the exact moment of a change", commands.At{AsOf: day(20)}, contact.Discovery, ""},
		{"version 1", commands.At{Version: 1}, contact.Lead, ""},
		{"version 3", commands.At{Version: 3}, contact.Discovery, ""},
		{"before creation", commands.At{AsOf: day(1).Add(-time.Hour)}, "", domain.CodeNotFound},
	}
	for _, tc := range tests {
		got, err := h.Contact(ctx, c.ID, tc.at)
		if tc.err != "" {
			if domain.ErrorCode(err) != tc.err {
				t.Errorf("%s: err %v, want code %s", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got.Phase != tc.phase {
			t.Errorf("%s: phase %v (%v), want %s", tc.name, got, err, tc.phase)
		}
	}
}

// Two handlers on one store stand for two server processes: each caches streams, and a cached
// state made stale by the other must never be decided on.
func TestStaleCacheOfAnotherWriter(t *testing.T) {
	t.Parallel()
	store := openStore(t, filepath.Join(t.TempDir(), "crm.db"))
	ctx := context.Background()
	h1, h2 := commands.NewHandler(store), commands.NewHandler(store)
	c := mustCreate(t, h1)
	// h2 caches the contact at version 2.
	if _, err := h2.ChangePhase(ctx, commands.Meta{Actor: "b"}, commands.ChangePhase{ContactID: c.ID, Phase: "approach"}); err != nil {
		t.Fatal(err)
	}
	// h1 still has version 1 cached: its command must notice and land at version 3.
	res, err := h1.ChangePhase(ctx, commands.Meta{Actor: "a"}, commands.ChangePhase{ContactID: c.ID, Phase: "discovery"})
	if err != nil || res.Version != 3 {
		t.Fatalf("h1 on a stale cache: %+v, %v", res, err)
	}
	// h2's cache is now stale; a client that read version 3 elsewhere must not get a 412.
	v3 := int64(3)
	res, err = h2.ChangePhase(ctx, commands.Meta{Actor: "b", ExpectedVersion: &v3}, commands.ChangePhase{ContactID: c.ID, Phase: "proposal"})
	if err != nil || res.Version != 4 {
		t.Fatalf("h2 with If-Match 3 on a stale cache: %+v, %v", res, err)
	}
	// A decision that is refused on fresh state is refused, even if the stale cache allowed it.
	if _, err := h1.ChangePhase(ctx, commands.Meta{Actor: "a"}, commands.ChangePhase{ContactID: c.ID, Phase: "proposal"}); domain.ErrorCode(err) != domain.CodeRefused {
		t.Fatalf("moving to the phase the contact is already in: %v, want refused", err)
	}
	fresh := commands.NewHandler(store, commands.WithCacheSize(0))
	state, err := fresh.Contact(ctx, c.ID, commands.At{})
	if err != nil || state.Version != 4 || state.Phase != contact.Proposal {
		t.Fatalf("final state %+v, %v", state, err)
	}
}
