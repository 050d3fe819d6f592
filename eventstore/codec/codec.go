// Package codec is the one place where events change form between the log and their
// readers: the personal members of an event's JSON are sealed with the data subject's key on
// append and opened on read (crypto-shredding: a destroyed key opens as no personal data), and
// an older version of an event type is upcast to the newest on read.
//
// Every consumer (commands, process managers, live projections, rebuilds, time travel, the
// history) reads the log through a Store of this package. The hashes never see the reading:
// an event the codec changed keeps its stored type and data in Event.StoredType and
// Event.StoredData, which eventstore.ChainHash and the audit hash. Verification (`crm verify`,
// `crm audit verify`) reads the store without a codec at all.
package codec

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/keys"
)

// sealedMember is the JSON member that holds an event's sealed personal members. It is always
// the last member: `"sealed":"<subject>:<base64(nonce || ciphertext)>"`.
const sealedMember = "sealed"

var sealedPrefix = []byte(`,"` + sealedMember + `":"`)

// Upcaster turns the stored JSON of one version of an event type into the next version.
type Upcaster struct {
	From, To string
	Up       func(data []byte) ([]byte, error)
}

// Config is what a Codec needs.
type Config struct {
	// Keys is the key store.
	Keys keys.Keys
	// Personal lists, per stored event type, the members of its JSON that are personal data.
	Personal map[string][]string
	// SubjectMember is the member naming the data subject (whose key seals the event), e.g.
	// "contact_id". Every event type in Personal must have it.
	SubjectMember string
	// Upcasters are applied on read, each From -> To, until the type has none.
	Upcasters []Upcaster
	// CacheSize bounds the opened keys kept in memory (default 200,000).
	CacheSize int
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Keys == nil && len(c.Personal) > 0 {
		errs = append(errs, errors.New("codec: Keys is required with Personal"))
	}
	if c.SubjectMember == "" && len(c.Personal) > 0 {
		errs = append(errs, errors.New("codec: SubjectMember is required with Personal"))
	}
	from := map[string]bool{}
	for _, u := range c.Upcasters {
		if u.From == "" || u.To == "" || u.Up == nil || u.From == u.To {
			errs = append(errs, fmt.Errorf("codec: upcaster %q -> %q is incomplete", u.From, u.To))
		}
		if from[u.From] {
			errs = append(errs, fmt.Errorf("codec: two upcasters from %q", u.From))
		}
		from[u.From] = true
	}
	return errors.Join(errs...)
}

// Codec seals, opens and upcasts events. It is safe for concurrent use.
type Codec struct {
	keys      keys.Keys
	personal  map[string]map[string]bool
	subject   string
	upcasters map[string]Upcaster
	cacheSize int

	mu     sync.Mutex
	aeads  map[string]cipher.AEAD // opened keys
	erased map[string]bool        // subjects whose key is destroyed
}

// New returns a Codec.
func New(cfg Config) (*Codec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Codec{keys: cfg.Keys, subject: cfg.SubjectMember, personal: map[string]map[string]bool{},
		upcasters: map[string]Upcaster{}, cacheSize: cfg.CacheSize,
		aeads: map[string]cipher.AEAD{}, erased: map[string]bool{}}
	if c.cacheSize <= 0 {
		c.cacheSize = 200_000
	}
	for typ, members := range cfg.Personal {
		set := map[string]bool{}
		for _, m := range members {
			set[m] = true
		}
		c.personal[typ] = set
	}
	for _, u := range cfg.Upcasters {
		c.upcasters[u.From] = u
	}
	return c, nil
}

// Personal reports whether events of the stored type typ have personal members.
func (c *Codec) Personal(typ string) bool { return c.personal[typ] != nil }

// Seal returns the data of a new event as it is stored: its personal members sealed with the
// subject's key, in one box as the last member. An event without personal members is
// returned as it is. For a subject whose key was destroyed, the personal members are left
// out: nothing new is kept about an erased person.
func (c *Codec) Seal(ctx context.Context, id, typ string, data []byte) ([]byte, error) {
	members := c.personal[typ]
	if members == nil {
		return data, nil
	}
	clear, inner, subject, err := c.split(data, members)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	if inner == nil {
		return data, nil // no personal member present
	}
	if subject == "" {
		return nil, fmt.Errorf("seal %s: no %s names the data subject", typ, c.subject)
	}
	aead, err := c.aead(ctx, subject, true)
	if errors.Is(err, keys.ErrDestroyed) {
		return append(clear, '}'), nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(inner)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: nonce: %w", typ, err)
	}
	box := aead.Seal(nonce, nonce, inner, additional(typ, id, subject))
	out := make([]byte, 0, len(clear)+len(sealedPrefix)+len(subject)+1+base64.StdEncoding.EncodedLen(len(box))+2)
	out = append(out, clear...)
	if len(clear) == 1 { // "{" alone: no member before the box
		out = append(out, sealedPrefix[1:]...)
	} else {
		out = append(out, sealedPrefix...)
	}
	out = append(out, subject...)
	out = append(out, ':')
	out = base64.StdEncoding.AppendEncode(out, box)
	return append(out, '"', '}'), nil
}

// split separates the top-level members of the JSON object data into the clear ones (an
// object without its closing brace) and the personal ones (the members, without braces; nil
// when there is none), and returns the subject member's value.
func (c *Codec) split(data []byte, personal map[string]bool) (clear, inner []byte, subject string, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, "", fmt.Errorf("data is not a JSON object")
	}
	clear = append(make([]byte, 0, len(data)), '{')
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, "", err
		}
		name, _ := t.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, nil, "", err
		}
		if name == sealedMember {
			return nil, nil, "", fmt.Errorf("member %q is reserved", sealedMember)
		}
		if name == c.subject {
			_ = json.Unmarshal(value, &subject)
		}
		key, _ := json.Marshal(name)
		if personal[name] {
			if inner != nil {
				inner = append(inner, ',')
			}
			inner = append(append(append(inner, key...), ':'), value...)
			continue
		}
		if len(clear) > 1 {
			clear = append(clear, ',')
		}
		clear = append(append(append(clear, key...), ':'), value...)
	}
	return clear, inner, subject, nil
}

// additional is the additional data of a box: it binds the box to its event.
func additional(typ, id, subject string) []byte {
	return []byte(typ + "\x00" + id + "\x00" + subject)
}

// Reading is what Open found about an event's personal data.
type Reading int

// Readings of an event.
const (
	// NoPersonalData: the event has no sealed box (its type has no personal members, or it
	// was stored before sealing existed and holds them in clear).
	NoPersonalData Reading = iota
	// Opened: the box was opened with the subject's key.
	Opened
	// Erased: the subject's key is destroyed; the personal members read as absent.
	Erased
)

// Open returns the event as its readers see it: sealed personal members opened (absent for
// an erased subject) and the type upcast to its newest version. An event the codec changes
// keeps its stored type and data in StoredType and StoredData.
func (c *Codec) Open(ctx context.Context, e eventstore.Event) (eventstore.Event, error) {
	out, _, err := c.Read(ctx, e)
	return out, err
}

// Read is Open, and also says what it found about the event's personal data.
func (c *Codec) Read(ctx context.Context, e eventstore.Event) (eventstore.Event, Reading, error) {
	reading := NoPersonalData
	typ, data := e.Stored()
	if c.personal[typ] != nil {
		opened, r, err := c.open(ctx, e.ID, typ, data)
		if err != nil {
			return e, reading, fmt.Errorf("open %s %s: %w", typ, e.ID, err)
		}
		data, reading = opened, r
	}
	for u, ok := c.upcasters[typ]; ok; u, ok = c.upcasters[typ] {
		up, err := u.Up(data)
		if err != nil {
			return e, reading, fmt.Errorf("upcast %s %s to %s: %w", typ, e.ID, u.To, err)
		}
		typ, data = u.To, up
	}
	if reading != NoPersonalData || typ != e.Type {
		e.StoredType, e.StoredData = e.Stored()
		e.Type, e.Data = typ, data
	}
	return e, reading, nil
}

// open opens the box of a stored event's data, when it has one.
func (c *Codec) open(ctx context.Context, id, typ string, data []byte) ([]byte, Reading, error) {
	subject, box, clear, ok := envelope(data)
	if !ok {
		return data, NoPersonalData, nil
	}
	aead, err := c.aead(ctx, subject, false)
	if errors.Is(err, keys.ErrDestroyed) {
		return append(clear[:len(clear):len(clear)], '}'), Erased, nil
	}
	// ErrNoKey stays an error: a lost key store must stop the readers, not erase everyone.
	if err != nil {
		return nil, 0, err
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(box)))
	n, err := base64.StdEncoding.Decode(raw, box)
	if err != nil || n < aead.NonceSize() {
		return nil, 0, fmt.Errorf("sealed box is not base64 of a nonce and ciphertext")
	}
	raw = raw[:n]
	out := make([]byte, 0, len(clear)+n+2)
	out = append(out, clear...)
	if len(clear) > 1 {
		out = append(out, ',')
	}
	out, err = aead.Open(out, raw[:aead.NonceSize()], raw[aead.NonceSize():], additional(typ, id, subject))
	if err != nil {
		return nil, 0, fmt.Errorf("sealed box does not open (altered, or moved from another event): %w", err)
	}
	return append(out, '}'), Opened, nil
}

// envelope finds the sealed box at the end of stored data: its subject, its base64 text and
// the clear members before it (an object without its closing brace).
func envelope(data []byte) (subject string, box, clear []byte, ok bool) {
	if !bytes.HasSuffix(data, []byte(`"}`)) {
		return "", nil, nil, false
	}
	i := bytes.LastIndex(data, sealedPrefix)
	start := i + len(sealedPrefix)
	if i < 0 {
		// A box that is the only member.
		if !bytes.HasPrefix(data, append([]byte{'{'}, sealedPrefix[1:]...)) {
			return "", nil, nil, false
		}
		i, start = 0, len(sealedPrefix)
	}
	value := data[start : len(data)-2]
	colon := bytes.IndexByte(value, ':')
	if colon < 0 || bytes.IndexByte(value, '"') >= 0 {
		return "", nil, nil, false
	}
	if i == 0 {
		clear = []byte{'{'}
	} else {
		clear = data[:i]
	}
	return string(value[:colon]), value[colon+1:], clear, true
}

// aead returns the cipher of subject's key, making the key when create is set.
func (c *Codec) aead(ctx context.Context, subject string, create bool) (cipher.AEAD, error) {
	c.mu.Lock()
	a, ok := c.aeads[subject]
	gone := c.erased[subject]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	if gone {
		return nil, keys.ErrDestroyed
	}
	get := c.keys.Lookup
	if create {
		get = c.keys.Key
	}
	key, err := get(ctx, subject)
	if errors.Is(err, keys.ErrDestroyed) {
		c.mu.Lock()
		c.erased[subject] = true
		c.mu.Unlock()
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", subject, err)
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", subject, err)
	}
	c.mu.Lock()
	if len(c.aeads) >= c.cacheSize {
		clear(c.aeads)
	}
	c.aeads[subject] = a
	c.mu.Unlock()
	return a, nil
}

// Destroy destroys subject's key in the key store and forgets it here: from then on the
// subject's sealed data reads as erased.
func (c *Codec) Destroy(ctx context.Context, subject string) error {
	c.mu.Lock()
	delete(c.aeads, subject)
	c.erased[subject] = true
	c.mu.Unlock()
	if err := c.keys.Destroy(ctx, subject); err != nil {
		return err
	}
	return nil
}

// IsSealed reports whether stored data holds a sealed box.
func IsSealed(data []byte) bool {
	_, _, _, ok := envelope(data)
	return ok
}
