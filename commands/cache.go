package commands

import (
	"container/list"
	"slices"
	"sync"
	"time"

	"github.com/eventcrm/crm/domain"
)

// recorded is a decoded event of a stream, as much as folding needs.
type recorded struct {
	event      domain.Event
	occurredAt time.Time
}

// streamCache keeps the decoded events of recently used streams, so a command folds its state
// without reading the store. It is only an optimisation: an entry may be stale (another
// process appended), and then the append's expected-version check fails, the entry is dropped
// and the command runs again on a fresh read. Entries are immutable; an update replaces them.
type streamCache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element
	lru     *list.List // front: most recently used
}

type cacheEntry struct {
	stream string
	events []recorded // events[i] has version i+1
}

func newStreamCache(max int) *streamCache {
	return &streamCache{max: max, entries: make(map[string]*list.Element), lru: list.New()}
}

// get returns the cached events of stream; the slice must not be modified.
func (c *streamCache) get(stream string) ([]recorded, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[stream]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*cacheEntry).events, true
}

// put stores the events of stream (versions 1..len(events)), unless a longer list is cached.
func (c *streamCache) put(stream string, events []recorded) {
	if c == nil || c.max <= 0 {
		return
	}
	events = slices.Clip(events) // a later append must copy, never write into a shared array
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[stream]; ok {
		e := el.Value.(*cacheEntry)
		if len(e.events) <= len(events) {
			e.events = events
		}
		c.lru.MoveToFront(el)
		return
	}
	c.entries[stream] = c.lru.PushFront(&cacheEntry{stream: stream, events: events})
	for c.lru.Len() > c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).stream)
	}
}

// drop forgets stream, after a conflict showed the entry is stale.
func (c *streamCache) drop(stream string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[stream]; ok {
		c.lru.Remove(el)
		delete(c.entries, stream)
	}
}

// clear forgets every stream.
func (c *streamCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.lru.Init()
}
