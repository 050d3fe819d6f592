package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// report is everything a run measured; its JSON is kept for comparing runs.
type report struct {
	Backend  string    `json:"backend"`
	Source   string    `json:"source"` // the seeded store
	Started  time.Time `json:"started"`
	Settings settings  `json:"settings"`
	// Events is the log's head when the measurement began.
	Events    int64      `json:"events"`
	Startup   startup    `json:"startup"`
	Contact   string     `json:"contact,omitempty"`
	Questions []question `json:"questions,omitempty"`

	Rounds     []round      `json:"rounds,omitempty"`
	Lag        *lagResult   `json:"lag,omitempty"`
	Burst      *burstResult `json:"burst,omitempty"`
	Saturation *saturation  `json:"saturation,omitempty"`
	// Parked is the number of events the projections could not apply, at the end.
	Parked int64 `json:"parked"`
	// Errors counts failed requests, deal commands never seen on the board, parked events
	// and a burst not caught up; a report with any is flagged.
	Errors  int  `json:"errors"`
	Flagged bool `json:"flagged"`
}

type settings struct {
	Duration   string `json:"duration"`
	Readers    int    `json:"readers"`
	Rates      []int  `json:"rates"`
	Rounds     int    `json:"rounds"`
	Lanes      int    `json:"lanes"`
	Saturation int    `json:"saturation_clients"`
	LagRate    int    `json:"lag_rate"`
	Burst      string `json:"burst"`
}

func newReport(o options) *report {
	r := &report{Backend: "sqlite", Source: o.sqlite, Started: time.Now().UTC().Truncate(time.Second),
		Settings: settings{Duration: o.duration.String(), Readers: o.readers, Rates: o.rates, Rounds: o.rounds,
			Lanes: o.lanes, Saturation: o.saturation, LagRate: o.lagRate, Burst: o.burst.String()}}
	if o.postgres != "" {
		r.Backend, r.Source = "postgres", "schema "+o.schema
	}
	return r
}

// round is one reader round beside one write rate.
type round struct {
	Round    int              `json:"round"`
	Rate     int              `json:"rate"` // commands/s asked for
	Seconds  float64          `json:"seconds"`
	Reads    []questionResult `json:"reads"`
	Commands latency          `json:"commands"`
	CPU      cpuFigures       `json:"server_cpu"`
}

type questionResult struct {
	Question string `json:"question"`
	latency
}

// cpuFigures is the server process's processor time over a scenario.
type cpuFigures struct {
	Seconds      float64 `json:"seconds"`
	Percent      float64 `json:"percent_of_one_cpu"`
	MsPerRequest float64 `json:"ms_per_request,omitempty"`
	MsPerCommand float64 `json:"ms_per_command,omitempty"`
}

type lagResult struct {
	Rate     int        `json:"rate"` // commands/s asked for
	Commands latency    `json:"commands"`
	CPU      cpuFigures `json:"server_cpu"`
	// Seen is the command -> board lag of the deal commands; Unseen those never seen.
	Seen   latency `json:"seen"`
	Unseen int     `json:"unseen"`
	Board  latency `json:"board_requests"`
}

type burstResult struct {
	Clients  int        `json:"clients"`
	Seconds  float64    `json:"seconds"`
	Commands latency    `json:"commands"`
	CPU      cpuFigures `json:"server_cpu"`
	// CatchUpSeconds is the time from the burst's end until every projection had caught up;
	// -1 when they had not within --catch-up.
	CatchUpSeconds float64       `json:"catch_up_seconds"`
	PeakLagEvents  int64         `json:"peak_lag_events"`
	PeakLagSeconds float64       `json:"peak_lag_seconds"`
	Series         []burstSample `json:"series"`
}

type saturation struct {
	Clients int        `json:"clients"`
	CRM     latency    `json:"crm"`
	CPU     cpuFigures `json:"server_cpu"`
	Trivial latency    `json:"trivial"`
	Ratio   float64    `json:"ratio"` // crm commands/s over the trivial handler's
}

// errorCount is every failure the report holds.
func (r *report) errorCount() int {
	n := int(r.Parked)
	for _, rd := range r.Rounds {
		n += rd.Commands.Errors
		for _, q := range rd.Reads {
			n += q.Errors
		}
	}
	if r.Lag != nil {
		n += r.Lag.Commands.Errors + r.Lag.Unseen + r.Lag.Board.Errors
	}
	if r.Burst != nil {
		n += r.Burst.Commands.Errors
		if r.Burst.CatchUpSeconds < 0 {
			n++
		}
	}
	if r.Saturation != nil {
		n += r.Saturation.CRM.Errors + r.Saturation.Trivial.Errors
	}
	return n
}

// writeReport prints the Markdown report, and writes the JSON when path is set.
func writeReport(r *report, path string, w io.Writer) error {
	r.Errors = r.errorCount()
	r.Flagged = r.Errors > 0
	writeMarkdown(w, r)
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

func writeMarkdown(w io.Writer, r *report) {
	fmt.Fprintf(w, "## crm serve under load: %s, %s\n\n", r.Backend, r.Started.Format(time.RFC3339))
	if r.Flagged {
		fmt.Fprintf(w, "**FLAGGED: %d errors** (failed requests, deal commands never seen, parked events or a burst not caught up): the figures are not to be trusted.\n\n", r.Errors)
	}
	if r.Events > 0 || r.Rounds != nil || r.Lag != nil || r.Burst != nil {
		fmt.Fprintf(w, "Seeded store: %s, %d events. From its start, the server's read models had caught up after %.1f s (notices of a stalled feed meanwhile: %d) and it was quiet after %.0f s. Parked events at the end: %d.\n\n",
			r.Source, r.Events, r.Startup.CaughtUpSeconds, r.Startup.StalledNotices, r.Startup.QuietSeconds, r.Parked)
	}
	writeRounds(w, r)
	writeLag(w, r.Lag)
	writeBurst(w, r.Burst)
	writeSaturation(w, r.Backend, r.Saturation)
}

// writeRounds is the table of read latency per question and write rate: p50 / p99, each the
// range over the rounds.
func writeRounds(w io.Writer, r *report) {
	if len(r.Rounds) == 0 {
		return
	}
	s := r.Settings
	fmt.Fprintf(w, "### Reads beside writes\n\n%d readers, each pinned to one question (contact %s), %s per round, %d round(s) with the rates interleaved; writers on %d clients. Cells: p50 / p99, the range over the rounds.\n\n",
		s.Readers, r.Contact, s.Duration, s.Rounds, s.Lanes)
	fmt.Fprint(w, "| question |")
	for _, rate := range s.Rates {
		fmt.Fprintf(w, " %d commands/s |", rate)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---|", len(s.Rates)))
	for i, q := range r.Questions {
		row := []string{q.Name}
		for _, rate := range s.Rates {
			rs := roundsAt(r.Rounds, rate)
			row = append(row, pair(pick(rs, func(x round) latency { return x.Reads[i].latency })))
		}
		tableRow(w, row)
	}
	type figure struct {
		name string
		cell func([]round) string
	}
	for _, f := range []figure{
		{"reads/s", func(rs []round) string {
			return spanOf(pick(rs, func(x round) float64 { return sumReads(x).PerSec }), "")
		}},
		{"commands/s done", func(rs []round) string {
			return spanOf(pick(rs, func(x round) float64 { return x.Commands.PerSec }), "")
		}},
		{"commands p50 / p99", func(rs []round) string { return pair(pick(rs, func(x round) latency { return x.Commands })) }},
		{"server CPU, % of one", func(rs []round) string {
			return spanOf(pick(rs, func(x round) float64 { return x.CPU.Percent }), "%")
		}},
		{"server CPU per request", func(rs []round) string {
			return spanOf(pick(rs, func(x round) float64 { return x.CPU.MsPerRequest }), " ms")
		}},
		{"errors", func(rs []round) string {
			return spanOf(pick(rs, func(x round) float64 { return float64(sumReads(x).Errors + x.Commands.Errors) }), "")
		}},
	} {
		row := []string{f.name}
		for _, rate := range s.Rates {
			row = append(row, f.cell(roundsAt(r.Rounds, rate)))
		}
		tableRow(w, row)
	}
	fmt.Fprintln(w)
	writeFirstErrors(w, r.Rounds)
}

func writeFirstErrors(w io.Writer, rounds []round) {
	for _, rd := range rounds {
		for _, q := range rd.Reads {
			if q.FirstErr != "" {
				fmt.Fprintf(w, "- round %d, %d commands/s, %s: %d errors, first: `%s`\n", rd.Round, rd.Rate, q.Question, q.Errors, q.FirstErr)
			}
		}
		if rd.Commands.FirstErr != "" {
			fmt.Fprintf(w, "- round %d, %d commands/s, commands: %d errors, first: `%s`\n", rd.Round, rd.Rate, rd.Commands.Errors, rd.Commands.FirstErr)
		}
	}
}

func writeLag(w io.Writer, l *lagResult) {
	if l == nil {
		return
	}
	fmt.Fprintf(w, "### Command to board lag at %d commands/s\n\n", l.Rate)
	fmt.Fprint(w, "From a deal command's answer until GET /v1/pipeline/board?min_position=P answers not stale (to within one board answer).\n\n")
	tableRow(w, []string{"commands/s done", "commands p50 / p99", "deal commands seen", "never seen", "lag p50", "lag p99", "lag max", "board answers p50 / p99", "server CPU per command", "errors"})
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	tableRow(w, []string{num(l.Commands.PerSec), pair([]latency{l.Commands}), fmt.Sprint(l.Seen.Requests), fmt.Sprint(l.Unseen),
		msCell(l.Seen.P50ms), msCell(l.Seen.P99ms), msCell(l.Seen.MaxMs), pair([]latency{l.Board}), msCell(l.CPU.MsPerCommand),
		fmt.Sprint(l.Commands.Errors + l.Board.Errors)})
	fmt.Fprintln(w)
	for _, e := range []string{l.Commands.FirstErr, l.Board.FirstErr} {
		if e != "" {
			fmt.Fprintf(w, "- first error: `%s`\n", e)
		}
	}
}

func writeBurst(w io.Writer, b *burstResult) {
	if b == nil {
		return
	}
	fmt.Fprintf(w, "### Burst: %d clients at full speed for %.0f s\n\n", b.Clients, b.Seconds)
	caught := fmt.Sprintf("%.1f s after the burst", b.CatchUpSeconds)
	if b.CatchUpSeconds < 0 {
		caught = "**not caught up**"
	}
	fmt.Fprintf(w, "%d commands (%s/s, p50 / p99 %s, %d errors, server CPU %s per command); peak read-model lag %d events / %.1f s; caught up %s.\n\n",
		b.Commands.Requests, num(b.Commands.PerSec), pair([]latency{b.Commands}), b.Commands.Errors, msCell(b.CPU.MsPerCommand),
		b.PeakLagEvents, b.PeakLagSeconds, caught)
	fmt.Fprint(w, "| t (s) | lag events | lag seconds |\n|---|---|---|\n")
	if len(b.Series) == 0 {
		return
	}
	// At most about 30 rows, one a second or fewer; the JSON has every sample.
	step := max(1, math.Ceil(b.Series[len(b.Series)-1].T/30))
	next := 0.0
	for i, s := range b.Series {
		if s.T >= next || i == len(b.Series)-1 {
			tableRow(w, []string{fmt.Sprintf("%.1f", s.T), fmt.Sprint(s.Events), fmt.Sprintf("%.1f", s.Seconds)})
			next = (math.Floor(s.T/step) + 1) * step
		}
	}
	fmt.Fprintln(w)
}

func writeSaturation(w io.Writer, backend string, s *saturation) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "### Saturation: %d clients at full speed on an empty store\n\n", s.Clients)
	fmt.Fprint(w, "| server | commands/s | p50 / p99 | errors | server CPU per command |\n|---|---|---|---|---|\n")
	tableRow(w, []string{"crm serve (" + backend + ")", num(s.CRM.PerSec), pair([]latency{s.CRM}), fmt.Sprint(s.CRM.Errors), msCell(s.CPU.MsPerCommand)})
	tableRow(w, []string{"trivial JSON handler (in crmload)", num(s.Trivial.PerSec), pair([]latency{s.Trivial}), fmt.Sprint(s.Trivial.Errors), "–"})
	fmt.Fprintf(w, "\ncrm serve answers %.1f%% of the trivial handler's commands/s with the same clients.\n\n", 100*s.Ratio)
	for _, e := range []string{s.CRM.FirstErr, s.Trivial.FirstErr} {
		if e != "" {
			fmt.Fprintf(w, "- first error: `%s`\n", e)
		}
	}
}

func roundsAt(rounds []round, rate int) []round {
	var out []round
	for _, r := range rounds {
		if r.Rate == rate {
			out = append(out, r)
		}
	}
	return out
}

func pick[T any](rs []round, f func(round) T) []T {
	out := make([]T, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func sumReads(r round) latency {
	var l latency
	for _, q := range r.Reads {
		l.Requests += q.Requests
		l.Errors += q.Errors
		l.PerSec += q.PerSec
	}
	return l
}

// pair is "p50 / p99" over several measurements, each a range.
func pair(ls []latency) string {
	if len(ls) == 0 {
		return "–"
	}
	var p50, p99 []float64
	for _, l := range ls {
		if l.Requests > 0 {
			p50, p99 = append(p50, l.P50ms), append(p99, l.P99ms)
		}
	}
	if len(p50) == 0 {
		return "–"
	}
	return msSpan(p50) + " / " + msSpan(p99)
}

// msSpan is "lo-hi unit" of milliseconds, in seconds from a second on.
func msSpan(v []float64) string {
	lo, hi := slices.Min(v), slices.Max(v)
	if hi >= 1000 {
		return span(fixed(lo/1000), fixed(hi/1000)) + " s"
	}
	return span(fixed(lo), fixed(hi)) + " ms"
}

func msCell(v float64) string { return msSpan([]float64{v}) }

// spanOf is "lo-hi" of plain figures.
func spanOf(v []float64, unit string) string {
	if len(v) == 0 {
		return "–"
	}
	return span(short(slices.Min(v)), short(slices.Max(v))) + unit
}

// span is "lo-hi", or one figure when both print the same.
func span(lo, hi string) string {
	if lo == hi {
		return lo
	}
	return lo + "-" + hi
}

// fixed prints a latency with one decimal under 100.
func fixed(v float64) string {
	if math.Abs(v) < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// short prints a count as a whole number, and another figure with one decimal under 100.
func short(v float64) string {
	if v == math.Trunc(v) || math.Abs(v) >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func num(v float64) string { return short(v) }

func tableRow(w io.Writer, cells []string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}
