package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// lagWatchers is how many board requests wait for acknowledged positions at once: a deal
// command is seen when the first answer that comes back after it shows its position, so the
// lag is measured to within a fraction of one board answer.
const lagWatchers = 4

// lagTracker holds the acknowledged deal commands not yet seen on the board.
type lagTracker struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []ack
	lags    []time.Duration
	done    bool // no more commands come
}

func newLagTracker() *lagTracker {
	t := &lagTracker{}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *lagTracker) add(a ack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = append(t.pending, a)
	t.cond.Broadcast()
}

func (t *lagTracker) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	t.cond.Broadcast()
}

// want waits for a pending command and returns the highest pending position; false when
// none is pending and none will come.
func (t *lagTracker) want() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.pending) == 0 && !t.done {
		t.cond.Wait()
	}
	var p int64
	for _, a := range t.pending {
		p = max(p, a.position)
	}
	return p, len(t.pending) > 0
}

// seen records that an answer received at at showed every position up to position.
func (t *lagTracker) seen(position int64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keep := t.pending[:0]
	for _, a := range t.pending {
		if a.position <= position {
			t.lags = append(t.lags, at.Sub(a.at))
		} else {
			keep = append(keep, a)
		}
	}
	t.pending = keep
}

// lag runs writers at the lag rate and measures, for every deal command, how long after its
// answer the board shows it (GET /v1/pipeline/board?min_position=P answers not stale).
func (ss *session) lag(ctx context.Context) (*lagResult, error) {
	ss.note("lag: %d commands/s for %s, every deal command awaited on the board", ss.o.lagRate, ss.o.duration)
	m, err := ss.s.meter()
	if err != nil {
		return nil, err
	}
	tr := newLagTracker()
	w := ss.writers(ss.o.lanes, ss.o.lagRate, "load-lag")
	w.onAck = func(a ack) {
		if a.cmd.dealCommand() {
			tr.add(a)
		}
	}
	until := time.Now().Add(ss.o.duration)
	board := &recorder{}
	var wg sync.WaitGroup
	for range lagWatchers {
		wg.Go(func() { ss.watchBoard(ctx, tr, board, until.Add(ss.o.catchUp)) })
	}
	wall := w.run(ctx, until)
	tr.finish()
	ss.wrote(w)
	used, _, err := m.read()
	if err != nil {
		return nil, err
	}
	wg.Wait()
	cmds := w.rec.merged(wall)
	res := &lagResult{Rate: ss.o.lagRate, Commands: cmds, CPU: cpuFor(used, wall, cmds.Requests, cmds.Requests),
		Board: board.summary(0)}
	tr.mu.Lock()
	res.Seen = summarize(tr.lags, 0, "", 0)
	res.Unseen = len(tr.pending)
	tr.mu.Unlock()
	return res, ctx.Err()
}

// watchBoard asks the board for the highest pending position until nothing is pending or
// deadline passes; a command still pending then was never seen.
func (ss *session) watchBoard(ctx context.Context, tr *lagTracker, rec *recorder, deadline time.Time) {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		p, ok := tr.want()
		if !ok {
			return
		}
		start := time.Now()
		st, payload, err := ss.c.do(ctx, "GET", fmt.Sprintf("/v1/pipeline/board?min_position=%d", p), nil)
		at := time.Now()
		if !rec.record(at.Sub(start), st, payload, err) {
			continue
		}
		var answer struct {
			Freshness struct {
				Position int64 `json:"position"`
				Stale    bool  `json:"stale"`
			} `json:"freshness"`
		}
		if json.Unmarshal(payload, &answer) == nil && !answer.Freshness.Stale {
			tr.seen(answer.Freshness.Position, at)
		}
	}
}

// burstSample is the read models' lag at one moment of the burst scenario: the largest over
// the projections.
type burstSample struct {
	T       float64 `json:"t"` // seconds since the burst began
	Events  int64   `json:"lag_events"`
	Seconds float64 `json:"lag_seconds"`
}

// burstSampleEvery is the period of the lag samples of the burst scenario.
const burstSampleEvery = 250 * time.Millisecond

// burst runs writers at full speed for o.burst, sampling the projections' lag, and goes on
// sampling after it until the read models have caught up.
func (ss *session) burst(ctx context.Context) (*burstResult, error) {
	ss.note("burst: %d clients at full speed for %s, then the read models' lag until caught up", ss.o.saturation, ss.o.burst)
	start := time.Now()
	var (
		series []burstSample
		mu     sync.Mutex
	)
	sample := func() ([]projection, error) {
		ps, err := projectionStatus(ctx, ss.c)
		if err != nil {
			return nil, err
		}
		s := burstSample{T: time.Since(start).Seconds()}
		for _, p := range ps {
			s.Events, s.Seconds = max(s.Events, p.Lag.Events), max(s.Seconds, p.Lag.Seconds)
		}
		mu.Lock()
		series = append(series, s)
		mu.Unlock()
		return ps, nil
	}
	stop := make(chan struct{})
	sampled := make(chan error, 1)
	go func() { sampled <- sampleUntil(stop, sample) }()
	cmds, cpu, err := ss.fullSpeed(ctx, ss.o.burst, "load-burst")
	close(stop)
	if serr := <-sampled; err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	end := time.Now()
	res := &burstResult{Clients: ss.o.saturation, Seconds: ss.o.burst.Seconds(), Commands: cmds, CPU: cpu}
	for {
		ps, err := sample()
		if err != nil {
			return nil, err
		}
		if caughtUp(ps, ss.last) {
			res.CatchUpSeconds = time.Since(end).Seconds()
			break
		}
		if time.Since(end) > ss.o.catchUp {
			res.CatchUpSeconds = -1 // not caught up: flagged in the report
			break
		}
		if err := sleep(ctx, burstSampleEvery); err != nil {
			return nil, err
		}
	}
	res.Series = series
	for _, s := range series {
		res.PeakLagEvents, res.PeakLagSeconds = max(res.PeakLagEvents, s.Events), max(res.PeakLagSeconds, s.Seconds)
	}
	return res, nil
}

// sampleUntil calls sample every burstSampleEvery until stop is closed.
func sampleUntil(stop <-chan struct{}, sample func() ([]projection, error)) error {
	t := time.NewTicker(burstSampleEvery)
	defer t.Stop()
	for {
		if _, err := sample(); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
	}
}
