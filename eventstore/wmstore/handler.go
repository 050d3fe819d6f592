package wmstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Handler is one consumer of the feed, run on a Watermill router of its own: a projection
// or a process manager.
type Handler struct {
	// Name is the handler's persisted name (its consumer group).
	Name       string
	Topic      string
	Subscriber message.Subscriber
	Handle     message.NoPublishHandlerFunc
	// Middleware wraps Handle, outermost first.
	Middleware []message.HandlerMiddleware
	// Running, when set, is called once the router runs.
	Running func()
}

// RunHandler runs h until ctx ends (it returns nil) or the router stops (it returns why:
// its error, or that the subscription ended). The router owns h.Subscriber from then on.
func RunHandler(ctx context.Context, log watermill.LoggerAdapter, h Handler) error {
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, log)
	if err != nil {
		_ = h.Subscriber.Close()
		return fmt.Errorf("router of %s: %w", h.Name, err)
	}
	router.AddConsumerHandler(h.Name, h.Topic, h.Subscriber, h.Handle).AddMiddleware(h.Middleware...)
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	// Close only a running router: closed while it starts, it waits its whole close
	// timeout for a handler that never ran. Before that, ctx ending stops it by itself.
	select {
	case <-router.Running():
		if h.Running != nil {
			h.Running()
		}
	case err := <-done:
		return routerEnded(err)
	}
	select {
	case <-ctx.Done():
		_ = router.Close()
		<-done
		return nil
	case err := <-done:
		return routerEnded(err)
	}
}

func routerEnded(err error) error {
	if err == nil {
		return errors.New("the router stopped: its subscription ended")
	}
	return fmt.Errorf("router: %w", err)
}
