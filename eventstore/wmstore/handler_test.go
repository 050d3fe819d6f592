package wmstore_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/eventcrm/crm/eventstore/wmstore"
)

// RunHandler, shared by the projections and the process managers, returns nil when its
// context ends and an error when the subscription ends under it, having reported that the
// router ran and delivered to the handler.
func TestRunHandler(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(cancel context.CancelFunc, ps *gochannel.GoChannel)
		wantErr bool
	}{
		{name: "context ends", stop: func(cancel context.CancelFunc, _ *gochannel.GoChannel) { cancel() }},
		{name: "subscription ends", stop: func(_ context.CancelFunc, ps *gochannel.GoChannel) { _ = ps.Close() }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
			defer ps.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			running := make(chan struct{})
			handled := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- wmstore.RunHandler(ctx, watermill.NopLogger{}, wmstore.Handler{
					Name:       "test",
					Topic:      "topic",
					Subscriber: ps,
					Handle:     func(msg *message.Message) error { handled <- msg.UUID; return nil },
					Running:    func() { close(running) },
				})
			}()
			<-running
			if err := ps.Publish("topic", message.NewMessage("m1", nil)); err != nil {
				t.Fatal(err)
			}
			if got := <-handled; got != "m1" {
				t.Fatalf("handled %q, want m1", got)
			}
			tt.stop(cancel, ps)
			if err := <-done; (err != nil) != tt.wantErr {
				t.Fatalf("RunHandler: %v, want an error: %v", err, tt.wantErr)
			}
		})
	}
}
