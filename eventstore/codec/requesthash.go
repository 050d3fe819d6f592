package codec

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Request hashes: the fingerprint of a command recorded with its events (metadata
// request_hash), which tells a retried idempotency key from one reused for another request.
// It is an HMAC-SHA256, cut to 128 bits, under a key of the key store, so that it confirms
// no guess of the request to whoever does not hold the key:
//
//   - "hmac:<subject>[:<key id>]:<hex>" for a request that holds a data subject's personal
//     data, under a key derived from the subject's key (the one its new data is sealed with):
//     destroying the subject's keys destroys it, and then nobody can compute the hash again;
//   - "hmac-server:<hex>" for any other request, under the server's key of request hashes, a
//     key stored under the name ServerSubject.
const (
	subjectHashPrefix = "hmac:"
	serverHashPrefix  = "hmac-server:"
	// ServerSubject is the name under which the key store keeps the server's key of request
	// hashes (see keys.Keys.Secret). It is no data subject: nothing destroys it.
	ServerSubject = "server:request-hash"
)

// requestKey derives the key of request hashes from a key of the key store, so that no key
// serves two algorithms.
func requestKey(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("eventcrm request hash v1"))
	return m.Sum(nil)
}

// requestSum is the hex of request's HMAC under key, cut to 128 bits.
func requestSum(key, request []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(request)
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// RequestHash returns the keyed hash of request: under subject's key when subject is not
// empty (the request holds the subject's personal data), under the server's key otherwise.
// For a subject whose keys were destroyed it returns keys.ErrDestroyed: nothing new is kept
// about an erased person, not even a hash.
func (c *Codec) RequestHash(ctx context.Context, subject string, request []byte) (string, error) {
	if subject == "" {
		key, err := c.serverKey(ctx)
		if err != nil {
			return "", err
		}
		return serverHashPrefix + requestSum(key, request), nil
	}
	sl, err := c.sealer(ctx, subject)
	if err != nil {
		return "", fmt.Errorf("request hash: %w", err)
	}
	return subjectHashPrefix + keyRef(subject, sl.id) + ":" + requestSum(sl.mac, request), nil
}

// MatchRequestHash reports whether hash, recorded by RequestHash, is request's. keyed is
// false when hash is not one RequestHash makes (one recorded before hashes were keyed): the
// caller compares it otherwise. For a hash under the key of a subject whose keys were
// destroyed it returns keys.ErrDestroyed: nobody can tell any more what request it was of.
func (c *Codec) MatchRequestHash(ctx context.Context, hash string, request []byte) (match, keyed bool, err error) {
	var key []byte
	var sum string
	switch {
	case strings.HasPrefix(hash, serverHashPrefix):
		sum = hash[len(serverHashPrefix):]
		if key, err = c.serverKey(ctx); err != nil {
			return false, true, err
		}
	case strings.HasPrefix(hash, subjectHashPrefix):
		rest := hash[len(subjectHashPrefix):]
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return false, true, nil
		}
		sum = rest[i+1:]
		if key, err = c.macKey(ctx, rest[:i]); err != nil {
			return false, true, fmt.Errorf("request hash: %w", err)
		}
	default:
		return false, false, nil
	}
	return hmac.Equal([]byte(sum), []byte(requestSum(key, request))), true, nil
}

// macKey returns the key of request hashes of the key named ref (see keyRef).
func (c *Codec) macKey(ctx context.Context, ref string) ([]byte, error) {
	subject, id, _ := strings.Cut(ref, ":")
	if mac, ok, err := cached(c, c.macs, ref, subject); ok || err != nil {
		return mac, err
	}
	key, err := c.keys.Lookup(ctx, subject, id)
	if err != nil {
		return nil, c.keyErr(subject, err)
	}
	mac := requestKey(key)
	c.mu.Lock()
	c.putMAC(ref, mac)
	c.mu.Unlock()
	return mac, nil
}

// serverKey returns the server's key of request hashes, making it in the key store first
// when there is none.
func (c *Codec) serverKey(ctx context.Context) ([]byte, error) {
	c.mu.RLock()
	key := c.server
	c.mu.RUnlock()
	if key != nil {
		return key, nil
	}
	secret, err := c.keys.Secret(ctx, ServerSubject)
	if err != nil {
		return nil, fmt.Errorf("server key of request hashes: %w", err)
	}
	key = requestKey(secret)
	c.mu.Lock()
	c.server = key
	c.mu.Unlock()
	return key, nil
}

// putMAC caches a key of request hashes; it is called with c.mu held.
func (c *Codec) putMAC(ref string, mac []byte) {
	if len(c.macs) >= c.cacheSize {
		clear(c.macs)
	}
	c.macs[ref] = mac
}
