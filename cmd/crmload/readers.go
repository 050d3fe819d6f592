package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// question is one read the readers ask, always at the same URL.
type question struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// questions are the reads of the report, for one contact of the store.
func questions(contact string) []question {
	return []question{
		{"journey map", "/v1/analytics/journey-map"},
		{"churn points", "/v1/analytics/churn-points"},
		{"board", "/v1/pipeline/board"},
		{"one contact's journey", "/v1/journeys/" + contact},
		{"one contact", "/v1/contacts/" + contact},
	}
}

// questionSets are the sets of questions --questions picks, by name.
var questionSets = map[string]func(contact string) []question{
	"core":      questions,
	"analytics": func(string) []question { return analyticsQuestions() },
	"lists":     listQuestions,
	"value":     valueQuestions,
}

// questionsOf are the questions of the sets named, comma-separated, one after the other
// (so that one start of the server measures several sets); ok is false when a name is not
// a set.
func questionsOf(names, contact string) (qs []question, ok bool) {
	for _, name := range strings.Split(names, ",") {
		set, found := questionSets[name]
		if !found {
			return nil, false
		}
		qs = append(qs, set(contact)...)
	}
	return qs, true
}

// listQuestions are the reads of a sales app's daily screens: the directory searched with
// two and three characters (the seeded names are written in Latin letters), filtered lists of
// contacts, deals and accounts, one contact's timeline and the overdue tasks.
func listQuestions(contact string) []question {
	return []question{
		{"contacts, q of 2 characters", "/v1/contacts?q=ka&limit=50"},
		{"contacts, q of 3 characters", "/v1/contacts?q=tan&limit=50"},
		{"contacts of one owner in a phase", "/v1/contacts?owner=rep-mori&phase=approach&sort=last_activity&limit=50"},
		{"open deals by expected close", "/v1/deals?status=open&sort=expected_close&limit=50"},
		{"deals, q of 3 characters", "/v1/deals?q=pro&limit=50"},
		{"accounts, q of 2 characters", "/v1/accounts?q=ki&limit=50"},
		{"one contact's timeline", "/v1/contacts/" + contact + "/timeline?limit=50"},
		{"overdue tasks", "/v1/tasks?status=overdue&limit=50"},
	}
}

// valueQuestions are the reads of customer value and lead scoring: the customers list, one
// contact's value and score, RFM, repeat rate, seasonality, upsell candidates, dormant
// customers and the hot list.
func valueQuestions(contact string) []question {
	return []question{
		{"customers by revenue", "/v1/analytics/customers?limit=50"},
		{"one contact's value", "/v1/contacts/" + contact + "/value"},
		{"RFM", "/v1/analytics/rfm"},
		{"repeat rate", "/v1/analytics/repeat-rate"},
		{"seasonality", "/v1/analytics/seasonality"},
		{"upsell candidates", "/v1/analytics/upsell-candidates?limit=50"},
		{"dormant for 90 days", "/v1/analytics/dormant?days=90&limit=50"},
		{"hot list", "/v1/leads?limit=50"},
		{"one contact's score", "/v1/contacts/" + contact + "/score"},
	}
}

// analyticsQuestions are the reads of the sales analytics over the seeded history (2024 to
// mid-2026): now (the kept counts), and one as of a past time (the parts).
func analyticsQuestions() []question {
	return []question{
		{"KPIs, 12 months", "/v1/analytics/kpis?period=month&from=2025-01-01&to=2025-12-31"},
		{"KPIs, 13 weeks of one owner", "/v1/analytics/kpis?period=week&from=2025-04-01&to=2025-06-30&owner=rep-mori"},
		{"KPIs, 8 quarters of one channel", "/v1/analytics/kpis?period=quarter&from=2024-01-01&to=2025-12-31&channel=web_form"},
		{"forecast", "/v1/analytics/forecast?from=2024-01"},
		{"NPS, 12 months", "/v1/analytics/nps?period=month&from=2025-01-01&to=2025-12-31"},
		{"explain a month's wins", "/v1/analytics/kpis?period=month&from=2025-03-01&to=2025-03-31&explain=2025-03-01.deals.won&limit=100"},
		{"KPIs, 3 months as of a past time", "/v1/analytics/kpis?period=month&from=2025-01-01&to=2025-03-31&as_of=2025-04-01T00:00:00Z"},
	}
}

// pickContact finds a contact with an open deal on the board: one whose journey and state
// are worth reading. A store without one gets a contact and a deal of its own.
func pickContact(ctx context.Context, c *client) (string, error) {
	st, payload, err := c.do(ctx, "GET", "/v1/pipeline/board?limit=1", nil)
	if err != nil || st != 200 {
		return "", fmt.Errorf("read the board: %s", failure(st, payload, err))
	}
	var board struct {
		Data struct {
			Stages []struct {
				Cards []struct {
					ContactID string `json:"contact_id"`
				} `json:"cards"`
			} `json:"stages"`
		} `json:"data"`
	}
	if err := json.Unmarshal(payload, &board); err != nil {
		return "", fmt.Errorf("read the board: %w", err)
	}
	for _, s := range board.Data.Stages {
		if len(s.Cards) > 0 && s.Cards[0].ContactID != "" {
			return s.Cards[0].ContactID, nil
		}
	}
	return createContact(ctx, c)
}

// createContact writes a contact with an open deal, for a store whose board is empty.
func createContact(ctx context.Context, c *client) (string, error) {
	j := newJourney(rand.New(rand.NewPCG(1, 1)), "load-reader")
	j.plan = []string{kindContact, kindOpenDeal}
	var rec recorder
	for !j.done() {
		cmd := j.current()
		st, payload, err := c.do(ctx, "POST", cmd.path, cmd.body)
		if !rec.record(0, st, payload, err) {
			return "", fmt.Errorf("create a contact to read: %s", rec.firstErr)
		}
		var res struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(payload, &res); err != nil {
			return "", fmt.Errorf("create a contact to read: %w", err)
		}
		j.answered(cmd, res.ID)
	}
	return j.contact, nil
}

// readers asks the questions, each reader pinned to one of them (reader i to question i
// modulo their number), one request after the other, until until; requests in flight then
// finish and count.
func readers(ctx context.Context, c *client, n int, qs []question, until time.Time, rec *recorders) {
	var wg sync.WaitGroup
	for i := range n {
		q := qs[i%len(qs)]
		r := rec.get(q.Name)
		wg.Go(func() {
			for time.Now().Before(until) && ctx.Err() == nil {
				start := time.Now()
				st, payload, err := c.do(ctx, "GET", q.Path, nil)
				if errors.Is(err, context.Canceled) && ctx.Err() != nil {
					return // the run was interrupted: not a failure of the server
				}
				r.record(time.Since(start), st, payload, err)
			}
		})
	}
	wg.Wait()
}
