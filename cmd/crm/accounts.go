package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/eventcrm/crm/cmd/crm/internal/config"
	"github.com/eventcrm/crm/commands"
	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/domain/account"
	"github.com/eventcrm/crm/domain/contact"
	"github.com/eventcrm/crm/eventstore"
	"github.com/eventcrm/crm/projections/directory"
)

// linkActor is the actor of the commands of link-by-company; with the idempotency keys
// derived from what they link, a second run replays instead of creating twice.
const linkActor = "crm-link-by-company"

// runAccounts runs `crm accounts link-by-company [--dry-run]`.
func runAccounts(ctx context.Context, cfg config.Config, args []string, stdout, _ io.Writer) error {
	if len(args) == 0 || args[0] != "link-by-company" {
		return usageError{"accounts takes a command: link-by-company"}
	}
	fs := flag.NewFlagSet("accounts link-by-company", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "print the proposals, change nothing")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (CRM_DATA_DIR)")
	if err := parseArgs(fs, args[1:], &cfg, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("accounts link-by-company takes no arguments, got %q", fs.Args())}
	}
	store, err := config.OpenSealedStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	props, err := readProposals(ctx, store)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, p := range props {
		if !*dryRun {
			if p, err = applyProposal(ctx, commands.NewHandler(store, commands.WithRequestKeys(store.Codec())), p); err != nil {
				return err
			}
		}
		if err := enc.Encode(p); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

// proposal is an account for the contacts that name one company and belong to no account.
type proposal struct {
	// Company is the name the account gets: the company's most frequent spelling.
	Company string `json:"company"`
	// AccountID is the account of that name that exists already; empty when one is created.
	AccountID string   `json:"account_id,omitempty"`
	Create    bool     `json:"create"`
	Contacts  []string `json:"contacts"`
	key       string
}

// companyKey is how company names are grouped: normalised as the directory searches them,
// spaces collapsed.
func companyKey(s string) string { return strings.Join(strings.Fields(directory.Normalize(s)), " ") }

// companies is the state of the log that link-by-company needs.
type companies struct {
	company  map[string]string // contact -> free-text company
	linked   map[string]bool   // contacts in an account, or merged
	accounts map[string]string // company key -> account id (the first of a name)
	names    map[string]string // account id -> name
}

func readProposals(ctx context.Context, store eventstore.Store) ([]proposal, error) {
	c := companies{company: map[string]string{}, linked: map[string]bool{}, accounts: map[string]string{}, names: map[string]string{}}
	for after := int64(0); ; {
		events, err := store.ReadAll(ctx, after, 10_000)
		if err != nil {
			return nil, fmt.Errorf("read the log: %w", err)
		}
		if len(events) == 0 {
			return c.proposals(), nil
		}
		for _, e := range events {
			if err := c.fold(e); err != nil {
				return nil, fmt.Errorf("event %d: %w", e.Position, err)
			}
		}
		after = events[len(events)-1].Position
	}
}

func (c *companies) fold(e eventstore.Event) error {
	switch e.Type {
	case contact.TypeCreated:
		return decodeInto(e, func(ev *contact.Created) { c.company[ev.ContactID] = ev.Company })
	case contact.TypeDetailsChanged:
		return decodeInto(e, func(ev *contact.DetailsChanged) {
			if ev.Company != nil {
				c.company[ev.ContactID] = *ev.Company
			}
		})
	case contact.TypeAccountLinked, contact.TypeMergedInto:
		return decodeInto(e, func(ev *struct {
			ContactID string `json:"contact_id"`
		}) {
			c.linked[ev.ContactID] = true
		})
	case contact.TypeAccountUnlinked:
		return decodeInto(e, func(ev *contact.AccountUnlinked) { delete(c.linked, ev.ContactID) })
	case account.TypeCreated:
		return decodeInto(e, func(ev *account.Created) { c.named(ev.AccountID, ev.Name) })
	case account.TypeDetailsChanged:
		return decodeInto(e, func(ev *account.DetailsChanged) {
			if ev.Name != nil {
				c.named(ev.AccountID, *ev.Name)
			}
		})
	}
	return nil
}

func (c *companies) named(id, name string) {
	if old, ok := c.names[id]; ok && c.accounts[companyKey(old)] == id {
		delete(c.accounts, companyKey(old))
	}
	c.names[id] = name
	if _, taken := c.accounts[companyKey(name)]; !taken {
		c.accounts[companyKey(name)] = id
	}
}

func decodeInto[T any](e eventstore.Event, f func(*T)) error {
	v := new(T)
	if err := domain.DecodeData(e.Data, v); err != nil {
		return fmt.Errorf("decode %s: %w", e.Type, err)
	}
	f(v)
	return nil
}

// proposals groups the contacts in no account by company, in the order of the keys.
func (c *companies) proposals() []proposal {
	groups := map[string]*proposal{}
	spellings := map[string]map[string]int{}
	for id, company := range c.company {
		key := companyKey(company)
		if key == "" || c.linked[id] {
			continue
		}
		p := groups[key]
		if p == nil {
			p = &proposal{key: key, AccountID: c.accounts[key]}
			p.Create = p.AccountID == ""
			groups[key], spellings[key] = p, map[string]int{}
		}
		p.Contacts = append(p.Contacts, id)
		spellings[key][strings.TrimSpace(company)]++
	}
	var out []proposal
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		p := groups[key]
		slices.Sort(p.Contacts)
		p.Company = mostFrequent(spellings[key])
		if !p.Create {
			p.Company = c.names[p.AccountID]
		}
		out = append(out, *p)
	}
	return out
}

// mostFrequent is the spelling used most, the first in byte order among equals.
func mostFrequent(counts map[string]int) string {
	var (
		best string
		most int
	)
	for s, n := range counts {
		if n > most || (n == most && s < best) {
			best, most = s, n
		}
	}
	return best
}

// applyProposal creates the account if needed and links the contacts, each command with an
// idempotency key derived from what it does.
func applyProposal(ctx context.Context, h *commands.Handler, p proposal) (proposal, error) {
	if p.Create {
		res, err := h.CreateAccount(ctx, commands.Meta{Actor: linkActor, IdempotencyKey: "account:" + p.key},
			commands.CreateAccount{Name: p.Company})
		if err != nil {
			return p, fmt.Errorf("create account %q: %w", p.Company, err)
		}
		p.AccountID = res.ID
	}
	for _, id := range p.Contacts {
		_, err := h.LinkContactToAccount(ctx, commands.Meta{Actor: linkActor, IdempotencyKey: "link:" + id + ":" + p.AccountID},
			commands.LinkContactToAccount{ContactID: id, AccountID: p.AccountID})
		if err != nil {
			return p, fmt.Errorf("link contact %s to %s: %w", id, p.AccountID, err)
		}
	}
	return p, nil
}
