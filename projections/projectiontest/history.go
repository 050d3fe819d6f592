package projectiontest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/codec"
)

// ParseHistory reads a history written by hand: one event per line,
//
//	<occurred_at RFC 3339> <stream> <type> [actor=<name>] <data JSON>
//
// for example
//
//	2024-01-05T09:00:00Z contact-c1 contact.created.v1 {"contact_id":"c1","name":"Aiko"}
//	2024-01-06T09:00:00Z contact-c1 contact.note_added.v1 actor=rep-a {"contact_id":"c1",...}
//
// The actor, when given, is the event's metadata actor.
// Blank lines and lines starting with # are ignored. Events get global positions 1, 2, 3, ...
// in file order, stream versions from 1 per stream, IDs "evt-<position>" and a recorded time
// equal to their occurred time.
func ParseHistory(r io.Reader) ([]eventstore.Event, error) {
	var events []eventstore.Event
	versions := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.SplitN(text, " ", 4)
		if len(fields) != 4 {
			return nil, fmt.Errorf("line %d: want <occurred_at> <stream> <type> <data>, got %q", line, text)
		}
		at, err := time.Parse(time.RFC3339Nano, fields[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: occurred_at: %w", line, err)
		}
		data, actor := strings.TrimSpace(fields[3]), ""
		if rest, ok := strings.CutPrefix(data, "actor="); ok {
			actor, data, _ = strings.Cut(rest, " ")
			data = strings.TrimSpace(data)
		}
		if !json.Valid([]byte(data)) {
			return nil, fmt.Errorf("line %d: data is not JSON: %s", line, data)
		}
		stream := fields[1]
		versions[stream]++
		position := int64(len(events) + 1)
		events = append(events, eventstore.Event{
			ID:         fmt.Sprintf("evt-%d", position),
			Stream:     stream,
			Version:    versions[stream],
			Position:   position,
			Type:       fields[2],
			Data:       []byte(data),
			Metadata:   eventstore.Metadata{Actor: actor},
			OccurredAt: at.UTC(),
			RecordedAt: at.UTC(),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return upcastAll(events)
}

// upcastAll reads events as a store read through the codec gives them: older versions (the
// histories' contact.created.v1) as the newest.
func upcastAll(events []eventstore.Event) ([]eventstore.Event, error) {
	var ups []codec.Upcaster
	for _, u := range catalog.Upcasters() {
		ups = append(ups, codec.Upcaster{From: u.From, To: u.To, Up: u.Up})
	}
	c, err := codec.New(codec.Config{Upcasters: ups})
	if err != nil {
		return nil, err
	}
	for i := range events {
		if events[i], err = c.Open(context.Background(), events[i]); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
	}
	return events, nil
}

// Upcast is events as a store read through the codec gives them: generated histories written
// in older versions of an event are read as the newest, as `crm serve` reads them.
func Upcast(t testing.TB, events []eventstore.Event) []eventstore.Event {
	t.Helper()
	events, err := upcastAll(events)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// ReadHistory parses the history file at path (see ParseHistory).
func ReadHistory(t testing.TB, path string) []eventstore.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open history: %v", err)
	}
	defer f.Close()
	events, err := ParseHistory(f)
	if err != nil {
		t.Fatalf("history %s: %v", path, err)
	}
	return events
}

// MustParseHistory parses a history given as text (see ParseHistory).
func MustParseHistory(t testing.TB, history string) []eventstore.Event {
	t.Helper()
	events, err := ParseHistory(strings.NewReader(history))
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	return events
}

// FollowedBy is events and then the history given as text, its events numbered on from the
// last position of events.
func FollowedBy(t testing.TB, events []eventstore.Event, history string) []eventstore.Event {
	t.Helper()
	more := MustParseHistory(t, history)
	next := events[len(events)-1].Position
	for i := range more {
		next++
		more[i].Position = next
	}
	return append(events, more...)
}

// Span is the earliest and the latest business time of events (at least one).
func Span(events []eventstore.Event) (first, last time.Time) {
	first, last = events[0].OccurredAt, events[0].OccurredAt
	for _, e := range events {
		if e.OccurredAt.Before(first) {
			first = e.OccurredAt
		}
		if e.OccurredAt.After(last) {
			last = e.OccurredAt
		}
	}
	return first, last
}

// Throughout is n times (n at least 2) evenly spread from the earliest business time of
// events to the latest, both included.
func Throughout(events []eventstore.Event, n int) []time.Time {
	first, last := Span(events)
	times := make([]time.Time, n)
	for i := range n {
		times[i] = first.Add(time.Duration(i) * last.Sub(first) / time.Duration(n-1))
	}
	return times
}
