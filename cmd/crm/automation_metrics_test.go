package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// `crm serve` with CRM_METRICS_ADDR reports its process managers and webhook deliveries. A
// contact (lead) and a deal, a webhook subscription to deal.won.v1 on a local receiver
// answering 204, then the deal won. Hand count: the deal-won process reacts to one event
// (deal.won) and acts once (lead -> won); the onboarding process acts once (its task); no
// other process sees an event of its kind (no touchpoint, survey), so their series stay 0;
// no deadline is due (the onboarding task is due in 7 days), so no reminder fires; the
// webhook is delivered once on its first attempt, so one latency sample; one subscription,
// enabled.
func TestServeAutomationMetrics(t *testing.T) {
	t.Parallel()
	var received atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	metricsAddr := freeAddr(t)
	s := serve(t, map[string]string{"CRM_DATA_DIR": t.TempDir(), "CRM_LOG_LEVEL": "warn", "CRM_METRICS_ADDR": metricsAddr,
		"CRM_WEBHOOK_ALLOW_PRIVATE": "true"})
	defer s.stop()

	s.call("POST", "/v1/webhooks", `{"url":"`+receiver.URL+`/hook","event_types":["deal.won.v1"]}`)
	c := s.call("POST", "/v1/contacts", `{"name":"Ren Ito","channel":"web_form","owner":"rep-ito"}`)["id"].(string)
	d := s.call("POST", "/v1/deals", `{"contact_id":"`+c+`","title":"Annual plan","amount":120000,"currency":"JPY"}`)["id"].(string)
	s.call("POST", "/v1/deals/"+d+"/win", `{}`)

	var m map[string]*dto.MetricFamily
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = scrape(t, metricsAddr)
		won, _ := value(m, "crm_process_events_total", "process", "process:deal_won_contact_phase", "outcome", "acted")
		onboarding, _ := value(m, "crm_process_events_total", "process", "process:onboarding_follow_up", "outcome", "acted")
		delivered, _ := value(m, "crm_webhook_deliveries_total", "outcome", "delivered")
		if won == 1 && onboarding == 1 && delivered == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deal-won acted %v, onboarding acted %v, webhook delivered %v", won, onboarding, delivered)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // time for a wrong second count to appear
	m = scrape(t, metricsAddr)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"crm_process_events_total", []string{"process", "process:deal_won_contact_phase", "outcome", "acted"}, 1},
		{"crm_process_events_total", []string{"process", "process:deal_won_contact_phase", "outcome", "skipped"}, 0},
		{"crm_process_events_total", []string{"process", "process:deal_won_contact_phase", "outcome", "failed"}, 0},
		{"crm_process_events_total", []string{"process", "process:onboarding_follow_up", "outcome", "acted"}, 1},
		{"crm_process_events_total", []string{"process", "process:lead_score_hot", "outcome", "acted"}, 0},
		{"crm_process_events_total", []string{"process", "process:lead_score_hot", "outcome", "skipped"}, 0},
		{"crm_process_events_total", []string{"process", "process:nps_follow_up", "outcome", "skipped"}, 0},
		{"crm_reminders_fired_total", []string{"kind", "task_due"}, 0},
		{"crm_reminders_fired_total", []string{"kind", "dormant"}, 0},
		{"crm_webhook_deliveries_total", []string{"outcome", "delivered"}, 1},
		{"crm_webhook_deliveries_total", []string{"outcome", "failed"}, 0},
		{"crm_webhook_delivery_latency_seconds", nil, 1},
		{"crm_webhook_subscriptions", []string{"state", "enabled"}, 1},
		{"crm_webhook_subscriptions", []string{"state", "disabled"}, 0},
	} {
		got, ok := value(m, tc.name, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if n := received.Load(); n != 1 {
		t.Errorf("the receiver got %d requests, want 1", n)
	}
}
