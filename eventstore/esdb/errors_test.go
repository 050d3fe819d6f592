package esdb

import (
	"context"
	"errors"
	"fmt"
	"testing"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/eventcrm/crm/eventstore"
)

// allCodes lists every error code of the client.
func allCodes() []esdbclient.ErrorCode {
	return []esdbclient.ErrorCode{
		esdbclient.ErrorCodeUnknown,
		esdbclient.ErrorCodeUnsupportedFeature,
		esdbclient.ErrorCodeDeadlineExceeded,
		esdbclient.ErrorCodeUnauthenticated,
		esdbclient.ErrorCodeResourceNotFound,
		esdbclient.ErrorCodeResourceAlreadyExists,
		esdbclient.ErrorCodeConnectionClosed,
		esdbclient.ErrorCodeWrongExpectedVersion,
		esdbclient.ErrorCodeAccessDenied,
		esdbclient.ErrorCodeStreamDeleted,
		esdbclient.ErrorCodeParsing,
		esdbclient.ErrorCodeInternalClient,
		esdbclient.ErrorCodeInternalServer,
		esdbclient.ErrorCodeNotLeader,
		esdbclient.ErrorAborted,
		esdbclient.ErrorUnavailable,
	}
}

// *esdb.Error has unexported fields: outside its package only esdb.FromError builds one, and only
// with ErrorCodeUnknown. So the code mapping is tested on the codes, and translateError on the
// errors that can be built.
func TestErrorForCode(t *testing.T) {
	t.Parallel()
	want := map[esdbclient.ErrorCode]error{
		esdbclient.ErrorCodeWrongExpectedVersion: eventstore.ErrWrongExpectedVersion,
		esdbclient.ErrorCodeResourceNotFound:     eventstore.ErrStreamNotFound,
		esdbclient.ErrorCodeStreamDeleted:        eventstore.ErrStreamNotFound,
		esdbclient.ErrorCodeConnectionClosed:     eventstore.ErrClosed,
		esdbclient.ErrorCodeDeadlineExceeded:     context.DeadlineExceeded,
	}
	for _, code := range allCodes() {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			if got := errorForCode(code); got != want[code] {
				t.Errorf("errorForCode(%d) = %v, want %v", code, got, want[code])
			}
		})
	}
}

func TestTransientCode(t *testing.T) {
	t.Parallel()
	transient := map[esdbclient.ErrorCode]bool{
		esdbclient.ErrorCodeUnknown:          true,
		esdbclient.ErrorCodeDeadlineExceeded: true,
		esdbclient.ErrorCodeNotLeader:        true,
		esdbclient.ErrorAborted:              true,
		esdbclient.ErrorUnavailable:          true,
	}
	for _, code := range allCodes() {
		if got := transientCode(code); got != transient[code] {
			t.Errorf("transientCode(%d) = %v, want %v", code, got, transient[code])
		}
	}
}

// closedClientError is a real *esdb.Error with ErrorCodeConnectionClosed: what a closed client
// answers, with no server involved.
func closedClientError(t *testing.T) error {
	t.Helper()
	conf, err := esdbclient.ParseConnectionString("esdb://localhost:2113?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = esdbclient.NoopLogging()
	client, err := esdbclient.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = client.ReadStream(context.Background(), "s", esdbclient.ReadStreamOptions{}, 1)
	var esdbErr *esdbclient.Error
	if !errors.As(err, &esdbErr) || esdbErr.Code() != esdbclient.ErrorCodeConnectionClosed {
		t.Fatalf("closed client error = %v, want ErrorCodeConnectionClosed", err)
	}
	return err
}

func TestTranslateError(t *testing.T) {
	t.Parallel()
	plain := errors.New("boom")
	unknown, _ := esdbclient.FromError(plain) // the one code FromError can build
	closed := closedClientError(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		err    error
		is     []error // errors.Is must hold for each
		isNot  []error
		esdbOK bool // errors.As finds the *esdb.Error
	}{
		{name: "plain error passes", ctx: context.Background(), err: plain, is: []error{plain},
			isNot: []error{eventstore.ErrWrongExpectedVersion, eventstore.ErrStreamNotFound}},
		{name: "unknown code passes", ctx: context.Background(), err: unknown, is: []error{plain}, esdbOK: true,
			isNot: []error{eventstore.ErrClosed}},
		{name: "connection closed", ctx: context.Background(), err: closed, is: []error{eventstore.ErrClosed}, esdbOK: true},
		{name: "wrapped connection closed", ctx: context.Background(), err: fmt.Errorf("read: %w", closed),
			is: []error{eventstore.ErrClosed}, esdbOK: true},
		{name: "cancelled context", ctx: cancelled, err: unknown, is: []error{context.Canceled, plain}, esdbOK: true},
		{name: "cancelled context keeps the mapping", ctx: cancelled, err: closed,
			is: []error{context.Canceled, eventstore.ErrClosed}, esdbOK: true},
		{name: "context error not doubled", ctx: cancelled, err: context.Canceled, is: []error{context.Canceled}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := translateError(tt.ctx, tt.err)
			for _, target := range tt.is {
				if !errors.Is(got, target) {
					t.Errorf("translateError(%v) = %v, not %v", tt.err, got, target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(got, target) {
					t.Errorf("translateError(%v) = %v, is %v", tt.err, got, target)
				}
			}
			var esdbErr *esdbclient.Error
			if errors.As(got, &esdbErr) != tt.esdbOK {
				t.Errorf("errors.As(%v, *esdb.Error) = %v, want %v", got, !tt.esdbOK, tt.esdbOK)
			}
		})
	}
	if err := translateError(context.Background(), nil); err != nil {
		t.Errorf("translateError(nil) = %v", err)
	}
	if got := translateError(cancelled, context.Canceled); got != context.Canceled {
		t.Errorf("translateError(ctx error) = %v, want it unchanged", got)
	}
}

func TestRetryable(t *testing.T) {
	t.Parallel()
	unknown, _ := esdbclient.FromError(errors.New("transport is closing"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"raw gRPC error of a dropped subscription", errors.New("rpc error: code = Unavailable"), true},
		{"unknown code", unknown, true},
		{"wrapped unknown code", fmt.Errorf("subscribe: %w", unknown), true},
		{"closed client", translateError(context.Background(), closedClientError(t)), false},
		{"store closed", eventstore.ErrClosed, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
