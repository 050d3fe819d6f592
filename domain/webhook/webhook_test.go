package webhook_test

import (
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/domaintest"
	"github.com/eventcrm/crm/domain/webhook"
)

const id = "w-1"

func created() *webhook.Created {
	return &webhook.Created{SubscriptionID: id, URL: "https://hooks.example/crm", EventTypes: []string{"deal.*"}, Description: "chat"}
}

func ptr[T any](v T) *T { return &v }

func TestDecisions(t *testing.T) {
	t.Parallel()
	disabled := &webhook.Disabled{SubscriptionID: id, Reason: "maintenance"}
	deleted := &webhook.Deleted{SubscriptionID: id}
	domaintest.Run(t, []domaintest.Case[webhook.Subscription]{
		{Name: "a subscription is created enabled",
			When: func(s *webhook.Subscription) ([]domain.Event, error) {
				return s.Create(id, webhook.Settings{URL: "https://hooks.example/crm", EventTypes: []string{"deal.*"}, Description: "chat"})
			},
			Then: []domain.Event{created()}},
		{Name: "no event type is invalid",
			When: func(s *webhook.Subscription) ([]domain.Event, error) {
				return s.Create(id, webhook.Settings{URL: "https://hooks.example/crm"})
			},
			WantCode: domain.CodeInvalid, WantMessage: "event_types"},
		{Name: "created twice is a conflict", Given: []domain.Event{created()},
			When: func(s *webhook.Subscription) ([]domain.Event, error) {
				return s.Create(id, webhook.Settings{URL: "https://x.example", EventTypes: []string{"*"}})
			},
			WantCode: domain.CodeConflict},
		{Name: "a change records only what changes", Given: []domain.Event{created()},
			When: func(s *webhook.Subscription) ([]domain.Event, error) {
				return s.Change(webhook.Change{URL: ptr("https://hooks.example/v2"), EventTypes: &[]string{"deal.*"}, Description: ptr("chat")})
			},
			Then: []domain.Event{&webhook.Changed{SubscriptionID: id, URL: ptr("https://hooks.example/v2")}}},
		{Name: "a change of nothing is refused", Given: []domain.Event{created()},
			When: func(s *webhook.Subscription) ([]domain.Event, error) {
				return s.Change(webhook.Change{Description: ptr("chat")})
			},
			WantCode: domain.CodeRefused},
		{Name: "disabled with its reason", Given: []domain.Event{created()},
			When: func(s *webhook.Subscription) ([]domain.Event, error) { return s.Disable(false, "maintenance") },
			Then: []domain.Event{disabled}},
		{Name: "disabled twice is refused", Given: []domain.Event{created(), disabled},
			When:     func(s *webhook.Subscription) ([]domain.Event, error) { return s.Disable(true, "failing") },
			WantCode: domain.CodeRefused},
		{Name: "a disabled one is enabled", Given: []domain.Event{created(), disabled},
			When: func(s *webhook.Subscription) ([]domain.Event, error) { return s.Enable() },
			Then: []domain.Event{&webhook.Enabled{SubscriptionID: id}}},
		{Name: "an enabled one is not enabled again", Given: []domain.Event{created()},
			When:     func(s *webhook.Subscription) ([]domain.Event, error) { return s.Enable() },
			WantCode: domain.CodeRefused},
		{Name: "deleted", Given: []domain.Event{created()},
			When: func(s *webhook.Subscription) ([]domain.Event, error) { return s.Delete() },
			Then: []domain.Event{deleted}},
		{Name: "a deleted one is not found", Given: []domain.Event{created(), deleted},
			When:     func(s *webhook.Subscription) ([]domain.Event, error) { return s.Enable() },
			WantCode: domain.CodeNotFound},
	})
}
