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
	"slices"
	"strings"
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

	mu      sync.RWMutex
	sealers map[string]sealer      // per subject: the key its new data is sealed with
	openers map[string]cipher.AEAD // opened keys, by their name in the box (see keyRef)
	macs    map[string][]byte      // keys of request hashes, by the name of their key (see keyRef)
	server  []byte                 // the server's key of request hashes, once read
	erased  map[string]bool        // subjects whose keys are destroyed
}

// keyRef is a key's name in a box: "<subject>:<key id>", or "<subject>" for a key stored
// under the subject's name. Opened keys are cached under it, so that a read looks its key up
// with the box's bytes, without making a string.
func keyRef(subject, id string) string {
	if id == "" {
		return subject
	}
	return subject + ":" + id
}

// sealer is the cipher of the key a subject's new data is sealed with, the key's id, and
// the key of request hashes derived from it (see RequestHash).
type sealer struct {
	id   string
	aead cipher.AEAD
	mac  []byte
}

// New returns a Codec.
func New(cfg Config) (*Codec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Codec{keys: cfg.Keys, subject: cfg.SubjectMember, personal: map[string]map[string]bool{},
		upcasters: map[string]Upcaster{}, cacheSize: cfg.CacheSize,
		sealers: map[string]sealer{}, openers: map[string]cipher.AEAD{}, macs: map[string][]byte{}, erased: map[string]bool{}}
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
	sl, err := c.sealer(ctx, subject)
	if errors.Is(err, keys.ErrDestroyed) {
		return append(clear, '}'), nil
	}
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", typ, err)
	}
	aead := sl.aead
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(inner)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal %s: nonce: %w", typ, err)
	}
	box := aead.Seal(nonce, nonce, inner, additional(typ, id, []byte(subject)))
	out := make([]byte, 0, len(clear)+len(sealedPrefix)+len(subject)+len(sl.id)+2+base64.StdEncoding.EncodedLen(len(box))+2)
	out = append(out, clear...)
	if len(clear) == 1 { // "{" alone: no member before the box
		out = append(out, sealedPrefix[1:]...)
	} else {
		out = append(out, sealedPrefix...)
	}
	out = append(out, subject...)
	out = append(out, ':')
	if sl.id != "" {
		out = append(out, sl.id...)
		out = append(out, ':')
	}
	out = base64.StdEncoding.AppendEncode(out, box)
	return append(out, '"', '}'), nil
}

// split separates the top-level members of the JSON object data into the clear ones (an
// object without its closing brace) and the personal ones (the members, without braces; nil
// when there is none), and returns the subject member's value.
//
// It runs on every append of an event with personal members: valid data whose member names
// need no escaping (every event the program writes) is cut where its members begin and end,
// with no decoding; anything else goes through encoding/json (splitDecoded), which gives the
// same result and says what is wrong with invalid data.
func (c *Codec) split(data []byte, personal map[string]bool) (clear, inner []byte, subject string, err error) {
	if json.Valid(data) {
		if clear, inner, subject, ok, err := c.splitValid(data, personal); ok {
			return clear, inner, subject, err
		}
	}
	return c.splitDecoded(data, personal)
}

// splitValid is split of valid JSON data; ok is false when data is not an object or a member's
// name is not plain (see plainName): splitDecoded then writes the names as encoding/json does.
func (c *Codec) splitValid(data []byte, personal map[string]bool) (clear, inner []byte, subject string, ok bool, err error) {
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return nil, nil, "", false, nil
	}
	clear = append(make([]byte, 0, len(data)), '{')
	for i = skipSpace(data, i+1); data[i] != '}'; {
		end, escaped := stringEnd(data, i)
		name := data[i+1 : end-1]
		if escaped || !plainName(name) {
			return nil, nil, "", false, nil
		}
		key := data[i:end]
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		start := i
		i = valueEnd(data, i)
		value := data[start:i]
		if string(name) == sealedMember {
			return nil, nil, "", true, fmt.Errorf("member %q is reserved", sealedMember)
		}
		if string(name) == c.subject {
			if s, ok := stringValue(value); ok {
				subject = s
			}
		}
		if personal[string(name)] {
			if inner != nil {
				inner = append(inner, ',')
			}
			inner = append(append(append(inner, key...), ':'), value...)
		} else {
			if len(clear) > 1 {
				clear = append(clear, ',')
			}
			clear = append(append(append(clear, key...), ':'), value...)
		}
		if i = skipSpace(data, i); data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return clear, inner, subject, true, nil
}

// plainName reports whether encoding/json writes the member name as it is, between quotes:
// printable ASCII without quote, backslash or the characters it escapes for HTML.
func plainName(name []byte) bool {
	for _, b := range name {
		if b < 0x20 || b > 0x7e || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			return false
		}
	}
	return true
}

// skipSpace returns the index of the first byte of data at or after i that is not JSON
// whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string that starts at data[i] (a quote) in
// valid JSON, and whether the string holds an escape.
func stringEnd(data []byte, i int) (int, bool) {
	escaped := false
	for i++; ; i++ {
		switch data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i + 1, escaped
		}
	}
}

// valueEnd returns the index just past the JSON value that starts at data[i] in valid JSON.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		end, _ := stringEnd(data, i)
		return end
	case '{', '[':
		depth := 0
		for {
			switch data[i] {
			case '"':
				i, _ = stringEnd(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // a number, true, false or null
		for ; i < len(data); i++ {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// stringValue is the Go string of a JSON value, and whether it is a string.
func stringValue(value []byte) (string, bool) {
	if value[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(value, '\\') < 0 {
		return string(value[1 : len(value)-1]), true
	}
	var s string
	err := json.Unmarshal(value, &s)
	return s, err == nil
}

// splitDecoded is split through encoding/json: for invalid data, and member names that
// encoding/json writes escaped.
func (c *Codec) splitDecoded(data []byte, personal map[string]bool) (clear, inner []byte, subject string, err error) {
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
func additional(typ, id string, subject []byte) []byte {
	ad := make([]byte, 0, len(typ)+len(id)+len(subject)+2)
	ad = append(append(ad, typ...), 0)
	ad = append(append(ad, id...), 0)
	return append(ad, subject...)
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
	ref, subject, keyID, box, clear, ok := envelope(data)
	if !ok {
		return data, NoPersonalData, nil
	}
	aead, err := c.opener(ctx, ref, subject, keyID)
	if errors.Is(err, keys.ErrDestroyed) {
		return append(clear[:len(clear):len(clear)], '}'), Erased, nil
	}
	// ErrNoKey stays an error: a lost key store must stop the readers, not erase everyone.
	if err != nil {
		return nil, 0, err
	}
	buf := rawBuffers.Get().(*[]byte)
	defer rawBuffers.Put(buf)
	raw := slices.Grow((*buf)[:0], base64.StdEncoding.DecodedLen(len(box)))[:base64.StdEncoding.DecodedLen(len(box))]
	*buf = raw
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

// rawBuffers hold the decoded boxes while they are opened.
var rawBuffers = sync.Pool{New: func() any { return new([]byte) }}

// envelope finds the sealed box at the end of stored data: its subject, the id of its key
// ("" in a box sealed with a key stored under the subject's name), its base64 text and the
// clear members before it (an object without its closing brace). The box's value is
// "<subject>:<base64>" or "<subject>:<key id>:<base64>" (base64 has no colon).
func envelope(data []byte) (ref, subject, keyID, box, clear []byte, ok bool) {
	if !bytes.HasSuffix(data, []byte(`"}`)) {
		return nil, nil, nil, nil, nil, false
	}
	// The value holds no quote: the last quote before the closing one opens it, and the
	// member's name is just before (found without searching the whole data for it).
	start := bytes.LastIndexByte(data[:len(data)-2], '"') + 1
	i := start - len(sealedPrefix)
	switch {
	case i >= 0 && bytes.Equal(data[i:start], sealedPrefix):
	case start == len(sealedPrefix) && bytes.Equal(data[1:start], sealedPrefix[1:]) && data[0] == '{':
		i = 0 // a box that is the only member
	default:
		return nil, nil, nil, nil, nil, false
	}
	value := data[start : len(data)-2]
	colon := bytes.IndexByte(value, ':')
	if colon < 0 {
		return nil, nil, nil, nil, nil, false
	}
	subject, ref, box = value[:colon], value[:colon], value[colon+1:]
	if c := bytes.IndexByte(box, ':'); c >= 0 {
		keyID, ref, box = box[:c], value[:colon+1+c], box[c+1:]
	}
	if i == 0 {
		clear = []byte{'{'}
	} else {
		clear = data[:i]
	}
	return ref, subject, keyID, box, clear, true
}

// sealer returns the key subject's new data is sealed with, making one when it has none.
func (c *Codec) sealer(ctx context.Context, subject string) (sealer, error) {
	if sl, ok, err := cached(c, c.sealers, subject, subject); ok || err != nil {
		return sl, err
	}
	var key keys.Key
	var err error
	if nk, ok := c.keys.(keys.NewSubjectKeys); ok && isNewSubject(ctx, subject) {
		key, err = nk.KeyOfNewSubject(ctx, subject)
	} else {
		key, err = c.keys.Key(ctx, subject)
	}
	if err != nil {
		return sealer{}, c.keyErr(subject, err)
	}
	aead, err := newAEAD(subject, key.Bytes)
	if err != nil {
		return sealer{}, err
	}
	sl := sealer{id: key.ID, aead: aead, mac: requestKey(key.Bytes)}
	c.mu.Lock()
	if len(c.sealers) >= c.cacheSize {
		clear(c.sealers)
	}
	c.sealers[subject] = sl
	c.putOpener(keyRef(subject, key.ID), aead)
	c.putMAC(keyRef(subject, key.ID), sl.mac)
	c.mu.Unlock()
	return sl, nil
}

// cached returns what m, a cache of c, holds under name, with ok true; or keys.ErrDestroyed
// when subject, whose key name is, was found erased.
func cached[V any](c *Codec, m map[string]V, name, subject string) (v V, ok bool, err error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if v, ok = m[name]; ok {
		return v, true, nil
	}
	if c.erased[subject] {
		return v, false, keys.ErrDestroyed
	}
	return v, false, nil
}

type newSubjectKey struct{}

// WithNewSubject returns ctx saying that subject's name was just drawn at random for the
// appends made with ctx (a new contact's id): no key, binding or erasure can name it yet, so
// its key is taken from the key store's pool without asking what the subject has (see
// keys.NewSubjectKeys). Never for a name that may have been used before, such as an id
// derived from an idempotency key.
func WithNewSubject(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, newSubjectKey{}, subject)
}

func isNewSubject(ctx context.Context, subject string) bool {
	s, ok := ctx.Value(newSubjectKey{}).(string)
	return ok && s == subject
}

// opener returns the cipher of the key named ref in a box (see keyRef).
func (c *Codec) opener(ctx context.Context, ref, subject, keyID []byte) (cipher.AEAD, error) {
	c.mu.RLock()
	a, ok := c.openers[string(ref)]
	gone := c.erased[string(subject)]
	c.mu.RUnlock()
	if ok {
		return a, nil
	}
	if gone {
		return nil, keys.ErrDestroyed
	}
	key, err := c.keys.Lookup(ctx, string(subject), string(keyID))
	if err != nil {
		return nil, c.keyErr(string(subject), err)
	}
	if a, err = newAEAD(string(subject), key); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.putOpener(string(ref), a)
	c.mu.Unlock()
	return a, nil
}

// putOpener caches an opened key; it is called with c.mu held.
func (c *Codec) putOpener(ref string, a cipher.AEAD) {
	if len(c.openers) >= c.cacheSize {
		clear(c.openers)
	}
	c.openers[ref] = a
}

// keyErr remembers a subject found erased.
func (c *Codec) keyErr(subject string, err error) error {
	if errors.Is(err, keys.ErrDestroyed) {
		c.mu.Lock()
		c.erased[subject] = true
		c.mu.Unlock()
	}
	return err
}

func newAEAD(subject string, key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", subject, err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key of %s: %w", subject, err)
	}
	return a, nil
}

// Destroy destroys subject's key in the key store and forgets it here: from then on the
// subject's sealed data reads as erased.
func (c *Codec) Destroy(ctx context.Context, subject string) error {
	c.mu.Lock()
	c.forgetLocked(subject)
	c.erased[subject] = true
	c.mu.Unlock()
	if err := c.keys.Destroy(ctx, subject); err != nil {
		return err
	}
	return nil
}

// Forget drops the keys of subject this codec keeps in memory, so that its next read asks
// the key store again: after a key was destroyed by another process (another server of the
// deployment), that read finds it destroyed, and the subject's data reads as erased.
func (c *Codec) Forget(subject string) {
	c.mu.Lock()
	c.forgetLocked(subject)
	c.mu.Unlock()
}

// forgetLocked drops subject's cached keys; it is called with c.mu held.
func (c *Codec) forgetLocked(subject string) {
	delete(c.sealers, subject)
	deleteRefs(c.openers, subject)
	deleteRefs(c.macs, subject)
}

// deleteRefs deletes from m what is kept under the names of subject's keys (see keyRef).
func deleteRefs[V any](m map[string]V, subject string) {
	for ref := range m {
		if ref == subject || strings.HasPrefix(ref, subject+":") {
			delete(m, ref)
		}
	}
}

// IsSealed reports whether stored data holds a sealed box.
func IsSealed(data []byte) bool {
	_, _, _, _, _, ok := envelope(data)
	return ok
}
