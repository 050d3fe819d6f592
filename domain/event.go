package domain

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Event is a domain event: a fact, named in the past tense. Its EventType is the persisted,
// versioned name (e.g. "contact.phase_changed.v1"); it must never be derived from a Go type name.
type Event interface {
	EventType() string
}

// Registry maps persisted event names to their Go types. It is filled in one explicit place
// (package catalog), so a renamed Go type can never break stored events.
type Registry struct {
	factories map[string]func() Event
}

// NewRegistry returns a registry of the given events. Each prototype is a pointer to a zero
// value; registering one name twice panics, since that is a programming error.
func NewRegistry(prototypes ...Event) *Registry {
	r := &Registry{factories: make(map[string]func() Event, len(prototypes))}
	for _, p := range prototypes {
		name := p.EventType()
		if _, dup := r.factories[name]; dup {
			panic(fmt.Sprintf("event type %q registered twice", name))
		}
		r.factories[name] = newOfSameType(p)
	}
	return r
}

// Names lists the registered event names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.factories))
	for n := range r.factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// New returns a zero event of the named type.
func (r *Registry) New(name string) (Event, error) {
	f, ok := r.factories[name]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", name)
	}
	return f(), nil
}

// Decode turns stored JSON into the named event.
func (r *Registry) Decode(name string, data []byte) (Event, error) {
	e, err := r.New(name)
	if err != nil {
		return nil, err
	}
	if err := DecodeData(data, e); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return e, nil
}

// Encode turns an event into its stored JSON.
func Encode(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	return b, nil
}
