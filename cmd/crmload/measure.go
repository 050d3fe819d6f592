package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// betweenQuiet is how long the server must be quiet between two scenarios.
const betweenQuiet = 2 * time.Second

// measure runs the scenarios asked for and returns what they measured, also when one of
// them fails part-way (then with the error).
func measure(ctx context.Context, o options, work string, progress io.Writer) (*report, error) {
	rep := newReport(o)
	if o.scenarios["readers"] || o.scenarios["lag"] || o.scenarios["burst"] || o.scenarios[startupOnly] {
		if err := measureSeeded(ctx, o, work, rep, progress); err != nil {
			return rep, err
		}
	}
	if o.scenarios["saturation"] {
		if err := measureSaturation(ctx, o, work, rep, progress); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// run is the server of one part of the measurement, and what it has been sent.
type session struct {
	o    options
	s    *server
	c    *client
	last int64 // the highest position a command answered
	log  io.Writer
}

func (ss *session) note(format string, args ...any) {
	fmt.Fprintf(ss.log, "crmload: "+format+"\n", args...)
}

// startSession starts the server on t and waits until its read models have caught up and
// it is quiet for span.
func startSession(ctx context.Context, o options, t target, span time.Duration, log io.Writer) (*session, startup, error) {
	start := time.Now()
	s, err := startServer(ctx, o, t)
	if err != nil {
		return nil, startup{}, err
	}
	ss := &session{o: o, s: s, c: newClient(s.base, s.token, o.readers+o.lanes+o.saturation+lagWatchers), log: log}
	where := ""
	if t.schema != "" {
		where = " (store in schema " + t.schema + ", read models in " + t.schema + "_readmodels)"
	}
	ss.note("%s server started on %s%s; waiting for the read models to catch up", t.backend, s.base, where)
	if _, err := waitCaughtUp(ctx, ss.s, ss.c, 0, o.startup); err != nil {
		ss.stop()
		return nil, startup{}, err
	}
	caught := time.Since(start)
	stalls := ss.s.logCount(stalledNotice)
	ss.note("caught up after %.1f s (%d notices of a stalled feed); waiting until the server is quiet for %s", caught.Seconds(), stalls, span)
	if err := waitQuiet(ctx, ss.s, span, o.startup); err != nil {
		ss.stop()
		return nil, startup{}, err
	}
	return ss, startup{CaughtUpSeconds: caught.Seconds(), QuietSeconds: time.Since(start).Seconds(), StalledNotices: stalls}, nil
}

// stalledNotice opens the server's log line of a stalled feed.
const stalledNotice = "The feed is stalled"

// startup is how long a server took from its start until its read models had caught up
// with the log, and until it was quiet (its background work at start done).
type startup struct {
	CaughtUpSeconds float64 `json:"caught_up_seconds"`
	QuietSeconds    float64 `json:"quiet_seconds"`
	// StalledNotices counts the server's notices of a stalled feed until it had caught up:
	// a start reads the whole log, which is no stall.
	StalledNotices int `json:"stalled_notices"`
}

// settle waits for the read models to apply every command answered so far, then for the
// server to be quiet for span.
func (ss *session) settle(ctx context.Context, span time.Duration) error {
	if _, err := waitCaughtUp(ctx, ss.s, ss.c, ss.last, ss.o.catchUp); err != nil {
		return err
	}
	return waitQuiet(ctx, ss.s, span, ss.o.catchUp)
}

func (ss *session) stop() {
	ss.c.close()
	ss.s.stop()
}

// writers are the session's writers at rate commands/s (0: full speed) on lanes clients.
func (ss *session) writers(lanes, rate int, prefix string) *writers {
	return &writers{c: ss.c, lanes: lanes, rate: rate, prefix: prefix, rec: &recorders{}}
}

// wrote notes the positions w's commands reached.
func (ss *session) wrote(w *writers) { ss.last = max(ss.last, w.last.Load()) }

// measureSeeded runs the reader rounds, the lag and the burst on a copy of the seeded store.
func measureSeeded(ctx context.Context, o options, work string, rep *report, log io.Writer) (err error) {
	t, err := seededTarget(ctx, o, work)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.release(context.Background(), o, log)) }()
	ss, took, err := startSession(ctx, o, t, o.settle, log)
	if err != nil {
		return err
	}
	defer ss.stop()
	rep.Startup = took
	if err := ss.describeStore(ctx, rep); err != nil {
		return err
	}
	if o.scenarios["readers"] {
		if err := ss.readerRounds(ctx, rep); err != nil {
			return err
		}
	}
	if o.scenarios["lag"] {
		if err := ss.settle(ctx, min(o.settle, betweenQuiet)); err != nil {
			return err
		}
		if rep.Lag, err = ss.lag(ctx); err != nil {
			return err
		}
	}
	if o.scenarios["burst"] {
		if err := ss.settle(ctx, min(o.settle, betweenQuiet)); err != nil {
			return err
		}
		if rep.Burst, err = ss.burst(ctx); err != nil {
			return err
		}
	}
	ps, err := waitCaughtUp(ctx, ss.s, ss.c, ss.last, o.catchUp)
	if err != nil {
		return err
	}
	rep.Parked = parked(ps)
	return nil
}

// describeStore notes the size of the log and picks the contact the readers read.
func (ss *session) describeStore(ctx context.Context, rep *report) error {
	ps, err := projectionStatus(ctx, ss.c)
	if err != nil {
		return err
	}
	for _, p := range ps {
		rep.Events = max(rep.Events, p.Head)
	}
	if rep.Contact, err = pickContact(ctx, ss.c); err != nil {
		return err
	}
	rep.Questions, _ = questionsOf(ss.o.questions, rep.Contact) // validated with the options
	return nil
}

// readerRounds runs the readers beside each write rate, the rates interleaved, o.rounds times.
func (ss *session) readerRounds(ctx context.Context, rep *report) error {
	for r := 1; r <= ss.o.rounds; r++ {
		for _, rate := range ss.o.rates {
			if err := ss.settle(ctx, min(ss.o.settle, betweenQuiet)); err != nil {
				return err
			}
			ss.note("round %d/%d: %d readers beside %d commands/s for %s", r, ss.o.rounds, ss.o.readers, rate, ss.o.duration)
			res, err := ss.readerRound(ctx, rep.Questions, r, rate)
			if err != nil {
				return err
			}
			rep.Rounds = append(rep.Rounds, res)
		}
	}
	return nil
}

func (ss *session) readerRound(ctx context.Context, qs []question, r, rate int) (round, error) {
	m, err := ss.s.meter()
	if err != nil {
		return round{}, err
	}
	until := time.Now().Add(ss.o.duration)
	reads := &recorders{}
	w := ss.writers(ss.o.lanes, rate, fmt.Sprintf("load-r%d-%d", r, rate))
	var (
		wg         sync.WaitGroup
		writerWall time.Duration
	)
	if rate > 0 {
		wg.Go(func() { writerWall = w.run(ctx, until) })
	}
	readers(ctx, ss.c, ss.o.readers, qs, until, reads)
	wg.Wait()
	ss.wrote(w)
	used, wall, err := m.read()
	if err != nil {
		return round{}, err
	}
	// Commands/s over the writers' own time: the readers' last answers may come later.
	res := round{Round: r, Rate: rate, Seconds: wall.Seconds(), Commands: w.rec.merged(writerWall)}
	perQuestion := reads.each(wall)
	for _, q := range qs {
		res.Reads = append(res.Reads, questionResult{Question: q.Name, latency: perQuestion[q.Name]})
	}
	// Per request, reads and commands alike: the readers' share of the CPU cannot be told
	// from the writers'.
	res.CPU = cpuFor(used, wall, reads.merged(wall).Requests+res.Commands.Requests, 0)
	return res, ctx.Err()
}

// measureSaturation drives an empty store with full-speed writers, then the trivial handler
// with the same clients.
func measureSaturation(ctx context.Context, o options, work string, rep *report, log io.Writer) (err error) {
	t, err := emptyTarget(o, work)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, t.release(context.Background(), o, log)) }()
	ss, _, err := startSession(ctx, o, t, min(o.settle, betweenQuiet), log)
	if err != nil {
		return err
	}
	ss.note("saturation: %d clients at full speed for %s on an empty store", o.saturation, o.duration)
	crm, cpu, err := ss.fullSpeed(ctx, o.duration, "load-sat")
	ss.stop()
	if err != nil {
		return err
	}
	ss.note("saturation: the same clients against a trivial JSON handler for %s", o.duration)
	trivial, err := trivialRate(ctx, o)
	if err != nil {
		return err
	}
	rep.Saturation = &saturation{Clients: o.saturation, CRM: crm, CPU: cpu, Trivial: trivial}
	if trivial.PerSec > 0 {
		rep.Saturation.Ratio = crm.PerSec / trivial.PerSec
	}
	return ctx.Err()
}

// fullSpeed runs o.saturation writers as fast as the server answers, for d.
func (ss *session) fullSpeed(ctx context.Context, d time.Duration, prefix string) (latency, cpuFigures, error) {
	m, err := ss.s.meter()
	if err != nil {
		return latency{}, cpuFigures{}, err
	}
	w := ss.writers(ss.o.saturation, 0, prefix)
	wall := w.run(ctx, time.Now().Add(d))
	ss.wrote(w)
	used, _, err := m.read()
	cmds := w.rec.merged(wall)
	return cmds, cpuFor(used, wall, cmds.Requests, cmds.Requests), err
}

// trivialRate is the commands/s of the same writers against a handler that only decodes the
// JSON and answers as a command would.
func trivialRate(ctx context.Context, o options) (latency, error) {
	base, stop, err := startTrivial()
	if err != nil {
		return latency{}, err
	}
	defer stop()
	c := newClient(base, "trivial", o.saturation)
	defer c.close()
	w := &writers{c: c, lanes: o.saturation, prefix: "load-trivial", rec: &recorders{}}
	wall := w.run(ctx, time.Now().Add(o.duration))
	return w.rec.merged(wall), ctx.Err()
}

func cpuFor(used, wall time.Duration, requests, commands int) cpuFigures {
	f := cpuFigures{Seconds: used.Seconds()}
	if wall > 0 {
		f.Percent = 100 * used.Seconds() / wall.Seconds()
	}
	if requests > 0 {
		f.MsPerRequest = ms(used / time.Duration(requests))
	}
	if commands > 0 {
		f.MsPerCommand = ms(used / time.Duration(commands))
	}
	return f
}
