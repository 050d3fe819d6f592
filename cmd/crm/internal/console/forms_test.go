package console_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// pick sets a picker (an input or a select) of the current page and waits for the page drawn
// for it.
func (tb *tab) pick(t testing.TB, sel, value string) {
	t.Helper()
	tb.waitRender(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const el = document.querySelector(%q);
		el.value = %q; el.dispatchEvent(new Event('change')); })()`, sel, value)))
}

// pickersAndForms: the journey map's cohort and channel pickers show the API's answer for
// them; a contact's forms record a touchpoint, a phase change with its reason and a task, each
// on the page after a reload and in the contact's history.
func pickersAndForms(t *testing.T, s *server, tb *tab) {
	t.Run("journey cohort and channel pickers", func(t *testing.T) {
		var customers struct {
			Data struct {
				List []struct {
					ID string `json:"contact_id"`
				} `json:"list"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/analytics/customers?limit=1", &customers)
		var j struct {
			Data struct {
				Cohort  string `json:"cohort"`
				Channel string `json:"channel"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/journeys/"+customers.Data.List[0].ID, &j)
		cohort, channel := j.Data.Cohort, j.Data.Channel
		var all, byCohort, both journeyMap
		s.fresh(t, "/v1/analytics/journey-map", &all)
		s.fresh(t, "/v1/analytics/journey-map?cohort="+cohort, &byCohort)
		s.fresh(t, fmt.Sprintf("/v1/analytics/journey-map?cohort=%s&channel=%s", cohort, channel), &both)
		if both.Data.ByPhase.Steps[0].Entered == 0 || fmt.Sprint(both.steps()) == fmt.Sprint(byCohort.steps()) || fmt.Sprint(byCohort.steps()) == fmt.Sprint(all.steps()) {
			t.Fatalf("cohort %s and channel %s do not narrow the journey map: the test would show nothing", cohort, channel)
		}
		tb.open(t, "journey")
		tb.pick(t, "#journey-cohort", cohort)
		sameTable(t, "journey of cohort "+cohort, tableOf(t, tb, "journey"), byCohort.steps())
		tb.pick(t, "#journey-channel", channel)
		if got := eval[string](t, tb, `(p => p.dataset.cohort + ' ' + p.dataset.channel)(document.querySelector('#journey-pickers'))`); got != cohort+" "+channel {
			t.Errorf("pickers show %q, want %s %s", got, cohort, channel)
		}
		sameTable(t, fmt.Sprintf("journey of cohort %s, channel %s", cohort, channel), tableOf(t, tb, "journey"), both.steps())
		sameTable(t, fmt.Sprintf("transitions of cohort %s, channel %s", cohort, channel), tableOf(t, tb, "transitions"), both.transitions())
		tb.pick(t, "#journey-cohort", "")
		tb.pick(t, "#journey-channel", "")
		sameTable(t, "journey of every contact", tableOf(t, tb, "journey"), all.steps())
		tb.clean(t)
	})

	t.Run("contacts channel and phase filters", func(t *testing.T) {
		var all, seminar, both struct {
			Data struct {
				Total    int `json:"total"`
				Contacts []struct {
					ID string `json:"contact_id"`
				} `json:"contacts"`
			} `json:"data"`
		}
		s.fresh(t, "/v1/contacts?limit=25", &all)
		s.fresh(t, "/v1/contacts?limit=25&channel=seminar", &seminar)
		s.fresh(t, "/v1/contacts?limit=25&channel=seminar&phase=lost", &both)
		if seminar.Data.Total == 0 || both.Data.Total == 0 || seminar.Data.Total == all.Data.Total || both.Data.Total == seminar.Data.Total {
			t.Fatalf("the filters do not narrow the contacts (%d, %d, %d): the test would show nothing", all.Data.Total, seminar.Data.Total, both.Data.Total)
		}
		shown := func() (int, []string) {
			return eval[int](t, tb, `+document.querySelector('#contact-total').dataset.total`),
				eval[[]string](t, tb, `[...document.querySelectorAll('#contact-results tr[data-contact]')].map(tr => tr.dataset.contact)`)
		}
		ids := func(list []struct {
			ID string `json:"contact_id"`
		}) []string {
			var out []string
			for _, c := range list {
				out = append(out, c.ID)
			}
			return out
		}
		tb.open(t, "contacts")
		for _, step := range []struct {
			sel, value string
			total      int
			ids        []string
		}{{"#contact-channel", "seminar", seminar.Data.Total, ids(seminar.Data.Contacts)}, {"#contact-phase", "lost", both.Data.Total, ids(both.Data.Contacts)},
			{"#contact-phase", "", seminar.Data.Total, ids(seminar.Data.Contacts)}, {"#contact-channel", "", all.Data.Total, ids(all.Data.Contacts)}} {
			tb.do(t, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { document.querySelector('#contact-results').dataset.query = 'waiting';
				const el = document.querySelector(%q); el.value = %q; el.dispatchEvent(new Event('change')); })()`, step.sel, step.value)),
				chromedp.WaitVisible(chromedp.CSS(`#contact-results[data-query=""]`)))
			if total, got := shown(); total != step.total || fmt.Sprint(got) != fmt.Sprint(step.ids) {
				t.Errorf("%s = %q: %d contacts shown (%v), the API has %d (%v)", step.sel, step.value, total, got, step.total, step.ids)
			}
		}
		tb.clean(t)
	})

	t.Run("a contact's forms", func(t *testing.T) {
		var created struct {
			ID       string `json:"id"`
			Position int64  `json:"position"`
		}
		s.call(t, "POST", "/v1/contacts", `{"name":"佐藤 健","email":"ken.sato@example.jp","channel":"web_form","owner":"rep-console"}`, &created)
		id := created.ID
		// Created by another client: the page is opened once the read models have it.
		for _, path := range []string{"/v1/journeys/" + id, "/v1/contacts/" + id + "/timeline", "/v1/contacts/" + id + "/value", "/v1/contacts/" + id + "/score"} {
			s.call(t, "GET", fmt.Sprintf("%s?min_position=%d", path, created.Position), "", nil)
		}
		tb.open(t, "contacts/"+id)
		if got := eval[string](t, tb, `document.querySelector('#contact-phase-now').dataset.value`); got != "lead" {
			t.Fatalf("a new contact in phase %s", got)
		}
		steps := []struct {
			name, form string
			fill       chromedp.Action[chromedp.Void]
			event      string
			data       map[string]string
			shown      string
		}{
			{"touchpoint", "#form-touchpoint", chromedp.Steps(chromedp.SetValue(chromedp.CSS("#form-touchpoint select[name=kind]"), "meeting"),
				chromedp.SendKeys(chromedp.CSS("#form-touchpoint input[name=note]"), "met at the Osaka office")),
				"contact.touchpoint_recorded.v1", map[string]string{"kind": "meeting", "note": "met at the Osaka office"}, "meeting: met at the Osaka office"},
			{"phase", "#form-phase", chromedp.Steps(chromedp.SetValue(chromedp.CSS("#form-phase select[name=phase]"), "discovery"),
				chromedp.SendKeys(chromedp.CSS("#form-phase input[name=reason]"), "budget confirmed")),
				"contact.phase_changed.v1", map[string]string{"from": "lead", "to": "discovery", "reason": "budget confirmed"}, "lead → discovery: budget confirmed"},
			{"task", "#form-task", chromedp.Steps(chromedp.SendKeys(chromedp.CSS("#form-task input[name=title]"), "send the quote"),
				chromedp.SetValue(chromedp.CSS("#form-task input[name=due]"), "2027-01-15")),
				"contact.task_scheduled.v1", map[string]string{"title": "send the quote", "due": "2027-01-15", "assignee": "admin"}, "send the quote, Due 01/15/2027"},
		}
		for _, st := range steps {
			tb.do(t, st.fill)
			tb.waitRender(t, chromedp.Click(chromedp.CSS(st.form+" button[type=submit]")))
			contains(t, st.name+": status", text(t, tb, "#status"), "Saved.")
			tb.waitRender(t, chromedp.Reload())
			tb.do(t, chromedp.WaitVisible(chromedp.CSS(`main[data-page="contacts/`+id+`"]`)))
			shown := eval[string](t, tb, fmt.Sprintf(`[...document.querySelectorAll('#timeline li[data-event=%q]')].map(li => li.textContent).join('\n')`, st.event))
			contains(t, st.name+": timeline after a reload", shown, st.shown)
			var h struct {
				Events []struct {
					Type string         `json:"type"`
					Data map[string]any `json:"data"`
				} `json:"events"`
			}
			s.call(t, "GET", "/v1/contacts/"+id+"/history", "", &h)
			last := h.Events[len(h.Events)-1]
			if last.Type != st.event {
				t.Errorf("%s: the contact's last event is %s, want %s", st.name, last.Type, st.event)
			}
			for k, v := range st.data {
				if fmt.Sprint(last.Data[k]) != v {
					t.Errorf("%s: %s is %v in the history, want %s", st.name, k, last.Data[k], v)
				}
			}
		}
		if got := eval[string](t, tb, `document.querySelector('#contact-phase-now').dataset.value`); got != "discovery" {
			t.Errorf("phase after a reload: %s, want discovery", got)
		}
		contains(t, "tasks after a reload", text(t, tb, `table[data-table="tasks"]`), "send the quote", "01/15/2027")
		tb.clean(t)
	})
}
