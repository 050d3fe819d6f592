package deal_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/domaintest"
)

const (
	dealID    = "d-1"
	contactID = "c-1"
	// today is the date the decisions under test occur on.
	today domain.Date = "2025-04-01"
)

type dealCase = domaintest.Case[deal.Deal]

func ptr[T any](v T) *T { return &v }

func jpy(amount int64) domain.Money { return domain.Money{Amount: amount, Currency: "JPY"} }

func opened() *deal.Opened {
	return &deal.Opened{DealID: dealID, ContactID: contactID, Title: "CRM rollout", Amount: jpy(3_000_000),
		Owner: "alice", ExpectedClose: "2025-06-30", Stage: deal.StageQualification}
}

// inStage is the history of a deal opened and moved to the open stage s.
func inStage(s deal.Stage) []domain.Event {
	events := []domain.Event{opened()}
	if s != deal.StageQualification {
		events = append(events, &deal.StageChanged{DealID: dealID, From: deal.StageQualification, To: s})
	}
	return events
}

// wonFrom is the history of a deal won from the open stage s.
func wonFrom(s deal.Stage) []domain.Event {
	return append(inStage(s), &deal.Won{DealID: dealID, ContactID: contactID, FromStage: s, Amount: jpy(2_800_000), ClosedAt: "2025-03-31"})
}

// lostFrom is the history of a deal lost from the open stage s.
func lostFrom(s deal.Stage) []domain.Event {
	return append(inStage(s), &deal.Lost{DealID: dealID, ContactID: contactID, FromStage: s, Reason: deal.ReasonPrice, Amount: jpy(3_000_000)})
}

func validOpen() deal.Open {
	return deal.Open{DealID: dealID, ContactID: contactID, Title: "CRM rollout", Amount: 3_000_000, Currency: "JPY", Owner: "alice"}
}

func open(change func(*deal.Open)) func(*deal.Deal) ([]domain.Event, error) {
	return func(d *deal.Deal) ([]domain.Event, error) {
		cmd := validOpen()
		change(&cmd)
		return d.Open(cmd)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []dealCase{
		{
			Name: "a deal opens in qualification, trimmed",
			When: open(func(o *deal.Open) { o.Title, o.Owner, o.ExpectedClose = " CRM rollout ", " alice ", "2025-06-30" }),
			Then: []domain.Event{opened()},
		},
		{
			Name: "a deal without expected close date opens",
			When: open(func(*deal.Open) {}),
			Then: []domain.Event{&deal.Opened{DealID: dealID, ContactID: contactID, Title: "CRM rollout", Amount: jpy(3_000_000), Owner: "alice", Stage: deal.StageQualification}},
		},
		{
			Name: "a deal of zero amount opens",
			When: open(func(o *deal.Open) { o.Amount, o.Currency = 0, "EUR" }),
			Then: []domain.Event{&deal.Opened{DealID: dealID, ContactID: contactID, Title: "CRM rollout", Amount: domain.Money{Currency: "EUR"}, Owner: "alice", Stage: deal.StageQualification}},
		},
		{
			Name: "a title of 500 Japanese characters is accepted",
			When: open(func(o *deal.Open) { o.Title = strings.Repeat("案", 500) }),
			Then: []domain.Event{&deal.Opened{DealID: dealID, ContactID: contactID, Title: strings.Repeat("案", 500), Amount: jpy(3_000_000), Owner: "alice", Stage: deal.StageQualification}},
		},
		{Name: "open twice is a conflict", Given: inStage(deal.StageQualification), When: open(func(*deal.Open) {}), WantCode: domain.CodeConflict, WantMessage: "deal d-1 exists already"},
		{Name: "empty id is invalid", When: open(func(o *deal.Open) { o.DealID = "" }), WantCode: domain.CodeInvalid, WantMessage: "id: is required"},
		{Name: "empty contact id is invalid", When: open(func(o *deal.Open) { o.ContactID = "" }), WantCode: domain.CodeInvalid, WantMessage: "contact_id: is required"},
		{Name: "blank title is invalid", When: open(func(o *deal.Open) { o.Title = "  " }), WantCode: domain.CodeInvalid, WantMessage: "title: is required"},
		{Name: "title of 501 characters is invalid", When: open(func(o *deal.Open) { o.Title = strings.Repeat("t", 501) }), WantCode: domain.CodeInvalid, WantMessage: "title: is longer than 500 characters"},
		{Name: "negative amount is invalid", When: open(func(o *deal.Open) { o.Amount = -5 }), WantCode: domain.CodeInvalid, WantMessage: "amount: amount -5 is negative"},
		{Name: "currency not in ISO 4217 is invalid", When: open(func(o *deal.Open) { o.Currency = "YEN" }), WantCode: domain.CodeInvalid, WantMessage: `amount: "YEN" is not an ISO 4217 currency code`},
		{Name: "empty currency is invalid", When: open(func(o *deal.Open) { o.Currency = "" }), WantCode: domain.CodeInvalid, WantMessage: "is not an ISO 4217 currency code"},
		{Name: "blank owner is invalid", When: open(func(o *deal.Open) { o.Owner = " " }), WantCode: domain.CodeInvalid, WantMessage: "owner: is required"},
		{Name: "bad expected close date is invalid", When: open(func(o *deal.Open) { o.ExpectedClose = "2025-06-31" }), WantCode: domain.CodeInvalid, WantMessage: `expected_close: "2025-06-31" is not a date of the form YYYY-MM-DD`},
	})
}

func changeStage(stage string) func(*deal.Deal) ([]domain.Event, error) {
	return func(d *deal.Deal) ([]domain.Event, error) { return d.ChangeStage(stage) }
}

func stageChanged(from, to deal.Stage) []domain.Event {
	return []domain.Event{&deal.StageChanged{DealID: dealID, From: from, To: to}}
}

func TestChangeStage(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []dealCase{
		{Name: "stage change of a missing deal is not found", When: changeStage("proposal"), WantCode: domain.CodeNotFound, WantMessage: "deal not found"},
		{Name: "forward qualification -> needs_analysis", Given: inStage(deal.StageQualification), When: changeStage("needs_analysis"), Then: stageChanged(deal.StageQualification, deal.StageNeedsAnalysis)},
		{Name: "forward needs_analysis -> proposal", Given: inStage(deal.StageNeedsAnalysis), When: changeStage("proposal"), Then: stageChanged(deal.StageNeedsAnalysis, deal.StageProposal)},
		{Name: "forward proposal -> negotiation", Given: inStage(deal.StageProposal), When: changeStage("negotiation"), Then: stageChanged(deal.StageProposal, deal.StageNegotiation)},
		{Name: "skip forward qualification -> negotiation", Given: inStage(deal.StageQualification), When: changeStage("negotiation"), Then: stageChanged(deal.StageQualification, deal.StageNegotiation)},
		{Name: "backward negotiation -> needs_analysis", Given: inStage(deal.StageNegotiation), When: changeStage("needs_analysis"), Then: stageChanged(deal.StageNegotiation, deal.StageNeedsAnalysis)},
		{Name: "backward proposal -> qualification", Given: inStage(deal.StageProposal), When: changeStage("qualification"), Then: stageChanged(deal.StageProposal, deal.StageQualification)},
		{Name: "a reopened deal moves from the stage it was reopened in", Given: append(wonFrom(deal.StageProposal), &deal.Reopened{DealID: dealID, From: deal.StageWon, To: deal.StageProposal}), When: changeStage("negotiation"), Then: stageChanged(deal.StageProposal, deal.StageNegotiation)},
		{Name: "same stage is refused", Given: inStage(deal.StageProposal), When: changeStage("proposal"), WantCode: domain.CodeRefused, WantMessage: "deal is already in stage proposal"},
		{Name: "change to won is invalid", Given: inStage(deal.StageNegotiation), When: changeStage("won"), WantCode: domain.CodeInvalid, WantMessage: "stage: a deal is closed with win or lose, not with a stage change"},
		{Name: "change to lost is invalid", Given: inStage(deal.StageNegotiation), When: changeStage("lost"), WantCode: domain.CodeInvalid, WantMessage: "stage: a deal is closed with win or lose"},
		{Name: "unknown stage is invalid", Given: inStage(deal.StageProposal), When: changeStage("closing"), WantCode: domain.CodeInvalid, WantMessage: `stage: "closing" is not a stage (qualification, needs_analysis, proposal, negotiation)`},
		{Name: "empty stage is invalid", Given: inStage(deal.StageProposal), When: changeStage(""), WantCode: domain.CodeInvalid, WantMessage: `stage: "" is not a stage`},
		{Name: "stage change of a won deal is refused", Given: wonFrom(deal.StageNegotiation), When: changeStage("proposal"), WantCode: domain.CodeRefused, WantMessage: "deal is won: reopen it before changing its stage"},
		{Name: "stage change of a lost deal is refused", Given: lostFrom(deal.StageProposal), When: changeStage("negotiation"), WantCode: domain.CodeRefused, WantMessage: "deal is lost: reopen it before changing its stage"},
	})
}

func win(amount *int64, closedAt string) func(*deal.Deal) ([]domain.Event, error) {
	return func(d *deal.Deal) ([]domain.Event, error) { return d.Win(amount, closedAt, today) }
}

func won(from deal.Stage, amount domain.Money, closedAt domain.Date) []domain.Event {
	return []domain.Event{&deal.Won{DealID: dealID, ContactID: contactID, FromStage: from, Amount: amount, ClosedAt: closedAt}}
}

func TestWin(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []dealCase{
		{Name: "win of a missing deal is not found", When: win(nil, ""), WantCode: domain.CodeNotFound, WantMessage: "deal not found"},
		{Name: "win with final amount and contract date", Given: inStage(deal.StageNegotiation), When: win(ptr(int64(2_750_000)), "2025-03-28"), Then: won(deal.StageNegotiation, jpy(2_750_000), "2025-03-28")},
		{Name: "win without amount keeps the deal amount", Given: inStage(deal.StageProposal), When: win(nil, "2025-03-28"), Then: won(deal.StageProposal, jpy(3_000_000), "2025-03-28")},
		{Name: "win without contract date closes on the day it occurs", Given: inStage(deal.StageNegotiation), When: win(ptr(int64(2_900_000)), ""), Then: won(deal.StageNegotiation, jpy(2_900_000), today)},
		{Name: "win without amount nor date", Given: inStage(deal.StageQualification), When: win(nil, ""), Then: won(deal.StageQualification, jpy(3_000_000), today)},
		{Name: "win for a final amount of zero", Given: inStage(deal.StageNegotiation), When: win(ptr(int64(0)), ""), Then: won(deal.StageNegotiation, jpy(0), today)},
		{Name: "win keeps the deal currency", Given: []domain.Event{&deal.Opened{DealID: dealID, ContactID: contactID, Title: "t", Amount: domain.Money{Amount: 10_000, Currency: "USD"}, Owner: "bob", Stage: deal.StageQualification}}, When: win(ptr(int64(9_000)), ""), Then: won(deal.StageQualification, domain.Money{Amount: 9_000, Currency: "USD"}, today)},
		{Name: "negative final amount is invalid", Given: inStage(deal.StageNegotiation), When: win(ptr(int64(-1)), ""), WantCode: domain.CodeInvalid, WantMessage: "amount: amount -1 is negative"},
		{Name: "bad contract date is invalid", Given: inStage(deal.StageNegotiation), When: win(nil, "2025-3-28"), WantCode: domain.CodeInvalid, WantMessage: `closed_at: "2025-3-28" is not a date of the form YYYY-MM-DD`},
		{Name: "win twice is refused", Given: wonFrom(deal.StageNegotiation), When: win(nil, ""), WantCode: domain.CodeRefused, WantMessage: "deal is already won: reopen it first"},
		{Name: "win of a lost deal is refused", Given: lostFrom(deal.StageProposal), When: win(nil, ""), WantCode: domain.CodeRefused, WantMessage: "deal is already lost: reopen it first"},
		{Name: "win of a reopened lost deal", Given: append(lostFrom(deal.StageProposal), &deal.Reopened{DealID: dealID, From: deal.StageLost, To: deal.StageProposal}), When: win(nil, ""), Then: won(deal.StageProposal, jpy(3_000_000), today)},
	})
}

func lose(reason, note string) func(*deal.Deal) ([]domain.Event, error) {
	return func(d *deal.Deal) ([]domain.Event, error) { return d.Lose(reason, note) }
}

func TestLose(t *testing.T) {
	t.Parallel()
	cases := []dealCase{
		{Name: "lose of a missing deal is not found", When: lose("price", ""), WantCode: domain.CodeNotFound, WantMessage: "deal not found"},
		{
			Name:  "lose records the stage, the deal amount and the trimmed note",
			Given: inStage(deal.StageNegotiation),
			When:  lose("competitor", "  went with a cheaper vendor \n"),
			Then:  []domain.Event{&deal.Lost{DealID: dealID, ContactID: contactID, FromStage: deal.StageNegotiation, Reason: deal.ReasonCompetitor, Note: "went with a cheaper vendor", Amount: jpy(3_000_000)}},
		},
		{
			Name:  "a note of 10000 Japanese characters is accepted",
			Given: inStage(deal.StageProposal),
			When:  lose("other", strings.Repeat("理", 10000)),
			Then:  []domain.Event{&deal.Lost{DealID: dealID, ContactID: contactID, FromStage: deal.StageProposal, Reason: deal.ReasonOther, Note: strings.Repeat("理", 10000), Amount: jpy(3_000_000)}},
		},
		{Name: "a note of 10001 characters is invalid", Given: inStage(deal.StageProposal), When: lose("other", strings.Repeat("n", 10001)), WantCode: domain.CodeInvalid, WantMessage: "note: is longer than 10000 characters"},
		{Name: "unknown reason is invalid", Given: inStage(deal.StageProposal), When: lose("weather", ""), WantCode: domain.CodeInvalid, WantMessage: `reason: "weather" is not a lost reason (price, competitor, timing, no_budget, no_decision, product_fit, other)`},
		{Name: "empty reason is invalid", Given: inStage(deal.StageProposal), When: lose("", "no idea"), WantCode: domain.CodeInvalid, WantMessage: `reason: "" is not a lost reason`},
		{Name: "lose a won deal is refused", Given: wonFrom(deal.StageNegotiation), When: lose("price", ""), WantCode: domain.CodeRefused, WantMessage: "deal is already won: reopen it first"},
		{Name: "lose twice is refused", Given: lostFrom(deal.StageProposal), When: lose("timing", ""), WantCode: domain.CodeRefused, WantMessage: "deal is already lost: reopen it first"},
	}
	for _, r := range []deal.LostReason{"price", "competitor", "timing", "no_budget", "no_decision", "product_fit", "other"} {
		cases = append(cases, dealCase{
			Name:  "lose for reason " + string(r),
			Given: inStage(deal.StageProposal),
			When:  lose(string(r), ""),
			Then:  []domain.Event{&deal.Lost{DealID: dealID, ContactID: contactID, FromStage: deal.StageProposal, Reason: r, Amount: jpy(3_000_000)}},
		})
	}
	domaintest.Run(t, cases)
}

func reopen(d *deal.Deal) ([]domain.Event, error) { return d.Reopen() }

func TestReopen(t *testing.T) {
	t.Parallel()
	domaintest.Run(t, []dealCase{
		{Name: "reopen of a missing deal is not found", When: reopen, WantCode: domain.CodeNotFound, WantMessage: "deal not found"},
		{Name: "a won deal returns to the stage it was won from", Given: wonFrom(deal.StageNegotiation), When: reopen, Then: []domain.Event{&deal.Reopened{DealID: dealID, From: deal.StageWon, To: deal.StageNegotiation}}},
		{Name: "a lost deal returns to the stage it was lost from", Given: lostFrom(deal.StageNeedsAnalysis), When: reopen, Then: []domain.Event{&deal.Reopened{DealID: dealID, From: deal.StageLost, To: deal.StageNeedsAnalysis}}},
		{
			Name:  "a deal closed twice returns to the stage of the last close",
			Given: append(wonFrom(deal.StageNegotiation), &deal.Reopened{DealID: dealID, From: deal.StageWon, To: deal.StageNegotiation}, &deal.StageChanged{DealID: dealID, From: deal.StageNegotiation, To: deal.StageProposal}, &deal.Lost{DealID: dealID, ContactID: contactID, FromStage: deal.StageProposal, Reason: deal.ReasonTiming, Amount: jpy(2_800_000)}),
			When:  reopen,
			Then:  []domain.Event{&deal.Reopened{DealID: dealID, From: deal.StageLost, To: deal.StageProposal}},
		},
		{
			Name:  "a deal closed without a recorded stage returns to qualification",
			Given: append(inStage(deal.StageProposal), &deal.Won{DealID: dealID, ContactID: contactID, Amount: jpy(1), ClosedAt: "2025-03-31"}),
			When:  reopen,
			Then:  []domain.Event{&deal.Reopened{DealID: dealID, From: deal.StageWon, To: deal.StageQualification}},
		},
		{Name: "reopen of an open deal is refused", Given: inStage(deal.StageProposal), When: reopen, WantCode: domain.CodeRefused, WantMessage: "deal is open (proposal): only a won or lost deal can be reopened"},
		{Name: "reopen of a reopened deal is refused", Given: append(lostFrom(deal.StageProposal), &deal.Reopened{DealID: dealID, From: deal.StageLost, To: deal.StageProposal}), When: reopen, WantCode: domain.CodeRefused, WantMessage: "deal is open (proposal)"},
	})
}

// at is the business time of the nth day of March 2025, 09:00 UTC.
func at(day int) time.Time { return time.Date(2025, 3, day, 9, 0, 0, 0, time.UTC) }

type timedEvent struct {
	at    time.Time
	event domain.Event
}

func TestApply(t *testing.T) {
	t.Parallel()
	base := deal.Deal{
		ID: dealID, ContactID: contactID, Title: "CRM rollout", Amount: jpy(3_000_000), Owner: "alice",
		ExpectedClose: "2025-06-30", OpenedAt: at(1),
	}
	with := func(change func(*deal.Deal)) deal.Deal {
		d := base
		change(&d)
		return d
	}
	tests := []struct {
		name   string
		events []timedEvent
		want   deal.Deal
	}{
		{
			name:   "opened deal is in qualification at 10%",
			events: []timedEvent{{at(1), opened()}},
			want: with(func(d *deal.Deal) {
				d.Version, d.Stage, d.StageSince, d.Probability = 1, deal.StageQualification, at(1), 10
			}),
		},
		{
			name: "stage changes move stage, stage_since and probability",
			events: []timedEvent{
				{at(1), opened()},
				{at(3), &deal.StageChanged{DealID: dealID, From: deal.StageQualification, To: deal.StageNeedsAnalysis}},
				{at(5), &deal.StageChanged{DealID: dealID, From: deal.StageNeedsAnalysis, To: deal.StageNegotiation}},
				{at(8), &deal.StageChanged{DealID: dealID, From: deal.StageNegotiation, To: deal.StageProposal}},
			},
			want: with(func(d *deal.Deal) {
				d.Version, d.Stage, d.StageSince, d.Probability = 4, deal.StageProposal, at(8), 50
			}),
		},
		{
			name: "won deal has the final amount, contract date and 100%",
			events: []timedEvent{
				{at(1), opened()},
				{at(4), &deal.StageChanged{DealID: dealID, From: deal.StageQualification, To: deal.StageNegotiation}},
				{at(9), &deal.Won{DealID: dealID, ContactID: contactID, FromStage: deal.StageNegotiation, Amount: jpy(2_750_000), ClosedAt: "2025-03-07"}},
			},
			want: with(func(d *deal.Deal) {
				d.Version, d.Stage, d.StageSince, d.Probability = 3, deal.StageWon, at(9), 100
				d.Amount, d.ClosedAt, d.ClosedFrom = jpy(2_750_000), "2025-03-07", deal.StageNegotiation
			}),
		},
		{
			name: "lost deal has reason, note, close date of the event and 0%",
			events: []timedEvent{
				{at(1), opened()},
				{at(2), &deal.StageChanged{DealID: dealID, From: deal.StageQualification, To: deal.StageProposal}},
				{at(10).Add(14 * time.Hour), &deal.Lost{DealID: dealID, ContactID: contactID, FromStage: deal.StageProposal, Reason: deal.ReasonNoBudget, Note: "frozen", Amount: jpy(3_000_000)}},
			},
			want: with(func(d *deal.Deal) {
				d.Version, d.Stage, d.StageSince, d.Probability = 3, deal.StageLost, at(10).Add(14*time.Hour), 0
				d.ClosedAt, d.ClosedFrom, d.LostReason, d.LostNote = "2025-03-10", deal.StageProposal, deal.ReasonNoBudget, "frozen"
			}),
		},
		{
			name: "reopened deal clears the close and is back in its stage",
			events: []timedEvent{
				{at(1), opened()},
				{at(2), &deal.StageChanged{DealID: dealID, From: deal.StageQualification, To: deal.StageProposal}},
				{at(3), &deal.Lost{DealID: dealID, ContactID: contactID, FromStage: deal.StageProposal, Reason: deal.ReasonTiming, Note: "next year", Amount: jpy(3_000_000)}},
				{at(20), &deal.Reopened{DealID: dealID, From: deal.StageLost, To: deal.StageProposal}},
			},
			want: with(func(d *deal.Deal) {
				d.Version, d.Stage, d.StageSince, d.Probability = 4, deal.StageProposal, at(20), 50
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got deal.Deal
			for _, e := range tc.events {
				got.Apply(e.event, e.at)
			}
			if !reflect.DeepEqual(got, tc.want) {
				gotJSON, _ := json.MarshalIndent(got, "", "  ")
				wantJSON, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Errorf("state differs\ngot  %s\nwant %s", gotJSON, wantJSON)
			}
			if got.IsOpen() != got.Stage.IsOpen() || !got.Exists() {
				t.Errorf("IsOpen = %v, Exists = %v for stage %s", got.IsOpen(), got.Exists(), got.Stage)
			}
		})
	}
}

func TestStages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stage       deal.Stage
		probability int
		open        bool
	}{
		{"qualification", 10, true},
		{"needs_analysis", 25, true},
		{"proposal", 50, true},
		{"negotiation", 75, true},
		{"won", 100, false},
		{"lost", 0, false},
		{"closing", 0, false},
	}
	for _, tc := range tests {
		if got := tc.stage.Probability(); got != tc.probability {
			t.Errorf("%s.Probability() = %d; want %d", tc.stage, got, tc.probability)
		}
		if got := tc.stage.IsOpen(); got != tc.open {
			t.Errorf("%s.IsOpen() = %v; want %v", tc.stage, got, tc.open)
		}
	}
	wantStages := []deal.Stage{"qualification", "needs_analysis", "proposal", "negotiation", "won", "lost"}
	if got := deal.Stages(); !reflect.DeepEqual(got, wantStages) {
		t.Errorf("Stages() = %v; want %v", got, wantStages)
	}
	open := deal.OpenStages()
	if !reflect.DeepEqual(open, wantStages[:4]) {
		t.Errorf("OpenStages() = %v; want %v", open, wantStages[:4])
	}
	open[0] = "changed"
	if deal.OpenStages()[0] != deal.StageQualification || deal.Stages()[0] != deal.StageQualification {
		t.Error("OpenStages() shares its backing array")
	}
	wantReasons := []deal.LostReason{"price", "competitor", "timing", "no_budget", "no_decision", "product_fit", "other"}
	if got := deal.LostReasons(); !reflect.DeepEqual(got, wantReasons) {
		t.Errorf("LostReasons() = %v; want %v", got, wantReasons)
	}
}

func TestStreamName(t *testing.T) {
	t.Parallel()
	if got := deal.StreamName("d-1"); got != "deal-d-1" {
		t.Errorf("StreamName = %q", got)
	}
	tests := []struct {
		stream, id string
		ok         bool
	}{
		{"deal-d-1", "d-1", true},
		{"deal-", "", false},
		{"contact-d-1", "", false},
	}
	for _, tc := range tests {
		id, err := deal.IDFromStream(tc.stream)
		if id != tc.id || (err == nil) != tc.ok {
			t.Errorf("IDFromStream(%q) = %q, %v; want %q, ok %v", tc.stream, id, err, tc.id, tc.ok)
		}
	}
}
