package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunEndToEnd runs every scenario against the real `crm serve`, built from this tree, on
// a tiny seeded SQLite store, and checks that the report is complete and error-free. It
// asserts the report's shape and that requests succeeded, never how fast they were.
func TestRunEndToEnd(t *testing.T) {
	work := t.TempDir()
	crm := filepath.Join(work, "crm")
	if out, err := exec.Command("go", "build", "-o", crm, "../crm").CombinedOutput(); err != nil {
		t.Fatalf("build crm: %v\n%s", err, out)
	}
	seeded := filepath.Join(work, "seed")
	seed := exec.Command(crm, "seed", "--contacts", "40", "--quiet")
	seed.Env = append(os.Environ(), "CRM_DATA_DIR="+seeded)
	if out, err := seed.CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	before, err := os.ReadFile(filepath.Join(seeded, "crm.db"))
	if err != nil {
		t.Fatal(err)
	}

	jsonPath := filepath.Join(work, "report.json")
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"--crm", crm, "--sqlite", filepath.Join(seeded, "crm.db"),
		"--work", filepath.Join(work, "run"), "--duration", "3s", "--readers", "5", "--rates", "0,20",
		"--rounds", "1", "--lanes", "4", "--saturation", "4", "--lag-rate", "40", "--burst", "1s",
		"--settle", "1s", "--catch-up", "2m", "--json", jsonPath}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep report
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		name string
		ok   func() bool
	}{
		{"not flagged", func() bool { return !rep.Flagged && rep.Errors == 0 }},
		{"log described", func() bool { return rep.Backend == "sqlite" && rep.Events > 0 && rep.Contact != "" }},
		{"one round per rate", func() bool { return len(rep.Rounds) == 2 && rep.Rounds[0].Rate == 0 && rep.Rounds[1].Rate == 20 }},
		{"every question answered in every round", func() bool {
			for _, r := range rep.Rounds {
				if len(r.Reads) != 5 {
					return false
				}
				for _, q := range r.Reads {
					if q.Requests == 0 || q.Errors != 0 || q.P99ms < q.P50ms {
						return false
					}
				}
			}
			return true
		}},
		{"commands only beside writers", func() bool {
			return rep.Rounds[0].Commands.Requests == 0 && rep.Rounds[1].Commands.Requests > 0 && rep.Rounds[1].Commands.Errors == 0
		}},
		{"server CPU measured", func() bool { return rep.Rounds[0].CPU.Seconds > 0 && rep.Rounds[0].CPU.MsPerRequest > 0 }},
		{"deal commands seen on the board", func() bool {
			return rep.Lag != nil && rep.Lag.Seen.Requests > 0 && rep.Lag.Unseen == 0 && rep.Lag.Commands.Errors == 0
		}},
		{"burst caught up", func() bool {
			return rep.Burst != nil && rep.Burst.Commands.Requests > 0 && rep.Burst.CatchUpSeconds >= 0 && len(rep.Burst.Series) > 0
		}},
		{"saturation beside the trivial handler", func() bool {
			s := rep.Saturation
			return s != nil && s.CRM.Requests > 0 && s.Trivial.Requests > 0 && s.CRM.Errors == 0 && s.Ratio > 0
		}},
		{"no parked events", func() bool { return rep.Parked == 0 }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok() {
				t.Errorf("report:\n%s", stdout.String())
			}
		})
	}
	t.Run("markdown has every section", func(t *testing.T) {
		for _, h := range []string{"### Reads beside writes", "| journey map |", "| one contact |",
			"### Command to board lag", "### Burst", "### Saturation", "trivial JSON handler"} {
			if !strings.Contains(stdout.String(), h) {
				t.Errorf("no %q in:\n%s", h, stdout.String())
			}
		}
	})
	t.Run("every question of every set answers", func(t *testing.T) {
		askEveryQuestion(t, options{crm: crm, sqlite: filepath.Join(seeded, "crm.db"), startup: 2 * time.Minute})
	})
	t.Run("seeded store unchanged", func(t *testing.T) {
		after, err := os.ReadFile(filepath.Join(seeded, "crm.db"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Error("the run changed the seeded store")
		}
	})
}

func TestErrorsFlagTheReport(t *testing.T) {
	failed := latency{Requests: 3, Errors: 1, FirstErr: "500 internal"}
	tests := []struct {
		name   string
		rep    report
		errors int
	}{
		{"clean", report{Rounds: []round{{Reads: []questionResult{{Question: "board", latency: latency{Requests: 3}}}}}}, 0},
		{"a failed read", report{Rounds: []round{{Reads: []questionResult{{Question: "board", latency: failed}}}}}, 1},
		{"a failed command", report{Rounds: []round{{Commands: failed}}}, 1},
		{"a deal command never seen", report{Lag: &lagResult{Unseen: 2}}, 2},
		{"a burst not caught up", report{Burst: &burstResult{CatchUpSeconds: -1}}, 1},
		{"a failed saturation command", report{Saturation: &saturation{CRM: failed}}, 1},
		{"parked events", report{Parked: 4}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeReport(&tt.rep, "", &out); err != nil {
				t.Fatal(err)
			}
			if tt.rep.Errors != tt.errors || tt.rep.Flagged != (tt.errors > 0) {
				t.Errorf("errors %d flagged %v, want %d", tt.rep.Errors, tt.rep.Flagged, tt.errors)
			}
			if got := strings.Contains(out.String(), "FLAGGED"); got != (tt.errors > 0) {
				t.Errorf("FLAGGED shown: %v, want %v:\n%s", got, tt.errors > 0, out.String())
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want time.Duration
		err  bool
	}{
		{"plain", "4242 (crm) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 130 0 0 20 0 9 0 100 0 0", 3800 * time.Millisecond, false},
		{"name with spaces and parentheses", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0", 30 * time.Millisecond, false},
		{"truncated", "7 (crm) S 1 7", 0, true},
		{"no name", "garbage", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.stat)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parseStatCPU = %v, %v; want %v, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"p50 of 100", sorted, 0.50, 50 * time.Millisecond},
		{"p99 of 100", sorted, 0.99, 99 * time.Millisecond},
		{"p99 of one", sorted[:1], 0.99, time.Millisecond},
		{"p50 of two", sorted[:2], 0.50, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestJourneysAreValid walks many journeys: each starts by creating its contact, opens a deal
// before moving it, and ends a deal at most once.
func TestJourneysAreValid(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		j := newJourney(rng, "t")
		var kinds []string
		for !j.done() {
			c := j.current()
			kinds = append(kinds, c.kind)
			j.answered(c, "id")
		}
		if kinds[0] != kindContact {
			t.Fatalf("journey %d starts with %q", i, kinds[0])
		}
		deal, closed := false, false
		for _, k := range kinds[1:] {
			switch k {
			case kindContact:
				t.Fatalf("journey %d creates a second contact: %v", i, kinds)
			case kindOpenDeal:
				deal = true
			case kindStage, kindWin, kindLose:
				if !deal || closed {
					t.Fatalf("journey %d moves a deal it has not open: %v", i, kinds)
				}
				closed = k != kindStage
			}
		}
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error; empty for none
	}{
		{"sqlite", []string{"--sqlite", "x.db"}, ""},
		{"postgres", []string{"--postgres", "postgres://h/db", "--schema", "s"}, ""},
		{"no store", nil, "give one store"},
		{"two stores", []string{"--sqlite", "x.db", "--postgres", "postgres://h/db", "--schema", "s"}, "give one store"},
		{"postgres without schema", []string{"--postgres", "postgres://h/db"}, "needs --schema"},
		{"bad rate", []string{"--sqlite", "x.db", "--rates", "0,fast"}, "--rates"},
		{"unknown scenario", []string{"--sqlite", "x.db", "--scenarios", "readers,chaos"}, "unknown scenario"},
		{"no readers", []string{"--sqlite", "x.db", "--readers", "0"}, "must be positive"},
		{"analytics questions", []string{"--sqlite", "x.db", "--questions", "analytics"}, ""},
		{"list questions", []string{"--sqlite", "x.db", "--questions", "lists"}, ""},
		{"value questions", []string{"--sqlite", "x.db", "--questions", "value"}, ""},
		{"value and analytics questions", []string{"--sqlite", "x.db", "--questions", "value,analytics"}, ""},
		{"keep on sqlite with work", []string{"--sqlite", "x.db", "--keep", "--work", "w"}, ""},
		{"keep on sqlite without work", []string{"--sqlite", "x.db", "--keep"}, ""},
		{"keep on postgres", []string{"--postgres", "postgres://h/db", "--schema", "s", "--keep"}, ""},
		{"unknown questions", []string{"--sqlite", "x.db", "--questions", "gossip"}, "--questions"},
		{"one unknown of several", []string{"--sqlite", "x.db", "--questions", "value,gossip"}, "--questions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOptions(tt.args, &bytes.Buffer{})
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("parseOptions(%q) = %v, want %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestCells(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"one latency", msSpan([]float64{54}), "54.0 ms"},
		{"a range in seconds", msSpan([]float64{9300, 14600, 12000}), "9.3-14.6 s"},
		{"a range past 100 ms", msSpan([]float64{120, 130.4}), "120-130 ms"},
		{"rounds that print alike", spanOf([]float64{49.98, 50.01}, ""), "50.0"},
		{"counts", spanOf([]float64{0, 3}, ""), "0-3"},
		{"p50 / p99 over rounds", pair([]latency{{Requests: 1, P50ms: 21, P99ms: 129}, {Requests: 1, P50ms: 39, P99ms: 140}}), "21.0-39.0 ms / 129-140 ms"},
		{"no requests", pair([]latency{{}}), "–"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// askEveryQuestion starts crm serve on a copy of the seeded store and asks every question of
// every set once: each must answer 200, or a load run with that set would be all errors.
func askEveryQuestion(t *testing.T, o options) {
	t.Helper()
	ctx := context.Background()
	tg, err := seededTarget(ctx, o, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := startServer(ctx, o, tg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	c := newClient(s.base, s.token, 1)
	defer c.close()
	if _, err := waitCaughtUp(ctx, s, c, 0, o.startup); err != nil {
		t.Fatal(err)
	}
	contact, err := pickContact(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for name, set := range questionSets {
		for _, q := range set(contact) {
			if st, payload, err := c.do(ctx, "GET", q.Path, nil); err != nil || st != 200 {
				t.Errorf("%s, %s (%s): %s", name, q.Name, q.Path, failure(st, payload, err))
			}
		}
	}
}
