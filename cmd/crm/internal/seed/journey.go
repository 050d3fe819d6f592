package seed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
)

// channelProfile is how leads of one channel behave: how often they arrive and how likely
// they are to move on from each pre-won phase (lead, approach, discovery, proposal).
type channelProfile struct {
	name    string
	weight  int
	advance [4]float64
}

var profiles = []channelProfile{
	{"web_form", 30, [4]float64{0.55, 0.55, 0.50, 0.45}},
	{"seminar", 15, [4]float64{0.70, 0.65, 0.55, 0.50}},
	{"exhibition", 15, [4]float64{0.45, 0.50, 0.50, 0.45}},
	{"direct_mail", 10, [4]float64{0.30, 0.45, 0.45, 0.40}},
	{"social_ad", 20, [4]float64{0.35, 0.40, 0.45, 0.40}},
	{"referral", 10, [4]float64{0.85, 0.75, 0.65, 0.60}},
}

var (
	familyNames = []string{"Sato", "Suzuki", "Takahashi", "Tanaka", "Ito", "Watanabe", "Yamamoto", "Nakamura", "Kobayashi", "Kato", "Yoshida", "Yamada", "Sasaki", "Matsumoto", "Inoue", "Kimura"}
	givenNames  = []string{"Haruto", "Yui", "Sota", "Hina", "Yuto", "Mei", "Riku", "Sakura", "Kaito", "Aoi", "Ren", "Yuna", "Daiki", "Emi", "Kenta", "Nana"}
	companies   = []string{"Asahi Logistics", "Kansai Foods", "Nippon Parts", "Sakura Retail", "Tokai Energy", "Hokuto Systems", "Minato Clinic", "Fuji Print", "Chubu Steel", "Izumi Travel", "Kita Pharma", "Mirai Labs"}
	titles      = []string{"CEO", "CTO", "Sales Manager", "Purchasing Lead", "IT Manager", "Operations Director", "Marketing Lead"}
	segments    = []string{"smb", "mid_market", "enterprise"}
	products    = []string{"CRM Basic", "CRM Pro", "CRM Enterprise", "Analytics Add-on", "Onboarding Pack"}
	lostReasons = []string{"price", "competitor", "timing", "no_budget", "no_decision", "product_fit", "other"}
	reps        = []string{"rep-aoki", "rep-endo", "rep-fujita", "rep-goto", "rep-hara", "rep-ikeda", "rep-kondo", "rep-mori", "rep-noguchi", "rep-ota"}
	churnWhy    = []string{"cancelled the subscription", "moved to a competitor", "budget cut", "company closed", "stopped buying"}
	earlyKinds  = []string{"email_open", "email_click", "document_download", "webinar", "inquiry"}
	midKinds    = []string{"call", "email", "meeting", "visit", "seminar"}
	afterKinds  = []string{"support_ticket", "call", "email", "meeting", "webinar"}
	industries  = []string{"Logistics", "Food", "Manufacturing", "Retail", "Energy", "IT", "Healthcare"}
	noteTexts   = []string{"asked for a price list", "prefers calls in the morning", "budget decided in March",
		"compares us with a competitor", "wants a demo for the team", "decision maker is the CFO"}
)

// journey writes one contact's history.
type journey struct {
	h     *commands.Handler
	cfg   Config
	index int
	rng   *rand.Rand
	// more decides the steps of the daily work (notes, task changes, accounts, duplicates)
	// apart from rng, so that adding them left the rest of a seed's history as it was.
	more *rand.Rand

	step     int
	commands int64
	events   int64
	now      time.Time // business time of the next command
	owner    string
	contact  string
	lastVer  int64
	currency string
	// accounts are the accounts of the companies, by name.
	accounts map[string]string
}

func (j *journey) pick(list []string) string { return list[j.rng.IntN(len(list))] }

func (j *journey) chance(p float64) bool { return j.rng.Float64() < p }

func (j *journey) chanceMore(p float64) bool { return j.more.Float64() < p }

// errPresent ends a journey whose next step would happen after the history's end.
var errPresent = errors.New("the journey reached the end of the history")

// wait moves business time forward by roughly days, at a working hour. Past the history's
// end (Config.Until) it returns errPresent: nothing is recorded as happening later.
func (j *journey) wait(days float64) error {
	d := j.rng.ExpFloat64() * days
	j.now = j.now.Add(time.Duration(d*24*float64(time.Hour)) + time.Duration(j.rng.IntN(8*60))*time.Minute)
	if j.now.After(j.cfg.Until) {
		return errPresent
	}
	return nil
}

func (j *journey) meta(reason string) commands.Meta {
	j.step++
	return commands.Meta{
		Actor:          j.owner,
		IdempotencyKey: fmt.Sprintf("seed:%d:%d:%d", j.cfg.Seed, j.index, j.step),
		CorrelationID:  fmt.Sprintf("seed-%d-%d", j.cfg.Seed, j.index),
		Reason:         reason,
		OccurredAt:     j.now,
	}
}

// done records a command's result; versions tell how many events it wrote.
func (j *journey) done(res commands.Result, prev *int64, err error) error {
	if err != nil {
		return err
	}
	j.commands++
	j.events += res.Version - *prev
	*prev = res.Version
	return nil
}

func (j *journey) run(ctx context.Context) error {
	profile := j.pickProfile()
	j.owner = reps[j.rng.IntN(len(reps))]
	j.now = j.cfg.Start.Add(time.Duration(j.rng.IntN(j.cfg.Days*24)) * time.Hour)
	if j.now.After(j.cfg.Until) {
		return errPresent
	}
	j.currency = "JPY"
	switch {
	case j.chance(0.15):
		j.currency = "USD"
	case j.chance(0.06):
		j.currency = "EUR"
	}
	family, given := j.pick(familyNames), j.pick(givenNames)
	company := j.pick(companies)
	res, err := j.h.CreateContact(ctx, j.meta(""), commands.CreateContact{
		Name: given + " " + family, Email: fmt.Sprintf("%s.%s.%d@%s.example", strings.ToLower(given), strings.ToLower(family), j.index, strings.ToLower(strings.Fields(company)[0])),
		Phone: fmt.Sprintf("+81-3-%04d-%04d", j.rng.IntN(10000), j.rng.IntN(10000)), Company: company,
		Title: j.pick(titles), Channel: profile.name, Owner: j.owner, Segment: j.pick(segments),
	})
	if err := j.done(res, &j.lastVer, err); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	j.contact = res.ID
	if id := j.accounts[company]; id != "" && j.chanceMore(0.6) {
		res, err := j.h.LinkContactToAccount(ctx, j.meta(""), commands.LinkContactToAccount{ContactID: j.contact, AccountID: id})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("link account: %w", err)
		}
	}
	if j.chanceMore(0.03) {
		if err := j.duplicate(ctx, given, family, profile.name); err != nil {
			return err
		}
	}
	return j.preWon(ctx, profile, 0)
}

// duplicate records the same person again (another address, as a second form fill does),
// with a touchpoint of its own, and merges it into the contact.
func (j *journey) duplicate(ctx context.Context, given, family, channel string) error {
	var ver int64
	res, err := j.h.CreateContact(ctx, j.meta(""), commands.CreateContact{Name: family + " " + given,
		Email: fmt.Sprintf("%s%d@mail.example", strings.ToLower(family), j.index), Channel: channel, Owner: j.owner})
	if err := j.done(res, &ver, err); err != nil {
		return fmt.Errorf("create duplicate: %w", err)
	}
	dup := res.ID
	res, err = j.h.RecordTouchpoint(ctx, j.meta(""), commands.RecordTouchpoint{ContactID: dup, Kind: earlyKinds[j.more.IntN(len(earlyKinds))]})
	if err := j.done(res, &ver, err); err != nil {
		return fmt.Errorf("duplicate's touchpoint: %w", err)
	}
	res, err = j.h.MergeContact(ctx, j.meta("duplicate"), commands.MergeContact{ContactID: dup, Into: j.contact, AllowCrossAccount: true})
	if err := j.done(res, &ver, err); err != nil {
		return fmt.Errorf("merge duplicate: %w", err)
	}
	j.events++ // the survivor's duplicate_absorbed
	j.lastVer++
	return nil
}

func (j *journey) pickProfile() channelProfile {
	total := 0
	for _, p := range profiles {
		total += p.weight
	}
	n := j.rng.IntN(total)
	for _, p := range profiles {
		if n < p.weight {
			return p
		}
		n -= p.weight
	}
	return profiles[0]
}

var preWonPhases = []string{"lead", "approach", "discovery", "proposal"}

// preWon walks the contact from phase index `from` towards won; round counts win-backs.
func (j *journey) preWon(ctx context.Context, profile channelProfile, from int) error {
	var dealID string
	var dealVer int64
	for p := from; p < 4; p++ {
		if err := j.touchpoints(ctx, 1+j.rng.IntN(3), touchKinds(p)); err != nil {
			return err
		}
		if p == 2 && dealID == "" {
			id, ver, err := j.openDeal(ctx)
			if err != nil {
				return err
			}
			dealID, dealVer = id, ver
		}
		if j.chance(0.08) && j.step < 40 {
			// Sometimes the rep books a follow-up and does (or forgets) it.
			if err := j.task(ctx); err != nil {
				return err
			}
		}
		if !j.chance(profile.advance[p]) {
			if j.chance(0.35) {
				return nil // stalls: becomes dormant, no exit event
			}
			reason := j.pick(lostReasons)
			if dealID != "" {
				if err := j.wait(3); err != nil {
					return err
				}
				res, err := j.h.LoseDeal(ctx, j.meta(""), commands.LoseDeal{DealID: dealID, Reason: reason, Note: "lost at " + preWonPhases[p]})
				if err := j.done(res, &dealVer, err); err != nil {
					return fmt.Errorf("lose deal: %w", err)
				}
			}
			if err := j.phase(ctx, "lost", "deal lost: "+reason); err != nil {
				return err
			}
			if j.chance(0.12) {
				if err := j.wait(120); err != nil {
					return err
				}
				if err := j.phase(ctx, "approach", "win-back campaign"); err != nil {
					return err
				}
				return j.preWon(ctx, profile, 1)
			}
			return nil
		}
		if p == 3 && j.chance(0.1) {
			// A proposal sent back for more hearing, then forward again.
			if err := j.phase(ctx, "discovery", "requirements changed"); err != nil {
				return err
			}
			if err := j.phase(ctx, "proposal", ""); err != nil {
				return err
			}
		}
		next := "won"
		if p < 3 {
			next = preWonPhases[p+1]
		}
		if dealID != "" && p >= 2 {
			if err := j.advanceDeal(ctx, dealID, &dealVer, p, next == "won"); err != nil {
				return err
			}
		}
		if err := j.phase(ctx, next, ""); err != nil {
			return err
		}
	}
	return j.afterWon(ctx)
}

func touchKinds(phase int) []string {
	if phase <= 1 {
		return earlyKinds
	}
	return midKinds
}

func (j *journey) touchpoints(ctx context.Context, n int, kinds []string) error {
	for i := 0; i < n; i++ {
		if err := j.wait(4); err != nil {
			return err
		}
		res, err := j.h.RecordTouchpoint(ctx, j.meta(""), commands.RecordTouchpoint{ContactID: j.contact, Kind: j.pick(kinds)})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("touchpoint: %w", err)
		}
		if j.chanceMore(0.25) {
			res, err := j.h.AddNote(ctx, j.meta(""), commands.AddNote{ContactID: j.contact, Text: noteTexts[j.more.IntN(len(noteTexts))]})
			if err := j.done(res, &j.lastVer, err); err != nil {
				return fmt.Errorf("note: %w", err)
			}
		}
	}
	return nil
}

func (j *journey) phase(ctx context.Context, to, reason string) error {
	if err := j.wait(5); err != nil {
		return err
	}
	res, err := j.h.ChangePhase(ctx, j.meta(reason), commands.ChangePhase{ContactID: j.contact, Phase: to, Reason: reason})
	if err := j.done(res, &j.lastVer, err); err != nil {
		return fmt.Errorf("phase %s: %w", to, err)
	}
	return nil
}

func (j *journey) openDeal(ctx context.Context) (string, int64, error) {
	if err := j.wait(2); err != nil {
		return "", 0, err
	}
	amount := int64(100_000 + j.rng.IntN(4_900_000))
	if j.currency == "USD" {
		amount = int64(100_000 + j.rng.IntN(5_000_000)) // cents
	}
	expected := domain.DateOf(j.now.Add(time.Duration(30+j.rng.IntN(90)) * 24 * time.Hour))
	var ver int64
	res, err := j.h.OpenDeal(ctx, j.meta(""), commands.OpenDeal{ContactID: j.contact, Title: j.pick(products) + " for " + j.contact[:8],
		Amount: amount, Currency: j.currency, ExpectedClose: string(expected)})
	if err := j.done(res, &ver, err); err != nil {
		return "", 0, fmt.Errorf("open deal: %w", err)
	}
	return res.ID, ver, nil
}

// advanceDeal moves the deal along with the contact: discovery -> needs_analysis,
// proposal -> proposal, negotiation, then won.
func (j *journey) advanceDeal(ctx context.Context, dealID string, ver *int64, phase int, win bool) error {
	var stages []string
	switch phase {
	case 2:
		stages = []string{"needs_analysis", "proposal"}
	case 3:
		stages = []string{"negotiation"}
	}
	for _, s := range stages {
		if err := j.wait(6); err != nil {
			return err
		}
		res, err := j.h.ChangeDealStage(ctx, j.meta(""), commands.ChangeDealStage{DealID: dealID, Stage: s})
		if err := j.done(res, ver, err); err != nil {
			return fmt.Errorf("deal stage %s: %w", s, err)
		}
	}
	if !win {
		return nil
	}
	if err := j.wait(5); err != nil {
		return err
	}
	res, err := j.h.WinDeal(ctx, j.meta(""), commands.WinDeal{DealID: dealID})
	if err := j.done(res, ver, err); err != nil {
		return fmt.Errorf("win deal: %w", err)
	}
	if j.chance(0.03) {
		// A won deal reopened (contract fell through) and won again.
		if err := j.wait(2); err != nil {
			return err
		}
		res, err := j.h.ReopenDeal(ctx, j.meta("contract revised"), commands.ReopenDeal{DealID: dealID})
		if err := j.done(res, ver, err); err != nil {
			return fmt.Errorf("reopen deal: %w", err)
		}
		if err := j.wait(3); err != nil {
			return err
		}
		res, err = j.h.WinDeal(ctx, j.meta(""), commands.WinDeal{DealID: dealID})
		if err := j.done(res, ver, err); err != nil {
			return fmt.Errorf("win deal again: %w", err)
		}
	}
	return nil
}

func (j *journey) purchase(ctx context.Context) error {
	if err := j.wait(10); err != nil {
		return err
	}
	if err := j.buy(ctx, j.pick(products), j.pick([]string{"basic", "pro", "enterprise"})); err != nil {
		return err
	}
	// Budgets are spent at the fiscal year's end (March in Japan) and before the year's end:
	// an add-on bought the same weeks, so that purchases have a season.
	if m := j.now.Month(); (m == time.March || m == time.December) && j.chance(0.4) {
		if err := j.wait(3); err != nil {
			return err
		}
		return j.buy(ctx, j.pick([]string{"Analytics Add-on", "Onboarding Pack"}), "")
	}
	return nil
}

// buy records one order now, its amount in the minor unit of the contact's currency.
func (j *journey) buy(ctx context.Context, product, plan string) error {
	amount := int64(50_000 + j.rng.IntN(950_000))
	if j.currency != "JPY" {
		amount = int64(5_000 + j.rng.IntN(95_000)) // cents
	}
	res, err := j.h.RecordPurchase(ctx, j.meta(""), commands.RecordPurchase{ContactID: j.contact, Amount: amount,
		Currency: j.currency, Product: product, Plan: plan})
	if err := j.done(res, &j.lastVer, err); err != nil {
		return fmt.Errorf("purchase: %w", err)
	}
	return nil
}

func (j *journey) task(ctx context.Context) error {
	due := domain.DateOf(j.now.Add(time.Duration(1+j.rng.IntN(14)) * 24 * time.Hour))
	res, err := j.h.ScheduleTask(ctx, j.meta(""), commands.ScheduleTask{ContactID: j.contact, Title: "follow up", Due: string(due)})
	if err := j.done(res, &j.lastVer, err); err != nil {
		return fmt.Errorf("schedule task: %w", err)
	}
	taskID := res.EntityID
	// Changes of plan, recorded when the task is scheduled (they move no time, so that the
	// rest of the journey happens when it did before they were seeded).
	if j.chanceMore(0.15) {
		due = domain.DateOf(due.Time().Add(time.Duration(7+j.more.IntN(14)) * 24 * time.Hour))
		res, err := j.h.RescheduleTask(ctx, j.meta("put off"), commands.RescheduleTask{ContactID: j.contact, TaskID: taskID, Due: string(due)})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("reschedule task: %w", err)
		}
	}
	if j.chanceMore(0.1) {
		res, err := j.h.ReassignTask(ctx, j.meta(""), commands.ReassignTask{ContactID: j.contact, TaskID: taskID, Assignee: j.otherRep()})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("reassign task: %w", err)
		}
	}
	if j.chance(0.7) {
		if err := j.wait(7); err != nil {
			return err
		}
		res, err := j.h.CompleteTask(ctx, j.meta(""), commands.CompleteTask{ContactID: j.contact, TaskID: taskID})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("complete task: %w", err)
		}
	} else if j.chanceMore(0.3) {
		res, err := j.h.CancelTask(ctx, j.meta(""), commands.CancelTask{ContactID: j.contact, TaskID: taskID, Reason: "no longer needed"})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("cancel task: %w", err)
		}
	}
	return nil
}

// otherRep is a rep other than the contact's owner.
func (j *journey) otherRep() string {
	i := slices.Index(reps, j.owner)
	return reps[(i+1+j.more.IntN(len(reps)-1))%len(reps)]
}

func (j *journey) afterWon(ctx context.Context) error {
	if err := j.purchase(ctx); err != nil {
		return err
	}
	if err := j.phase(ctx, "follow_up", ""); err != nil {
		return err
	}
	satisfaction := j.rng.Float64()
	for months := 0; months < 2+j.rng.IntN(6); months++ {
		if err := j.touchpoints(ctx, 1, afterKinds); err != nil {
			return err
		}
		if err := j.wait(25); err != nil {
			return err
		}
		nps := min(10, max(0, int(satisfaction*11)+j.rng.IntN(3)-1))
		res, err := j.h.RecordSurvey(ctx, j.meta(""), commands.RecordSurvey{ContactID: j.contact, NPS: nps})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("survey: %w", err)
		}
		// Usage grows month by month with satisfied customers, towards the plan's limit.
		usage := int(satisfaction*100) + j.rng.IntN(30) + months*int(satisfaction*8)
		res, err = j.h.ReportUsage(ctx, j.meta(""), commands.ReportUsage{ContactID: j.contact, PercentOfLimit: usage})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("usage: %w", err)
		}
		if usage >= 80 && nps >= 9 && j.chance(0.3) {
			// An upsell taken: the next plan up.
			if err := j.wait(7); err != nil {
				return err
			}
			if err := j.buy(ctx, "CRM Enterprise", "enterprise"); err != nil {
				return err
			}
		}
		if nps <= 6 && j.chance(0.5) {
			if err := j.task(ctx); err != nil {
				return err
			}
		}
	}
	if j.chance(0.05) {
		res, err := j.h.OptOut(ctx, j.meta(""), commands.OptOut{ContactID: j.contact, Channel: "email"})
		if err := j.done(res, &j.lastVer, err); err != nil {
			return fmt.Errorf("opt out: %w", err)
		}
	}
	switch {
	case satisfaction > 0.55:
		if err := j.phase(ctx, "loyal", ""); err != nil {
			return err
		}
		for k := 0; k < 1+j.rng.IntN(4); k++ {
			if err := j.wait(60); err != nil {
				return err
			}
			if err := j.purchase(ctx); err != nil {
				return err
			}
		}
		if satisfaction < 0.7 && j.chance(0.3) {
			return j.phase(ctx, "churned", j.pick(churnWhy))
		}
		return nil
	case satisfaction < 0.3:
		if err := j.wait(30); err != nil {
			return err
		}
		if err := j.phase(ctx, "churned", j.pick(churnWhy)); err != nil {
			return err
		}
		if j.chance(0.1) {
			if err := j.wait(90); err != nil {
				return err
			}
			return j.phase(ctx, "lead", "win-back offer")
		}
		return nil
	default:
		if j.chance(0.1) {
			owner := reps[j.rng.IntN(len(reps))]
			res, err := j.h.UpdateContact(ctx, j.meta("territory change"), commands.UpdateContact{ContactID: j.contact, Owner: &owner})
			if err := j.done(res, &j.lastVer, err); err != nil && domain.ErrorCode(err) != domain.CodeRefused {
				return fmt.Errorf("change owner: %w", err)
			}
		}
		return nil
	}
}
