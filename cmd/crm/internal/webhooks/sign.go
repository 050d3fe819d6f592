package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret, as the Standard Webhooks specification writes
// them: whsec_ then the base64 of the key.
const SecretPrefix = "whsec_"

// NewSecret returns a fresh signing secret with a 24-byte key.
func NewSecret() (string, error) {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("signing secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

func secretKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("signing secret: %w", err)
	}
	return key, nil
}

// Sign is the webhook-signature header of a message: "v1," and the base64 of the
// HMAC-SHA256, keyed by the secret's key, of "id.timestamp.body".
func Sign(secret, id string, timestamp time.Time, body []byte) (string, error) {
	key, err := secretKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Errors of Verify.
var (
	ErrNoSignature = errors.New("no valid webhook signature")
	ErrTooOld      = errors.New("webhook timestamp outside the tolerance")
)

// Verify checks a message as a receiver does: the webhook-timestamp within tolerance of now,
// and one of the space-separated signatures of webhook-signature equal to Sign's.
func Verify(secret, id, timestamp, signatures string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q: %w", timestamp, ErrNoSignature)
	}
	at := time.Unix(ts, 0)
	if at.Before(now.Add(-tolerance)) || at.After(now.Add(tolerance)) {
		return ErrTooOld
	}
	want, err := Sign(secret, id, at, body)
	if err != nil {
		return err
	}
	for _, sig := range strings.Fields(signatures) {
		if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) == 1 {
			return nil
		}
	}
	return ErrNoSignature
}
