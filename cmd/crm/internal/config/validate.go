package config

import (
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap/zapcore"

	"github.com/eventcrm/crm/cmd/crm/internal/auth"
)

// Validate checks every setting without touching anything (no file, directory or connection
// is made) and reports every problem at once, one per line, so that a command can refuse a bad
// configuration before it does anything.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("CRM_ADDR %q: want HOST:PORT or :PORT", c.Addr))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			errs = append(errs, fmt.Errorf("CRM_METRICS_ADDR %q: want HOST:PORT or :PORT", c.MetricsAddr))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("CRM_DATA_DIR: empty"))
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("CRM_LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel))
	}
	if _, err := ParseStore(c.Store, c.DataDir); err != nil {
		errs = append(errs, err)
	} else if _, err := ParseReadModels(c); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.ReadWait(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.AnswerCacheSize(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.AnswerMaxStale(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.StallAfter(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.SnapshotInterval(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.SnapshotSpaceFactor(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.BusinessZone(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.WebhookPrivateAllowed(); err != nil {
		errs = append(errs, err)
	}
	if c.Tokens != "" {
		if _, err := auth.ParseTokens(c.Tokens); err != nil {
			errs = append(errs, fmt.Errorf("CRM_TOKENS: %w", err))
		}
	}
	return errors.Join(errs...)
}
