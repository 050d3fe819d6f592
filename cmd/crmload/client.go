package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// client sends requests to one server, with a bearer token, over kept-alive connections.
// Every scenario and the trivial baseline use the same client code.
type client struct {
	http  *http.Client
	base  string
	token string
}

// requestTimeout bounds one request: a journey map under heavy writes took 25 s on main.
const requestTimeout = 2 * time.Minute

func newClient(base, token string, conns int) *client {
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &client{http: &http.Client{Transport: tr, Timeout: requestTimeout}, base: base, token: token}
}

// do sends one request and reads the whole answer.
func (c *client) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	payload, err := io.ReadAll(resp.Body)
	return resp.StatusCode, payload, err
}

// close drops the kept connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// recorder collects the latencies and failures of one kind of request.
type recorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	errors   int
	firstErr string
}

// record notes one request: a transport error or an answer that is not 2xx is a failure.
func (r *recorder) record(d time.Duration, status int, payload []byte, err error) bool {
	ok := err == nil && status >= 200 && status < 300
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, d)
	if !ok {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = failure(status, payload, err)
		}
	}
	return ok
}

func failure(status int, payload []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	const keep = 300
	if len(payload) > keep {
		payload = payload[:keep]
	}
	return fmt.Sprintf("%d %s", status, bytes.TrimSpace(payload))
}

// latency is what the report says of a set of requests.
type latency struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	PerSec   float64 `json:"per_second"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
}

// summary is the recorder's figures over a span of wall time.
func (r *recorder) summary(wall time.Duration) latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	return summarize(r.lat, r.errors, r.firstErr, wall)
}

func summarize(lat []time.Duration, errs int, firstErr string, wall time.Duration) latency {
	s := slices.Clone(lat)
	slices.Sort(s)
	l := latency{Requests: len(s), Errors: errs, FirstErr: firstErr}
	if wall > 0 {
		l.PerSec = float64(len(s)) / wall.Seconds()
	}
	if len(s) > 0 {
		l.P50ms, l.P99ms, l.MaxMs = ms(percentile(s, 0.50)), ms(percentile(s, 0.99)), ms(s[len(s)-1])
	}
	return l
}

// percentile is the nearest-rank percentile of sorted, which is not empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

// recorders are recorders by name, created on first use.
type recorders struct {
	mu sync.Mutex
	m  map[string]*recorder
}

func (rs *recorders) get(name string) *recorder {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[string]*recorder{}
	}
	r := rs.m[name]
	if r == nil {
		r = &recorder{}
		rs.m[name] = r
	}
	return r
}

// merged is all the recorders' requests as one.
func (rs *recorders) merged(wall time.Duration) latency {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var (
		lat      []time.Duration
		errs     int
		firstErr string
	)
	for _, r := range rs.m {
		r.mu.Lock()
		lat = append(lat, r.lat...)
		errs += r.errors
		if firstErr == "" {
			firstErr = r.firstErr
		}
		r.mu.Unlock()
	}
	return summarize(lat, errs, firstErr, wall)
}

// each is every recorder's figures, by name.
func (rs *recorders) each(wall time.Duration) map[string]latency {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := map[string]latency{}
	for name, r := range rs.m {
		out[name] = r.summary(wall)
	}
	return out
}
