package console_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

type boardAnswer struct {
	Data struct {
		Stages []struct {
			Stage  string `json:"stage"`
			Count  int    `json:"count"`
			Totals []struct {
				Currency string `json:"currency"`
				Amount   int64  `json:"amount"`
				Weighted int64  `json:"weighted_amount"`
			} `json:"totals"`
			Cards []struct {
				DealID  string `json:"deal_id"`
				Owner   string `json:"owner"`
				Amount  money  `json:"amount"`
				Version int64  `json:"version"`
			} `json:"cards"`
		} `json:"stages"`
	} `json:"data"`
	Freshness struct {
		Head int64 `json:"head"`
	} `json:"freshness"`
}

type historyAnswer struct {
	Events []struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	} `json:"events"`
}

// formatMoney is how en-US shows an amount in minor units: yen without decimals, dollars with cents.
func formatMoney(m int64, currency string) string {
	symbol, digits := map[string]string{"JPY": "¥", "USD": "$", "EUR": "€"}[currency], 0
	if currency != "JPY" {
		digits = 2
	}
	whole := strconv.FormatInt(m, 10)
	frac := ""
	if digits > 0 {
		for len(whole) <= digits {
			whole = "0" + whole
		}
		whole, frac = whole[:len(whole)-digits], "."+whole[len(whole)-digits:]
	}
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return symbol + b.String() + frac
}

func TestFormatMoney(t *testing.T) {
	for _, tt := range []struct {
		amount   int64
		currency string
		want     string
	}{{17309355, "JPY", "¥17,309,355"}, {5019113, "USD", "$50,191.13"}, {5, "USD", "$0.05"}, {999, "JPY", "¥999"}} {
		if got := formatMoney(tt.amount, tt.currency); got != tt.want {
			t.Errorf("formatMoney(%d, %s) = %q, want %q", tt.amount, tt.currency, got, tt.want)
		}
	}
}

// The console in headless Chromium against `crm serve` on a seeded SQLite store and a seeded
// PostgreSQL store: every page loads without a console error or a failed request and passes
// axe-core; what it shows equals the API's answers; a card moved by drag and drop or from the
// keyboard is in the log and on the board after a reload; the time slider shows the board at
// a past position; a Japanese search finds its contact; the audit proof verifies in the page.
func TestConsole(t *testing.T) {
	browser := newBrowser(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			store := ""
			if backend == "postgres" {
				store = postgresStore(t)
			}
			s := startServer(t, store, 120)
			tb := newTab(t, browser, s)
			consoleSuite(t, backend, s, tb)
		})
	}
}

func consoleSuite(t *testing.T, backend string, s *server, tb *tab) {
	var contactID string
	var contacts struct {
		Data struct {
			Total    int `json:"total"`
			Contacts []struct {
				ID string `json:"contact_id"`
			} `json:"contacts"`
		} `json:"data"`
	}
	s.call(t, "GET", "/v1/contacts?limit=5", "", &contacts)
	contactID = contacts.Data.Contacts[0].ID
	// The seeded log's last position, and a second of Tokyo's wall clock after the seed,
	// before this suite's first command.
	var ready struct {
		CaughtUpTo int64 `json:"caught_up_to"`
	}
	s.call(t, "GET", "/readyz", "", &ready)
	seeded := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(seeded))
	tb.signIn(t, adminToken)

	t.Run("roles", func(t *testing.T) {
		tb.signIn(t, appToken)
		tb.open(t, "board")
		if n := eval[int](t, tb, `document.querySelectorAll('#nav a[data-page="audit"]').length`); n != 0 {
			t.Error("the app role sees the audit page")
		}
		if n := eval[int](t, tb, `document.querySelectorAll('.card[draggable="true"]').length`); n == 0 {
			t.Error("the app role cannot move cards")
		}
		tb.signIn(t, analystToken)
		tb.open(t, "board")
		if n := eval[int](t, tb, `document.querySelectorAll('.card[draggable="true"]').length`); n != 0 {
			t.Error("the analyst role can move cards")
		}
		tb.clean(t)
		tb.signIn(t, adminToken)
		tb.clean(t)
	})

	pages := []string{"board", "contacts", "contacts/" + contactID, "journey", "churn", "kpis", "value", "tasks", "ops", "audit"}
	for _, page := range pages {
		t.Run("page "+page, func(t *testing.T) {
			tb.open(t, page)
			tb.clean(t)
			tb.accessible(t)
			name := strings.SplitN(page, "/", 2)[0]
			if strings.Contains(page, "/") {
				name = "contact"
			}
			tb.screenshot(t, backend, name)
		})
	}

	figures(t, s, tb)

	t.Run("board equals the API", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		tb.open(t, "board")
		for _, st := range b.Data.Stages {
			got := text(t, tb, fmt.Sprintf(`.column[data-stage=%q] .totals`, st.Stage))
			contains(t, st.Stage, got, fmt.Sprintf("Deals: %d", st.Count))
			for _, tot := range st.Totals {
				contains(t, st.Stage, got, "Total "+formatMoney(tot.Amount, tot.Currency), "Weighted "+formatMoney(tot.Weighted, tot.Currency))
			}
			if n := eval[int](t, tb, fmt.Sprintf(`document.querySelectorAll('.column[data-stage=%q] .card').length`, st.Stage)); n != len(st.Cards) {
				t.Errorf("%s: %d cards shown, the API has %d", st.Stage, n, len(st.Cards))
			}
		}
		tb.clean(t)
	})

	t.Run("owner filter", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		owner := b.Data.Stages[0].Cards[0].Owner
		var filtered boardAnswer
		s.call(t, "GET", "/v1/pipeline/board?limit=50&owner="+url.QueryEscape(owner), "", &filtered)
		tb.open(t, "board")
		tb.waitRender(t, chromedp.SetValue(chromedp.CSS("#owner-filter"), owner))
		_ = eval[chromedp.Void](t, tb, `document.querySelector('#owner-filter').dispatchEvent(new Event('change'))`)
		tb.do(t, chromedp.WaitVisible(chromedp.CSS(`main[data-page="board"]`)))
		for _, st := range filtered.Data.Stages {
			if n := eval[int](t, tb, fmt.Sprintf(`document.querySelectorAll('.column[data-stage=%q] .card').length`, st.Stage)); n != len(st.Cards) {
				t.Errorf("owner %s, %s: %d cards shown, the API has %d", owner, st.Stage, n, len(st.Cards))
			}
		}
		tb.waitRender(t, chromedp.SetValue(chromedp.CSS("#owner-filter"), ""))
		_ = eval[chromedp.Void](t, tb, `document.querySelector('#owner-filter').dispatchEvent(new Event('change'))`)
		tb.do(t, chromedp.WaitVisible(chromedp.CSS(`main[data-page="board"]`)))
		tb.clean(t)
	})

	t.Run("drag a card", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		from, to := b.Data.Stages[0], b.Data.Stages[1]
		deal := from.Cards[0].DealID
		tb.open(t, "board")
		tb.do(t, chromedp.DragAndDrop(chromedp.CSS(fmt.Sprintf(`.card[data-deal=%q]`, deal)), chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] h2`, to.Stage))),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card[data-deal=%q]`, to.Stage, deal))))
		tb.waitRender(t, chromedp.Reload())
		tb.do(t, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card[data-deal=%q]`, to.Stage, deal))))
		lastEvent(t, s, deal, "deal.stage_changed.v1", to.Stage)
		tb.clean(t)
	})

	t.Run("move a card from the keyboard", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		from, to := b.Data.Stages[1], b.Data.Stages[2]
		deal := from.Cards[0].DealID
		tb.open(t, "board")
		tb.do(t, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`.card[data-deal=%q]`, deal))),
			chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(chromedp.ModifierShift)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card[data-deal=%q]`, to.Stage, deal))))
		lastEvent(t, s, deal, "deal.stage_changed.v1", to.Stage)
		tb.clean(t)
	})

	t.Run("a move names the card's version", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		from, to := b.Data.Stages[0], b.Data.Stages[1]
		card := from.Cards[1]
		var d struct {
			Version int64 `json:"version"`
		}
		s.call(t, "GET", "/v1/deals/"+card.DealID, "", &d)
		if card.Version != d.Version || d.Version == 0 {
			t.Fatalf("the board's card of deal %s has version %d, the deal %d", card.DealID, card.Version, d.Version)
		}
		tb.open(t, "board")
		if got := eval[string](t, tb, fmt.Sprintf(`document.querySelector('.card[data-deal=%q]').dataset.version`, card.DealID)); got != fmt.Sprint(d.Version) {
			t.Errorf("the card carries version %s, the deal has %d", got, d.Version)
		}
		tb.sent(t) // forget earlier commands
		tb.do(t, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`.card[data-deal=%q]`, card.DealID))),
			chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(chromedp.ModifierShift)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card[data-deal=%q]`, to.Stage, card.DealID))))
		want := fmt.Sprintf("%s If-Match %q", card.DealID, fmt.Sprint(d.Version))
		if got := tb.sent(t); len(got) != 1 || got[0] != want {
			t.Errorf("stage commands sent %q, want [%s]", got, want)
		}
		lastEvent(t, s, card.DealID, "deal.stage_changed.v1", to.Stage)
		if got := eval[string](t, tb, fmt.Sprintf(`document.querySelector('.card[data-deal=%q]').dataset.version`, card.DealID)); got != fmt.Sprint(d.Version+1) {
			t.Errorf("after the move the card carries version %s, the deal has %d", got, d.Version+1)
		}
		tb.clean(t)
	})

	t.Run("changed by someone else", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		from, to := b.Data.Stages[0], b.Data.Stages[1]
		card := from.Cards[0]
		tb.open(t, "board")
		// Someone else renames the deal after the board was drawn: same stage, a new version.
		var renamed struct {
			Version int64 `json:"version"`
		}
		s.call(t, "PATCH", "/v1/deals/"+card.DealID, `{"title":"Renamed by someone else"}`, &renamed)
		tb.sent(t)
		tb.do(t, chromedp.DragAndDrop(chromedp.CSS(fmt.Sprintf(`.card[data-deal=%q]`, card.DealID)), chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] h2`, to.Stage))),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card.conflict[data-deal=%q]`, from.Stage, card.DealID))))
		contains(t, "status", text(t, tb, "#status"), "Changed by someone else")
		contains(t, "the fresh card", text(t, tb, fmt.Sprintf(`.card[data-deal=%q] h3`, card.DealID)), "Renamed by someone else")
		want := fmt.Sprintf("%s If-Match %q", card.DealID, fmt.Sprint(card.Version))
		if got := tb.sent(t); len(got) != 1 || got[0] != want {
			t.Errorf("stage commands sent %q, want [%s]", got, want)
		}
		var h historyAnswer
		s.call(t, "GET", "/v1/deals/"+card.DealID+"/history", "", &h)
		if last := h.Events[len(h.Events)-1]; last.Type != "deal.title_changed.v1" {
			t.Errorf("the deal's last event is %s: the move was not refused", last.Type)
		}
		tb.mu.Lock()
		seen := strings.Join(tb.problems, "\n")
		tb.mu.Unlock()
		if !strings.Contains(seen, "/stage answered 412") {
			t.Errorf("no 412 answered to the stage command; seen: %s", seen)
		}
		tb.forget() // the 412 was the point
		// The fresh card carries the fresh version: moved again, it goes.
		if got := eval[string](t, tb, fmt.Sprintf(`document.querySelector('.card[data-deal=%q]').dataset.version`, card.DealID)); got != fmt.Sprint(renamed.Version) {
			t.Errorf("the fresh card carries version %s, the deal has %d", got, renamed.Version)
		}
		tb.do(t, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`.card[data-deal=%q]`, card.DealID))),
			chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(chromedp.ModifierShift)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card[data-deal=%q]`, to.Stage, card.DealID))))
		lastEvent(t, s, card.DealID, "deal.stage_changed.v1", to.Stage)
		tb.clean(t)
	})

	t.Run("a 412 shows the fresh card", func(t *testing.T) {
		var b boardAnswer
		s.fresh(t, "/v1/pipeline/board?limit=50", &b)
		from, elsewhere := b.Data.Stages[0], b.Data.Stages[3]
		deal := from.Cards[0].DealID
		tb.open(t, "board")
		var d struct {
			Version int64 `json:"version"`
		}
		s.call(t, "GET", "/v1/deals/"+deal, "", &d)
		if got := eval[string](t, tb, fmt.Sprintf(`document.querySelector('.card[data-deal=%q]').dataset.version`, deal)); got != fmt.Sprint(d.Version) {
			t.Errorf("the card carries version %s, the deal has %d", got, d.Version)
		}
		// The stage command is held in the browser while someone else moves the deal, so
		// that its If-Match names a version that is no longer the deal's.
		ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
		defer cancel()
		paused := chromedp.Events(ctx, fetch.RequestPaused)
		if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/v1/deals/" + deal + "/stage"}}}); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = chromedp.Call(tb.ctx, fetch.Disable, cdp.Empty{}) }()
		tb.do(t, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`.card[data-deal=%q]`, deal))),
			chromedp.KeyEvent(kb.ArrowRight, chromedp.KeyModifiers(chromedp.ModifierShift)))
		for ev, err := range paused {
			if err != nil {
				t.Fatalf("the stage command was not sent: %v", err)
			}
			if got := fmt.Sprint(ev.Request.Headers["If-Match"]); got != fmt.Sprintf("%q", fmt.Sprint(d.Version)) {
				t.Errorf("the stage command has If-Match %s, the deal's version is %d", got, d.Version)
			}
			s.call(t, "POST", "/v1/deals/"+deal+"/stage", fmt.Sprintf(`{"stage":%q}`, elsewhere.Stage), nil)
			if _, err := chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID}); err != nil {
				t.Fatal(err)
			}
			break
		}
		tb.do(t, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`.column[data-stage=%q] .card.conflict[data-deal=%q]`, elsewhere.Stage, deal))))
		contains(t, "status", text(t, tb, "#status"), "Changed by someone else")
		lastEvent(t, s, deal, "deal.stage_changed.v1", elsewhere.Stage)
		tb.mu.Lock()
		seen := strings.Join(tb.problems, "\n")
		tb.mu.Unlock()
		if !strings.Contains(seen, "/stage answered 412") {
			t.Errorf("no 412 answered to the stage command; seen: %s", seen)
		}
		tb.forget() // the 412 was the point
	})

	t.Run("time slider", func(t *testing.T) {
		tb.open(t, "board")
		head := eval[int64](t, tb, `+document.querySelector('#freshness').dataset.head`)
		at := head / 2
		var past boardAnswer
		s.call(t, "GET", fmt.Sprintf("/v1/pipeline/board?limit=50&at_position=%d", at), "", &past)
		tb.waitRender(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const s = document.querySelector('#travel-slider');
			s.value = %d; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); })()`, at)))
		contains(t, "freshness", text(t, tb, "#freshness"), fmt.Sprintf("as known at position %s", grouped(at)))
		for _, st := range past.Data.Stages {
			got := eval[int](t, tb, fmt.Sprintf(`+document.querySelector('.column[data-stage=%q] [data-count]').dataset.count`, st.Stage))
			shown := text(t, tb, fmt.Sprintf(`.column[data-stage=%q] [data-count]`, st.Stage))
			if got != st.Count || shown != fmt.Sprintf("Deals: %d", st.Count) {
				t.Errorf("%s at position %d: shown %q, the API has %d", st.Stage, at, shown, st.Count)
			}
		}
		tb.waitRender(t, chromedp.Click(chromedp.CSS("#travel-live")))

		// A business date: the end of that day in the business zone (Asia/Tokyo).
		var asOf boardAnswer
		s.call(t, "GET", "/v1/pipeline/board?limit=50&as_of="+url.QueryEscape("2024-03-31T23:59:59+09:00"), "", &asOf)
		tb.do(t, chromedp.SetValue(chromedp.CSS("#travel-asof"), "2024-03-31"))
		tb.waitRender(t, chromedp.Click(chromedp.CSS("#travel-apply")))
		for _, st := range asOf.Data.Stages {
			if shown := text(t, tb, fmt.Sprintf(`.column[data-stage=%q] [data-count]`, st.Stage)); shown != fmt.Sprintf("Deals: %d", st.Count) {
				t.Errorf("%s as of 2024-03-31: shown %q, the API has %d", st.Stage, shown, st.Count)
			}
		}
		if n := eval[int](t, tb, `document.querySelectorAll('.card[draggable="true"]').length`); n != 0 {
			t.Error("cards can be moved while travelling")
		}
		tb.waitRender(t, chromedp.Click(chromedp.CSS("#travel-live")))
		tb.clean(t)
	})

	travel(t, s, tb, ready.CaughtUpTo, seeded)
	pickersAndForms(t, s, tb)
	parked(t, s, tb)

	t.Run("Japanese search", func(t *testing.T) {
		var created struct {
			ID       string `json:"id"`
			Position int64  `json:"position"`
		}
		s.call(t, "POST", "/v1/contacts", `{"name":"山田 花子","email":"hanako@example.jp","channel":"seminar","owner":"rep-console"}`, &created)
		var found struct {
			Data struct {
				Total int `json:"total"`
			} `json:"data"`
		}
		s.call(t, "GET", fmt.Sprintf("/v1/contacts?q=%s&min_position=%d", url.QueryEscape("山田"), created.Position), "", &found)
		if found.Data.Total != 1 {
			t.Fatalf("the API finds %d contacts for 山田", found.Data.Total)
		}
		tb.open(t, "contacts")
		tb.do(t, chromedp.SendKeys(chromedp.CSS("#contact-q"), "山田"),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#contact-results[data-query="山田"] tr[data-contact=%q]`, created.ID))))
		if total := eval[int](t, tb, `+document.querySelector('#contact-total').dataset.total`); total != 1 {
			t.Errorf("the console finds %d contacts for 山田, the API 1", total)
		}
		contains(t, "results", text(t, tb, "#contact-results"), "山田 花子")
		tb.clean(t)
	})

	t.Run("contact commands", func(t *testing.T) {
		tb.open(t, "contacts/"+contactID)
		tb.waitRender(t, chromedp.Steps(chromedp.SendKeys(chromedp.CSS("#form-touchpoint input[name=note]"), "called from the console"),
			chromedp.Click(chromedp.CSS("#form-touchpoint button[type=submit]"))))
		contains(t, "timeline", text(t, tb, "#timeline"), "touchpoint")
		tb.clean(t)
	})

	t.Run("Japanese text and yen", func(t *testing.T) {
		tb.open(t, "board")
		tb.waitRender(t, chromedp.SetValue(chromedp.CSS("#lang"), "ja"))
		_ = eval[chromedp.Void](t, tb, `document.querySelector('#lang').dispatchEvent(new Event('change'))`)
		tb.do(t, chromedp.WaitVisible(chromedp.CSS(`main[data-page="board"]`)))
		contains(t, "navigation", text(t, tb, "#nav"), "パイプライン", "コンタクト", "監査")
		amounts := eval[[]string](t, tb, `[...document.querySelectorAll('.card [data-amount]')].map(e => e.textContent)`)
		yen := 0
		for _, a := range amounts {
			if strings.ContainsAny(a, "¥￥") {
				yen++
				if strings.Contains(strings.SplitN(a, " ", 2)[0], ".") {
					t.Errorf("yen with decimals: %q", a)
				}
			}
		}
		if yen == 0 {
			t.Errorf("no yen amount among %q", amounts)
		}
		tb.screenshot(t, backend, "board-ja")
		tb.waitRender(t, chromedp.SetValue(chromedp.CSS("#lang"), "en"))
		_ = eval[chromedp.Void](t, tb, `document.querySelector('#lang').dispatchEvent(new Event('change'))`)
		tb.do(t, chromedp.WaitVisible(chromedp.CSS(`main[data-page="board"]`)))
		tb.clean(t)
	})

	t.Run("audit proof in the browser", func(t *testing.T) {
		var key struct {
			PublicKey string `json:"public_key"`
		}
		s.call(t, "GET", "/v1/audit/key", "", &key)
		tb.open(t, "audit")
		tb.do(t, chromedp.SetValue(chromedp.CSS("#audit-pinned"), key.PublicKey), chromedp.Click(chromedp.CSS("#audit-pin")),
			chromedp.Click(chromedp.CSS("#verify-checkpoint")),
			chromedp.WaitVisible(chromedp.CSS(`#checkpoint-result[data-verified="true"]`)),
			chromedp.SetValue(chromedp.CSS("#proof-stream"), "contact-"+contactID), chromedp.SetValue(chromedp.CSS("#proof-version"), "1"),
			chromedp.Click(chromedp.CSS("#proof-form button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS(`#proof-result[data-verified="true"]`)))
		// Another key: the same checkpoint must not verify.
		other := "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
		tb.do(t, chromedp.SetValue(chromedp.CSS("#audit-pinned"), other), chromedp.Click(chromedp.CSS("#audit-pin")),
			chromedp.Click(chromedp.CSS("#verify-checkpoint")),
			chromedp.WaitVisible(chromedp.CSS(`#checkpoint-result[data-verified="false"]`)),
			chromedp.Click(chromedp.CSS("#proof-form button[type=submit]")),
			chromedp.WaitVisible(chromedp.CSS(`#proof-result[data-verified="false"]`)))
		tb.clean(t)
	})

	t.Run("rebuild with progress", func(t *testing.T) {
		tb.open(t, "ops")
		tb.do(t, chromedp.Click(chromedp.CSS(`button[data-rebuild="tasks"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#rebuild-progress[data-state="done"]`)))
		tb.clean(t)
	})

	t.Run("a refused token returns to sign-in", func(t *testing.T) {
		tb.open(t, "board")
		_ = eval[chromedp.Void](t, tb, `sessionStorage.setItem('crm.token', 'not-a-valid-token-000')`)
		tb.do(t, chromedp.Evaluate[chromedp.Void](`location.hash = '#/contacts'`), chromedp.WaitVisible(chromedp.CSS("#signin")))
		contains(t, "sign-in", text(t, tb, "#signin-error"), "token was refused")
		if got := eval[string](t, tb, `sessionStorage.getItem('crm.token') || ''`); got != "" {
			t.Errorf("a refused token is kept: %q", got)
		}
		tb.forget() // the 401 was the point
		tb.signIn(t, adminToken)
	})
}

// lastEvent checks that the last event of a deal is typ, moving it to stage.
func lastEvent(t *testing.T, s *server, deal, typ, stage string) {
	t.Helper()
	var h historyAnswer
	s.call(t, "GET", "/v1/deals/"+deal+"/history", "", &h)
	if len(h.Events) == 0 {
		t.Fatalf("deal %s has no history", deal)
	}
	last := h.Events[len(h.Events)-1]
	if last.Type != typ || fmt.Sprint(last.Data["to"]) != stage {
		t.Errorf("last event of deal %s: %s %v, want %s to %s", deal, last.Type, last.Data, typ, stage)
	}
}

// grouped writes n with thousands separators, as en-US shows it.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
