package catalog_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/catalog"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/domain/deal"
	"github.com/eventcrm/crm/domain/settings"
	"github.com/eventcrm/crm/domain/webhook"
)

// update rewrites the golden files from the samples. Review the diff before committing: a
// changed golden file means stored events would no longer decode as they did.
var update = flag.Bool("update", false, "rewrite testdata/<event type>.json from the samples")

func ptr[T any](v T) *T { return &v }

// samples holds one filled-in value of every registered event type, every field set, so a
// renamed or retyped field changes the golden JSON.
func samples() []domain.Event {
	return []domain.Event{
		&contact.Created{
			ContactID: "c-0001", Name: contact.PersonName{Family: "田中", Given: "愛子", FamilyReading: "タナカ", GivenReading: "アイコ"}, Email: "aiko@tanaka.example", Phone: "+81 3-1234-5678",
			Company: "Tanaka Shoji", Title: "Head of Purchasing", Channel: contact.ChannelExhibition, Owner: "alice", Segment: "smb",
		},
		&contact.DetailsChanged{
			ContactID: "c-0001", Name: &contact.PersonName{Family: "Tanaka", Given: "Aiko", FamilyReading: "タナカ", GivenReading: "アイコ"}, Email: ptr("a.tanaka@tanaka.example"), Phone: ptr("03-1234-0000"),
			Company: ptr("Tanaka Holdings"), Title: ptr("CFO"), Segment: ptr("enterprise"),
		},
		&contact.OwnerChanged{ContactID: "c-0001", From: "alice", To: "bob"},
		&contact.PhaseChanged{ContactID: "c-0001", From: contact.Discovery, To: contact.Lead, Rule: contact.RuleBackward, Reason: "the buyer left the company"},
		&contact.TouchpointRecorded{ContactID: "c-0001", TouchpointID: "tp-0001", Kind: contact.KindMeeting, Note: "demo of the reporting module", Phase: contact.Proposal},
		&contact.PurchaseRecorded{ContactID: "c-0001", PurchaseID: "p-0001", Amount: domain.Money{Amount: 1_200_000, Currency: "JPY"}, Product: "CRM Suite", Plan: "pro-annual"},
		&contact.SurveyRecorded{ContactID: "c-0001", SurveyID: "s-0001", NPS: 9, Comment: "great onboarding"},
		&contact.UsageReported{ContactID: "c-0001", PercentOfLimit: 85},
		&contact.TaskScheduled{ContactID: "c-0001", TaskID: "t-0001", Title: "Propose the upgrade", Due: "2025-04-15", Assignee: "carol"},
		&contact.TaskCompleted{ContactID: "c-0001", TaskID: "t-0001"},
		&contact.OptedOut{ContactID: "c-0001", Channel: contact.ConsentPostal},
		&contact.NoteAdded{ContactID: "c-0001", NoteID: "n-0001", Text: "予算は4月に確定", Author: "alice"},
		&contact.TaskRescheduled{ContactID: "c-0001", TaskID: "t-0001", From: "2025-04-15", To: "2025-04-22"},
		&contact.TaskReassigned{ContactID: "c-0001", TaskID: "t-0001", From: "carol", To: "dave"},
		&contact.TaskCancelled{ContactID: "c-0001", TaskID: "t-0001", Reason: "the customer already upgraded"},
		&contact.AccountLinked{ContactID: "c-0001", AccountID: "a-0002", FromAccountID: "a-0001"},
		&contact.AccountUnlinked{ContactID: "c-0001", AccountID: "a-0002"},
		&contact.MergedInto{ContactID: "c-0002", Into: "c-0001", CrossAccount: true},
		&contact.DuplicateAbsorbed{ContactID: "c-0001", DuplicateID: "c-0002"},
		&contact.Erased{ContactID: "c-0001"},
		&contact.BecameHot{ContactID: "c-0001", TouchpointID: "tp-0001", Score: 52.38, Threshold: 50},
		&contact.ReminderFired{ContactID: "c-0001", Kind: contact.ReminderDormant, TaskID: "t-0002", Due: "2025-07-01", Assignee: "alice",
			LastTouchpointAt: "2025-03-31T09:00:00Z", FireAt: "2025-06-29T09:00:00Z"},
		&deal.Opened{
			DealID: "d-0001", ContactID: "c-0001", Title: "CRM rollout, 50 seats", Amount: domain.Money{Amount: 3_000_000, Currency: "JPY"},
			Owner: "alice", ExpectedClose: "2025-06-30", Stage: deal.StageQualification,
		},
		&deal.StageChanged{DealID: "d-0001", From: deal.StageProposal, To: deal.StageNegotiation},
		&deal.Won{DealID: "d-0001", ContactID: "c-0001", FromStage: deal.StageNegotiation, Amount: domain.Money{Amount: 2_750_000, Currency: "JPY"}, ClosedAt: "2025-06-27"},
		&deal.Lost{DealID: "d-0001", ContactID: "c-0001", FromStage: deal.StageProposal, Reason: deal.ReasonCompetitor, Note: "chose a cheaper vendor", Amount: domain.Money{Amount: 3_000_000, Currency: "JPY"}},
		&deal.Reopened{DealID: "d-0001", From: deal.StageLost, To: deal.StageProposal},
		&deal.TitleChanged{DealID: "d-0001", From: "CRM rollout, 50 seats", To: "CRM rollout, 60 seats"},
		&deal.AmountChanged{DealID: "d-0001", From: domain.Money{Amount: 3_000_000, Currency: "JPY"}, To: domain.Money{Amount: 2_500_000, Currency: "USD"}},
		&deal.ExpectedCloseChanged{DealID: "d-0001", From: "2025-06-30", To: "2025-07-31"},
		&deal.OwnerChanged{DealID: "d-0001", From: "alice", To: "bob"},
		&account.Created{
			AccountID: "a-0001", Name: "田中商事株式会社", Domain: "tanaka.example", Industry: "wholesale", Size: account.Size50to249,
			Address: &account.Address{Street: "1-2-3 Marunouchi", City: "Chiyoda-ku", Region: "Tokyo", PostalCode: "100-0005", Country: "JP"},
		},
		&settings.LeadScoringChanged{LeadScoring: settings.LeadScoring{
			Weights:      map[contact.TouchpointKind]int{contact.KindMeeting: 20, contact.KindInquiry: 25},
			Rules:        []settings.AttributeRule{{Field: settings.FieldTitle, Match: settings.MatchContains, Value: "head", Points: 10}},
			HalfLifeDays: 30, HotThreshold: 50,
		}},
		&settings.StageProbabilitiesChanged{Probabilities: map[deal.Stage]int{deal.StageQualification: 5, deal.StageNeedsAnalysis: 20, deal.StageProposal: 50, deal.StageNegotiation: 80}},
		&settings.LostReasonsChanged{Reasons: []deal.LostReason{deal.ReasonPrice, deal.ReasonCompetitor, deal.ReasonOther}},
		&settings.ProcessesChanged{Processes: settings.Processes{HotLeadHandoff: true, NPSFollowUp: true, SupportTicket: true,
			Onboarding: true, TaskReminders: true, Dormancy: true, DormantDays: 60}},
		&account.DetailsChanged{
			AccountID: "a-0001", Name: ptr("Tanaka Holdings"), Domain: ptr("tanaka-hd.example"), Industry: ptr("trading"), Size: ptr(account.Size250to999),
			Address: &account.Address{Street: "4-5-6 Umeda", City: "Kita-ku", Region: "Osaka", PostalCode: "530-0001", Country: "JP"},
		},
		&webhook.Created{SubscriptionID: "w-0001", URL: "https://hooks.example/crm", EventTypes: []string{"contact.*", "deal.won.v1"},
			Description: "marketing tool"},
		&webhook.Changed{SubscriptionID: "w-0001", URL: ptr("https://hooks.example/crm2"), EventTypes: &[]string{"*"}, Description: ptr("chat")},
		&webhook.Disabled{SubscriptionID: "w-0001", Automatic: true, Reason: "failing since 2025-04-01T09:00:00Z: the receiver answered 503"},
		&webhook.Enabled{SubscriptionID: "w-0001"},
		&webhook.Deleted{SubscriptionID: "w-0001"},
	}
}

func goldenPath(eventType string) string { return filepath.Join("testdata", eventType+".json") }

// TestGolden freezes the JSON of every event type: compact JSON and a trailing newline.
func TestGolden(t *testing.T) {
	t.Parallel()
	registry := catalog.Registry()
	for _, sample := range samples() {
		name := sample.EventType()
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := domain.Encode(sample)
			if err != nil {
				t.Fatal(err)
			}
			got := append(data, '\n')
			path := goldenPath(name)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./domain/catalog -update to create it)", err)
			}
			if !bytes.Equal(got, golden) {
				t.Errorf("JSON of %s changed; stored events would decode differently.\ngot    %s\ngolden %s\n(if intended, add a new event version, or run with -update and review the diff)", name, got, golden)
			}

			decoded, err := registry.Decode(name, bytes.TrimSuffix(golden, []byte("\n")))
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			if !reflect.DeepEqual(decoded, sample) {
				t.Errorf("golden JSON decodes to %#v; want %#v", decoded, sample)
			}
			again, err := domain.Encode(decoded)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(append(again, '\n'), golden) {
				t.Errorf("decode then encode gives %s; want %s", again, golden)
			}
		})
	}
}

// TestEveryTypeHasASampleAndGoldenFile makes a new event type without a golden file fail, and a
// golden file of an event type no longer registered too.
func TestEveryTypeHasASampleAndGoldenFile(t *testing.T) {
	if *update {
		t.Skip("golden files are being rewritten by TestGolden, in parallel")
	}
	t.Parallel()
	names := catalog.Registry().Names()
	var sampled []string
	for _, s := range samples() {
		sampled = append(sampled, s.EventType())
	}
	slices.Sort(sampled)
	if !slices.Equal(sampled, names) {
		t.Errorf("samples cover %v;\nregistry has %v", sampled, names)
	}
	for _, name := range names {
		if _, err := os.Stat(goldenPath(name)); err != nil {
			t.Errorf("no golden file for %s: %v", name, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if !slices.Contains(names, name) {
			t.Errorf("golden file %s is of no registered event type", f)
		}
	}
}

// TestSamplesAreFilledIn checks that every field of every sample is set, so the golden files
// freeze every field name.
func TestSamplesAreFilledIn(t *testing.T) {
	t.Parallel()
	for _, s := range samples() {
		for _, field := range zeroFields(reflect.ValueOf(s).Elem(), "") {
			t.Errorf("sample %s: field %s is not set", s.EventType(), field)
		}
	}
}

func zeroFields(v reflect.Value, prefix string) []string {
	var zero []string
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		switch {
		case f.IsZero():
			zero = append(zero, name)
		case f.Kind() == reflect.Pointer && f.Elem().Kind() == reflect.Struct:
			zero = append(zero, zeroFields(f.Elem(), name+".")...)
		case f.Kind() == reflect.Struct:
			zero = append(zero, zeroFields(f, name+".")...)
		}
	}
	return zero
}

var eventName = regexp.MustCompile(`^[a-z]+\.[a-z_]+\.v[0-9]+$`)

func TestNames(t *testing.T) {
	t.Parallel()
	names := catalog.Registry().Names()
	if len(names) == 0 {
		t.Fatal("no event types registered")
	}
	if !slices.IsSorted(names) {
		t.Errorf("Names() is not sorted: %v", names)
	}
	for _, name := range names {
		if !eventName.MatchString(name) {
			t.Errorf("event type %q does not match %s", name, eventName)
		}
		stream, _, _ := strings.Cut(name, ".")
		if stream != "contact" && stream != "deal" && stream != "account" && stream != "settings" && stream != "webhook" {
			t.Errorf("event type %q is not of a contact, deal, account, settings or webhook stream", name)
		}
	}
}

func TestNewAndDecode(t *testing.T) {
	t.Parallel()
	registry := catalog.Registry()
	tests := []struct {
		name      string
		eventType string
		data      string
		wantErr   string
	}{
		{name: "unknown type", eventType: "contact.deleted.v1", data: `{}`, wantErr: `unknown event type "contact.deleted.v1"`},
		{name: "known name, unknown version", eventType: "contact.created.v3", data: `{}`, wantErr: `unknown event type "contact.created.v3"`},
		{name: "empty type", eventType: "", data: `{}`, wantErr: `unknown event type ""`},
		{name: "malformed JSON", eventType: contact.TypeCreated, data: `{"contact_id":`, wantErr: "decode contact.created.v2: "},
		{name: "field of the wrong type", eventType: contact.TypeSurveyRecorded, data: `{"nps":"nine"}`, wantErr: "decode contact.survey_recorded.v1: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := registry.Decode(tc.eventType, []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Decode = %v, %v; want an error containing %q", e, err, tc.wantErr)
			}
			if e != nil {
				t.Errorf("Decode returned %v along with an error", e)
			}
		})
	}
	t.Run("New returns a fresh zero value of the registered type", func(t *testing.T) {
		t.Parallel()
		for _, s := range samples() {
			a, err := registry.New(s.EventType())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := registry.New(s.EventType())
			if reflect.TypeOf(a) != reflect.TypeOf(s) || !reflect.ValueOf(a).Elem().IsZero() {
				t.Errorf("New(%s) = %#v; want a zero %T", s.EventType(), a, s)
			}
			if a == b {
				t.Errorf("New(%s) returned the same pointer twice", s.EventType())
			}
		}
	})
}
