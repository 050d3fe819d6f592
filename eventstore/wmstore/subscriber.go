package wmstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore"
)

// Default SubscriberConfig values.
const (
	DefaultNackDelay     = time.Second
	DefaultPollInterval  = time.Second
	DefaultRetryInterval = time.Second
	DefaultBatchSize     = 100
)

// saveTimeout bounds a checkpoint save. Saves outlive the subscription's context, so that a
// message acked just before Close is not delivered again after a restart.
const saveTimeout = 10 * time.Second

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("subscriber closed")

// SubscriberConfig configures a Subscriber. The zero value, with defaults, is a Subscriber
// without consumer group.
type SubscriberConfig struct {
	// ConsumerGroup, when not empty, makes subscriptions durable (see the package doc).
	ConsumerGroup string
	// Checkpoints keeps the consumer group's checkpoints. Default: the store, when it is an
	// eventstore.Checkpoints. Required with a ConsumerGroup.
	Checkpoints eventstore.Checkpoints
	// NackDelay is the wait before a nacked message is delivered again. Default
	// DefaultNackDelay; negative means at once.
	NackDelay time.Duration
	// PollInterval is how often a stream subscription that has caught up reads its stream
	// when no wake-up came: the safety net for a lost one. Default DefaultPollInterval.
	PollInterval time.Duration
	// RetryInterval is the wait after a failed read before reading again. Default
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// BatchSize is how many events a stream subscription reads at once. Default
	// DefaultBatchSize.
	BatchSize int
}

func (c *SubscriberConfig) setDefaults(store eventstore.Store) {
	if c.Checkpoints == nil {
		c.Checkpoints, _ = store.(eventstore.Checkpoints)
	}
	if c.NackDelay == 0 {
		c.NackDelay = DefaultNackDelay
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
}

// Validate reports every problem of the config.
func (c SubscriberConfig) Validate() error {
	var errs []error
	if c.ConsumerGroup != "" && c.Checkpoints == nil {
		errs = append(errs, fmt.Errorf("consumer group %q: no checkpoints", c.ConsumerGroup))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("poll interval %v: want more than 0", c.PollInterval))
	}
	if c.RetryInterval <= 0 {
		errs = append(errs, fmt.Errorf("retry interval %v: want more than 0", c.RetryInterval))
	}
	if c.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("batch size %d: want more than 0", c.BatchSize))
	}
	return errors.Join(errs...)
}

// CheckpointName is the name of the checkpoint of consumer group in topic. The group is
// quoted so that no two (group, topic) pairs share a name.
func CheckpointName(group, topic string) string {
	return "watermill:" + strconv.Quote(group) + ":" + topic
}

// Subscriber reads the log of an eventstore.Store as Watermill topics (see the package doc).
// It does not own the store: Close ends its subscriptions and leaves the store open.
type Subscriber struct {
	store  eventstore.Store
	config SubscriberConfig
	logger watermill.LoggerAdapter
	waker  *streamWaker

	life  context.Context // canceled by Close; every subscription runs under it
	close context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// turns holds one token per checkpoint name: the subscription that has it consumes.
	turns map[string]chan struct{}
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber of store. A nil logger logs nothing.
func NewSubscriber(store eventstore.Store, config SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if store == nil {
		return nil, errors.New("new subscriber: no store")
	}
	config.setDefaults(store)
	if err := config.Validate(); err != nil {
		return nil, fmt.Errorf("new subscriber: %w", err)
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	if config.ConsumerGroup != "" {
		logger = logger.With(watermill.LogFields{"consumer_group": config.ConsumerGroup})
	}
	s := &Subscriber{
		store:  store,
		config: config,
		logger: logger,
		waker:  newStreamWaker(store, logger, config.RetryInterval),
		turns:  make(map[string]chan struct{}),
	}
	s.life, s.close = context.WithCancel(context.Background())
	return s, nil
}

// Subscribe implements message.Subscriber. The channel delivers the events of topic, one at
// a time (see the package doc), until ctx is done, the Subscriber is closed or the store is
// closed. It returns ErrSubscriberClosed after Close, and the store's error when it cannot
// read where the subscription starts.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("subscribe: empty topic")
	}
	if !s.enter() {
		return nil, ErrSubscriberClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.life, cancel)
	c := &consumer{s: s, topic: topic, logger: s.logger.With(watermill.LogFields{"topic": topic})}
	if err := c.prepare(ctx); err != nil {
		stopOnClose()
		cancel()
		s.wg.Done()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	out := make(chan *message.Message)
	go func() {
		defer s.wg.Done()
		defer cancel()
		defer stopOnClose()
		defer close(out)
		c.run(ctx, out)
	}()
	return out, nil
}

// enter counts a new subscription in, unless the Subscriber is closed.
func (s *Subscriber) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// turn returns the token channel of a checkpoint name.
func (s *Subscriber) turn(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.turns[name]
	if t == nil {
		t = make(chan struct{}, 1)
		s.turns[name] = t
	}
	return t
}

// Close ends every subscription, closing its channel, and waits for them. The contexts of
// the messages in flight are canceled. It does not close the store.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.close()
	s.wg.Wait()
	s.waker.close()
	return nil
}

// consumer is one subscription.
type consumer struct {
	s      *Subscriber
	topic  string
	logger watermill.LoggerAdapter

	checkpoint string        // "" without consumer group
	turn       chan struct{} // the group's token, when checkpoint is set
	hasTurn    bool
	start      int64 // where the topic is read from: after this position or version
}

// prepare does, before Subscribe returns, what can fail for a reason the caller should hear
// about: starting the stream wake-ups and, when it is this subscription's turn, loading the
// checkpoint.
func (c *consumer) prepare(ctx context.Context) error {
	if c.topic != AllTopic {
		if err := c.s.waker.start(ctx, c.s.life); err != nil {
			return err
		}
	}
	if c.s.config.ConsumerGroup == "" {
		return nil
	}
	c.checkpoint = CheckpointName(c.s.config.ConsumerGroup, c.topic)
	c.turn = c.s.turn(c.checkpoint)
	select {
	case c.turn <- struct{}{}:
	default:
		return nil // another subscription of the group consumes: wait for it in run
	}
	start, err := c.s.config.Checkpoints.LoadCheckpoint(ctx, c.checkpoint)
	if err != nil {
		<-c.turn
		return err
	}
	c.hasTurn, c.start = true, start
	return nil
}

func (c *consumer) run(ctx context.Context, out chan<- *message.Message) {
	var save func(eventstore.Event)
	if c.checkpoint != "" {
		if !c.hasTurn && !c.waitTurn(ctx) {
			return
		}
		defer func() { <-c.turn }() // after the last save: the next member resumes there
		saves := newSaver(ctx, c)
		defer saves.flush()
		save = saves.offer
	}
	var src source
	if c.topic == AllTopic {
		src = &allSource{c: c, after: c.start}
	} else {
		wait, release := c.s.waker.register(c.topic)
		defer release()
		src = &streamSource{c: c, from: c.start + 1, wait: wait}
	}
	defer src.close()
	for {
		e, err := src.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.logger.Info("Subscription ended", watermill.LogFields{"reason": err.Error()})
			}
			return
		}
		acked := c.deliver(ctx, e, out)
		if acked && save != nil {
			save(e)
		}
		if !acked || ctx.Err() != nil {
			return
		}
	}
}

// waitTurn waits until no other subscription of the group consumes the topic, then loads the
// checkpoint. It reports false when ctx ended first.
func (c *consumer) waitTurn(ctx context.Context) bool {
	c.logger.Info("Waiting for the consumer group's current subscription to end", nil)
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	for {
		start, err := c.s.config.Checkpoints.LoadCheckpoint(ctx, c.checkpoint)
		if err == nil {
			c.start = start
			return true
		}
		if ended(ctx, err) {
			<-c.turn
			return false
		}
		c.logger.Error("Cannot load checkpoint, trying again", err, watermill.LogFields{"checkpoint": c.checkpoint})
		if !sleep(ctx, c.s.config.RetryInterval) {
			<-c.turn
			return false
		}
	}
}

// deliver sends e until it is acked, and reports whether it was: false when ctx ended first.
func (c *consumer) deliver(ctx context.Context, e eventstore.Event, out chan<- *message.Message) bool {
	for {
		// A message is acked or nacked once: every delivery is a fresh one.
		msg := NewMessage(e)
		msgCtx, cancel := context.WithCancel(ctx)
		msg.SetContext(msgCtx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			return true
		case <-msg.Nacked():
			cancel()
			if !sleep(ctx, c.s.config.NackDelay) {
				return false
			}
		case <-ctx.Done():
			cancel()
			// An Ack that came with the end still counts: its checkpoint is saved.
			select {
			case <-msg.Acked():
				return true
			default:
				return false
			}
		}
	}
}

// saver saves a consumer group's checkpoint in the background, one save at a time, always
// the latest acked point: the next message need not wait for a commit, and the acks that
// come during a save cost one more save, not one each. A crash loses at most the acks of
// the save in flight, which are delivered again.
type saver struct {
	c      *consumer
	ctx    context.Context // outlives the subscription, so that the last ack is saved
	latest chan int64      // holds the point to save next, if any
	done   chan struct{}
}

func newSaver(ctx context.Context, c *consumer) *saver {
	s := &saver{c: c, ctx: context.WithoutCancel(ctx), latest: make(chan int64, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// offer asks for e, just acked, to be saved, replacing the point not saved yet.
func (s *saver) offer(e eventstore.Event) {
	at := e.Version
	if s.c.topic == AllTopic {
		at = e.Position
	}
	for {
		select {
		case s.latest <- at:
			return
		default:
			select {
			case <-s.latest: // superseded
			default:
			}
		}
	}
}

// flush saves what is left and stops the saver.
func (s *saver) flush() {
	close(s.latest)
	<-s.done
}

func (s *saver) run() {
	defer close(s.done)
	for at := range s.latest {
		ctx, cancel := context.WithTimeout(s.ctx, saveTimeout)
		err := s.c.s.config.Checkpoints.SaveCheckpoint(ctx, s.c.checkpoint, at)
		cancel()
		// Not retried: the next ack saves a later point, and until then a restart only
		// delivers again what was acked.
		if err != nil && !errors.Is(err, eventstore.ErrClosed) {
			s.c.logger.Error("Cannot save checkpoint", err, watermill.LogFields{"checkpoint": s.c.checkpoint, "at": at})
		}
	}
}

// ended reports whether err ends a subscription rather than calling for a retry.
func ended(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, eventstore.ErrClosed)
}

// source yields the events of a topic, one at a time.
type source interface {
	// next returns the next event, waiting for one. Its error means the subscription ends: its
	// context is done or the store is closed. Other failures are logged and retried.
	next(ctx context.Context) (eventstore.Event, error)
	close()
}

// allSource reads the global log through Store.Subscribe.
type allSource struct {
	c     *consumer
	after int64
	sub   eventstore.Subscription
}

func (a *allSource) next(ctx context.Context) (eventstore.Event, error) {
	for {
		if a.sub == nil {
			sub, err := a.c.s.store.Subscribe(ctx, a.after)
			if err != nil {
				if ended(ctx, err) {
					return eventstore.Event{}, err
				}
				a.c.logger.Error("Cannot subscribe to the log, trying again", err, watermill.LogFields{"after": a.after})
				if !sleep(ctx, a.c.s.config.RetryInterval) {
					return eventstore.Event{}, ctx.Err()
				}
				continue
			}
			a.sub = sub
		}
		if e, ok := <-a.sub.Events(); ok {
			a.after = e.Position
			return e, nil
		}
		err := a.sub.Err()
		a.close()
		if ctx.Err() != nil {
			return eventstore.Event{}, ctx.Err()
		}
		if err == nil || errors.Is(err, eventstore.ErrClosed) {
			return eventstore.Event{}, eventstore.ErrClosed
		}
		a.c.logger.Error("Log subscription failed, subscribing again", err, watermill.LogFields{"after": a.after})
		if !sleep(ctx, a.c.s.config.RetryInterval) {
			return eventstore.Event{}, ctx.Err()
		}
	}
}

func (a *allSource) close() {
	if a.sub != nil {
		_ = a.sub.Close() // ended; Close only waits for its goroutine
		a.sub = nil
	}
}

// streamSource reads one stream with ReadStream, from version from on, and waits for the
// stream's wake-up (or the poll interval) when it has read everything.
type streamSource struct {
	c    *consumer
	from int64
	buf  []eventstore.Event
	wait func() <-chan struct{}
	// caughtUp, when not nil, is the wake-up channel taken before a read that reached the end
	// of the stream: nothing is left to read until it closes. Waiting for it instead of
	// reading again saves a query per event when events come one by one.
	caughtUp <-chan struct{}
}

func (r *streamSource) next(ctx context.Context) (eventstore.Event, error) {
	cfg := r.c.s.config
	for len(r.buf) == 0 {
		if r.caughtUp != nil {
			if !r.idle(ctx, r.caughtUp) {
				return eventstore.Event{}, ctx.Err()
			}
			r.caughtUp = nil
		}
		// Take the wake-up channel before reading: an append after the read closes it.
		wake := r.wait()
		events, err := r.c.s.store.ReadStream(ctx, r.c.topic, r.from, cfg.BatchSize)
		switch {
		case len(events) > 0:
			r.buf = events
			if len(events) < cfg.BatchSize {
				r.caughtUp = wake
			}
		case err == nil || errors.Is(err, eventstore.ErrStreamNotFound):
			r.caughtUp = wake
		case ended(ctx, err):
			return eventstore.Event{}, err
		default:
			r.c.logger.Error("Cannot read stream, trying again", err, watermill.LogFields{"from": r.from})
			if !sleep(ctx, cfg.RetryInterval) {
				return eventstore.Event{}, ctx.Err()
			}
		}
	}
	e := r.buf[0]
	r.buf[0] = eventstore.Event{} // let the delivered event's data go
	r.buf = r.buf[1:]
	r.from = e.Version + 1
	return e, nil
}

// idle waits for a wake-up or the poll interval, and reports false when ctx ended first.
func (r *streamSource) idle(ctx context.Context, wake <-chan struct{}) bool {
	t := time.NewTimer(r.c.s.config.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}

func (r *streamSource) close() {}
