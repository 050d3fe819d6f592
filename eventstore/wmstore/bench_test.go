package wmstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/eventstore/wmstore"
)

// benchRate is the publishing rate of the latency benchmarks: a busy CRM, not a stress test.
const benchRate = 1000 // events per second

// benchStreams is how many streams the events are spread over. Stream subscriptions have
// one router handler per stream.
const benchStreams = 16

// BenchmarkDeliveryLatency measures the time from Publish to a router handler receiving the
// message, at a steady benchRate, and reports its p50 and p99 and the rate reached:
//   - stream: one handler per stream topic, no consumer group;
//   - all: one handler on $all with a consumer group (a checkpoint save per message);
//   - baseline: Store.Append to Store.Subscribe, without Watermill, for the ratio.
//
// Run with e.g. -benchtime=5000x for stable percentiles.
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			store := be.open(b)
			b.Run("baseline", func(b *testing.B) { benchBaseline(b, store) })
			b.Run("stream", func(b *testing.B) { benchRouter(b, store, false) })
			b.Run("all", func(b *testing.B) { benchRouter(b, store, true) })
		})
	}
}

// latencies records when messages were published and how long they took to arrive.
type latencies struct {
	mu   sync.Mutex
	sent map[string]time.Time
	got  []time.Duration
	all  chan struct{} // closed when want have arrived
	want int
}

func newLatencies(n int) *latencies {
	return &latencies{sent: make(map[string]time.Time, n), all: make(chan struct{}), want: n}
}

func (l *latencies) publishing(id string) {
	l.mu.Lock()
	l.sent[id] = time.Now()
	l.mu.Unlock()
}

func (l *latencies) received(id string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	t0, ok := l.sent[id]
	if !ok {
		return // not ours, or delivered again
	}
	delete(l.sent, id)
	l.got = append(l.got, now.Sub(t0))
	if len(l.got) == l.want {
		close(l.all)
	}
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	slices.Sort(l.got)
	pct := func(p float64) float64 {
		i := int(p*float64(len(l.got))+0.5) - 1
		return float64(l.got[max(0, min(i, len(l.got)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(l.got))/elapsed.Seconds(), "events/s")
}

// drive calls publish b.N times at benchRate, from a few goroutines so that one slow commit
// does not hold the rate back, and waits until l has every message.
func drive(b *testing.B, l *latencies, publish func(i int)) {
	b.Helper()
	const workers = 8
	jobs := make(chan int, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				publish(i)
			}
		})
	}
	tick := time.NewTicker(time.Second / benchRate)
	defer tick.Stop()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		<-tick.C
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case <-l.all:
	case <-time.After(30 * time.Second):
		b.Fatalf("%d of %d messages arrived", len(l.got), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	l.report(b, elapsed)
}

func benchMessage(i int) *message.Message {
	msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"n":%d,"note":"a typical event body of a couple of hundred bytes, give or take, like a contact's phase change with its reason"}`, i)))
	msg.Metadata.Set(wmstore.KeyType, "bench.happened.v1")
	msg.Metadata.Set(wmstore.KeyActor, "user:bench")
	msg.Metadata.Set(wmstore.KeyCorrelationID, watermill.NewUUID())
	return msg
}

func benchRouter(b *testing.B, store eventstore.Store, all bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := watermill.NewShortUUID() // b runs this several times on one store
	streams := make([]string, benchStreams)
	for i := range streams {
		streams[i] = fmt.Sprintf("bench-%s-%d", run, i)
	}
	pub, err := wmstore.NewPublisher(store, wmstore.PublisherConfig{})
	if err != nil {
		b.Fatal(err)
	}
	cfg := wmstore.SubscriberConfig{}
	if all {
		// A new group starts at the beginning of the log: start it after what is there.
		cfg.ConsumerGroup = "bench-" + run
		marker := benchMessage(-1)
		if err := pub.Publish(streams[0], marker); err != nil {
			b.Fatal(err)
		}
		e, err := store.EventByID(ctx, marker.UUID)
		if err != nil {
			b.Fatal(err)
		}
		err = store.(eventstore.Checkpoints).SaveCheckpoint(ctx, wmstore.CheckpointName(cfg.ConsumerGroup, wmstore.AllTopic), e.Position)
		if err != nil {
			b.Fatal(err)
		}
	}
	sub, err := wmstore.NewSubscriber(store, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	l := newLatencies(b.N)
	handler := func(msg *message.Message) error {
		l.received(msg.UUID)
		return nil
	}
	if all {
		router.AddConsumerHandler("latency", wmstore.AllTopic, sub, handler)
	} else {
		for i, stream := range streams {
			router.AddConsumerHandler(fmt.Sprintf("latency-%d", i), stream, sub, handler)
		}
	}
	done := make(chan error, 1)
	go func() { done <- router.Run(ctx) }()
	<-router.Running()

	drive(b, l, func(i int) {
		msg := benchMessage(i)
		l.publishing(msg.UUID)
		if err := pub.Publish(streams[i%len(streams)], msg); err != nil {
			b.Error(err)
		}
	})
	cancel()
	if err := <-done; err != nil {
		b.Error(err)
	}
}

func benchBaseline(b *testing.B, store eventstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := watermill.NewShortUUID()
	marker := benchMessage(-1)
	res, err := store.Append(ctx, "bench-"+run+"-marker", eventstore.AnyVersion,
		[]eventstore.EventData{{ID: marker.UUID, Type: "bench.happened.v1", Data: marker.Payload}})
	if err != nil {
		b.Fatal(err)
	}
	sub, err := store.Subscribe(ctx, res.Position)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	l := newLatencies(b.N)
	go func() {
		for e := range sub.Events() {
			l.received(e.ID)
		}
	}()
	drive(b, l, func(i int) {
		msg := benchMessage(i)
		l.publishing(msg.UUID)
		_, err := store.Append(ctx, fmt.Sprintf("bench-%s-%d", run, i%benchStreams), eventstore.AnyVersion,
			[]eventstore.EventData{{ID: msg.UUID, Type: "bench.happened.v1", Data: msg.Payload,
				Metadata: eventstore.Metadata{Actor: "user:bench", CorrelationID: msg.Metadata.Get(wmstore.KeyCorrelationID)}}})
		if err != nil {
			b.Error(err)
		}
	})
}
