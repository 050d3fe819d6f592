package webhooks_test

import (
	"testing"
	"time"

	"github.com/eventcrm/crm/cmd/crm/internal/webhooks"
)

// The example of the Standard Webhooks specification.
func TestSignAsTheSpecificationDoes(t *testing.T) {
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body   = `{"test": 2432232314}`
		want   = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	at := time.Unix(1614265330, 0)
	got, err := webhooks.Sign(secret, id, at, []byte(body))
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	tests := []struct {
		name, timestamp, signatures, body string
		now                               time.Time
		ok                                bool
	}{
		{"valid", "1614265330", want, body, at, true},
		{"one of several", "1614265330", "v1,AAAA " + want, body, at.Add(time.Minute), true},
		{"another body", "1614265330", want, `{"test": 1}`, at, false},
		{"another timestamp", "1614265331", want, body, at, false},
		{"too old", "1614265330", want, body, at.Add(10 * time.Minute), false},
		{"no timestamp", "x", want, body, at, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhooks.Verify(secret, id, tt.timestamp, tt.signatures, []byte(tt.body), tt.now, 5*time.Minute)
			if (err == nil) != tt.ok {
				t.Fatalf("Verify = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
