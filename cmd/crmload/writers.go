package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// A journey is one new lead's way through the pipeline, command by command, as the seed
// writes histories: created, touchpoints, phase changes, a deal opened and moved through its
// stages, then won or lost. A writer client works through journeys of its own, so no two
// clients race for a stream.
type journey struct {
	rng     *rand.Rand
	name    string
	contact string
	deal    string
	plan    []string
	next    int
}

// Command kinds, the names of their latencies in the report.
const (
	kindContact    = "create contact"
	kindTouchpoint = "touchpoint"
	kindPhase      = "phase change"
	kindOpenDeal   = "open deal"
	kindStage      = "stage move"
	kindWin        = "win deal"
	kindLose       = "lose deal"
	kindLost       = "contact lost"
)

var (
	channels    = []string{"web_form", "seminar", "exhibition", "direct_mail", "social_ad", "referral"}
	earlyKinds  = []string{"email_open", "email_click", "document_download", "webinar", "inquiry"}
	midKinds    = []string{"call", "email", "meeting", "visit", "seminar"}
	lostReasons = []string{"price", "competitor", "timing", "no_budget", "no_decision", "product_fit", "other"}
)

func newJourney(rng *rand.Rand, name string) *journey {
	j := &journey{rng: rng, name: name}
	j.plan = []string{kindContact, kindTouchpoint, "phase:approach", kindTouchpoint}
	if rng.Float64() < 0.2 { // a lead that goes nowhere
		j.plan = append(j.plan, kindLost)
		return j
	}
	j.plan = append(j.plan, "phase:discovery", kindOpenDeal, "stage:needs_analysis", kindTouchpoint,
		"stage:proposal", "stage:negotiation")
	if rng.Float64() < 0.6 {
		return j.then(kindWin)
	}
	j.then(kindLose)
	if rng.Float64() < 0.5 {
		j.then(kindLost)
	}
	return j
}

func (j *journey) then(step string) *journey { j.plan = append(j.plan, step); return j }

func (j *journey) done() bool { return j.next >= len(j.plan) }

// command is one request of a journey.
type command struct {
	kind string
	path string
	body []byte
}

// deals are the kinds whose events change the pipeline board.
func (c command) dealCommand() bool {
	switch c.kind {
	case kindOpenDeal, kindStage, kindWin, kindLose:
		return true
	}
	return false
}

// current is the journey's next command.
func (j *journey) current() command {
	step := j.plan[j.next]
	pick := func(list []string) string { return list[j.rng.IntN(len(list))] }
	body := func(v map[string]any) []byte { b, _ := json.Marshal(v); return b }
	switch {
	case step == kindContact:
		return command{step, "/v1/contacts", body(map[string]any{"name": j.name, "channel": pick(channels),
			"email": fmt.Sprintf("%s@load.example", j.name), "company": "Load Test KK", "segment": "smb"})}
	case step == kindTouchpoint:
		kinds := earlyKinds
		if j.deal != "" {
			kinds = midKinds
		}
		return command{step, "/v1/contacts/" + j.contact + "/touchpoints", body(map[string]any{"kind": pick(kinds)})}
	case step == kindLost:
		return command{step, "/v1/contacts/" + j.contact + "/phase", body(map[string]any{"phase": "lost", "reason": "no interest"})}
	case step == kindOpenDeal:
		return command{step, "/v1/deals", body(map[string]any{"contact_id": j.contact, "title": "Load " + j.name,
			"amount": 100_000 + j.rng.IntN(5_000_000), "currency": "JPY"})}
	case step == kindWin:
		return command{step, "/v1/deals/" + j.deal + "/win", []byte(`{}`)}
	case step == kindLose:
		return command{step, "/v1/deals/" + j.deal + "/lose", body(map[string]any{"reason": pick(lostReasons)})}
	case len(step) > 6 && step[:6] == "phase:":
		return command{kindPhase, "/v1/contacts/" + j.contact + "/phase", body(map[string]any{"phase": step[6:]})}
	default: // stage:NAME
		return command{kindStage, "/v1/deals/" + j.deal + "/stage", body(map[string]any{"stage": step[6:]})}
	}
}

// answered moves the journey on after its command succeeded with this answer.
func (j *journey) answered(c command, id string) {
	switch c.kind {
	case kindContact:
		j.contact = id
	case kindOpenDeal:
		j.deal = id
	}
	j.next++
}

// ack is a command's successful answer.
type ack struct {
	cmd      command
	position int64
	at       time.Time
}

// writers drive journeys through a server, paced or at full speed.
type writers struct {
	c       *client
	lanes   int
	rate    int    // commands/s; 0 is full speed
	prefix  string // of the contacts' names, unique per scenario
	rec     *recorders
	onAck   func(ack) // when set, hears of every successful command
	last    atomic.Int64
	started time.Time
}

// run sends commands until until, then waits for the ones in flight. A failed command ends
// its journey (its next steps would fail too) and the client starts a new one.
func (w *writers) run(ctx context.Context, until time.Time) time.Duration {
	if w.rec == nil {
		w.rec = &recorders{}
	}
	w.started = time.Now()
	tickets := make(chan struct{})
	go w.pace(ctx, until, tickets)
	var wg sync.WaitGroup
	for lane := range w.lanes {
		wg.Go(func() { w.lane(ctx, lane, tickets) })
	}
	wg.Wait()
	return time.Since(w.started)
}

// pace hands out one ticket per command: at full speed as fast as clients take them, else
// on a fixed schedule (the k-th at start + k/rate). A schedule the clients cannot keep shows
// as a lower commands/s than asked, not as a burst to catch up later: tickets not taken by
// their time are dropped.
func (w *writers) pace(ctx context.Context, until time.Time, tickets chan<- struct{}) {
	defer close(tickets)
	for k := 0; ; k++ {
		at := time.Now()
		if w.rate > 0 {
			at = w.started.Add(time.Duration(k) * time.Second / time.Duration(w.rate))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		}
		if !at.Before(until) || ctx.Err() != nil {
			return
		}
		if w.rate == 0 {
			select {
			case tickets <- struct{}{}:
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case tickets <- struct{}{}:
		default: // every client is busy: this command is not sent
		}
	}
}

func (w *writers) lane(ctx context.Context, lane int, tickets <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(lane), uint64(time.Now().UnixNano())))
	n := 0
	var j *journey
	for range tickets {
		if j == nil || j.done() {
			n++
			j = newJourney(rng, fmt.Sprintf("%s-%d-%d", w.prefix, lane, n))
		}
		cmd := j.current()
		start := time.Now()
		st, payload, err := w.c.do(ctx, "POST", cmd.path, cmd.body)
		at := time.Now()
		if !w.rec.get(cmd.kind).record(at.Sub(start), st, payload, err) {
			j = nil
			continue
		}
		var res struct {
			ID       string `json:"id"`
			Position int64  `json:"position"`
		}
		_ = json.Unmarshal(payload, &res) // a 2xx command answer is this JSON
		j.answered(cmd, res.ID)
		storeMax(&w.last, res.Position)
		if w.onAck != nil {
			w.onAck(ack{cmd: cmd, position: res.Position, at: at})
		}
	}
}

// storeMax raises v to n.
func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}
