package esdb

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"go.uber.org/zap"
)

// Option configures a Store.
type Option func(*config)

// WithLogger logs subscription reconnects (warn) and the client's own messages (debug).
// Default: no logging.
func WithLogger(l *zap.Logger) Option { return func(c *config) { c.logger = l } }

// WithClock sets the clock that stamps RecordedAt (and OccurredAt when not given).
// Default: time.Now.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithSubscriptionBuffer sets the capacity of a subscription's Events channel. Default 1024.
func WithSubscriptionBuffer(n int) Option { return func(c *config) { c.subscriptionBuffer = n } }

// WithReconnectBackoff sets the delay before the first resubscription after a transient failure;
// it doubles on each further failure up to max. Default 100ms to 5s.
func WithReconnectBackoff(initial, max time.Duration) Option {
	return func(c *config) { c.reconnectInitial, c.reconnectMax = initial, max }
}

// WithMaxReconnects bounds the consecutive failed resubscriptions after which a subscription
// ends with the last error. Default 0: retry until the subscription's context is done.
func WithMaxReconnects(n int) Option { return func(c *config) { c.maxReconnects = n } }

// WithAppendRetries bounds how often an AnyVersion append that lost the race for the stream head
// is tried again before it returns the version conflict. Default 16.
func WithAppendRetries(n int) Option { return func(c *config) { c.appendRetries = n } }

type config struct {
	logger             *zap.Logger
	now                func() time.Time
	subscriptionBuffer int
	reconnectInitial   time.Duration
	reconnectMax       time.Duration
	maxReconnects      int
	appendRetries      int
}

func defaultConfig() config {
	return config{
		logger:             zap.NewNop(),
		now:                time.Now,
		subscriptionBuffer: 1024,
		reconnectInitial:   100 * time.Millisecond,
		reconnectMax:       5 * time.Second,
		appendRetries:      16,
	}
}

func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for _, opt := range opts {
		opt(&c)
	}
	return c, c.validate()
}

// validate reports every problem at once.
func (c config) validate() error {
	var errs []error
	if c.logger == nil {
		errs = append(errs, errors.New("logger is nil"))
	}
	if c.now == nil {
		errs = append(errs, errors.New("clock is nil"))
	}
	if c.subscriptionBuffer < 0 {
		errs = append(errs, fmt.Errorf("subscription buffer %d is negative", c.subscriptionBuffer))
	}
	if c.reconnectInitial <= 0 {
		errs = append(errs, fmt.Errorf("initial reconnect delay %v is not positive", c.reconnectInitial))
	}
	if c.reconnectMax < c.reconnectInitial {
		errs = append(errs, fmt.Errorf("maximum reconnect delay %v is below the initial one %v", c.reconnectMax, c.reconnectInitial))
	}
	if c.maxReconnects < 0 {
		errs = append(errs, fmt.Errorf("max reconnects %d is negative", c.maxReconnects))
	}
	if c.appendRetries < 0 {
		errs = append(errs, fmt.Errorf("append retries %d is negative", c.appendRetries))
	}
	return errors.Join(errs...)
}

// reconnectDelay is the wait before resubscription number failures (from 1).
func (c config) reconnectDelay(failures int) time.Duration {
	d := c.reconnectInitial
	for i := 1; i < failures && d < c.reconnectMax; i++ {
		d *= 2
	}
	return min(d, c.reconnectMax)
}

// parseURL parses an esdb:// or esdb+discover:// connection string. Its errors never repeat the
// string, which may hold a password.
func parseURL(connection string, logger *zap.Logger) (*esdbclient.Configuration, error) {
	conf, err := esdbclient.ParseConnectionString(connection)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	if err := conf.Validate(); err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	// The client logs every error it returns; we return them too, and they are logged once,
	// where they are handled.
	conf.Logger = func(level esdbclient.LogLevel, format string, args ...interface{}) {
		logger.Debug(fmt.Sprintf(format, args...), zap.String("client_level", level))
	}
	return conf, nil
}
