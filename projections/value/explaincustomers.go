package value

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// Figures of the parts of a customer's figures: its purchases, the first, second and last
// named as such where the figure is one of them.
const (
	figFirstPurchase  = "first_purchase"
	figSecondPurchase = "second_purchase"
)

// customerFigures are the figures of a customer (Customer) that can be explained, and the
// purchases each is made of.
var customerFigures = map[string]string{
	"orders": "all", "median_days_between": "all", "f": "all", "segment": "all",
	"first_purchase": "first", "second_purchase": "second", "days_to_second": "first and second",
	"last_purchase": "last", "recency_days": "last", "r": "last", "m": "best currency",
}

// currencyFigures are the figures of a customer's currency (CurrencyValue): each is made of
// the purchases in that currency.
var currencyFigures = []string{"orders", "revenue", "ltv", "average_order_value", "monetary_score"}

// ExplainCustomers answers the parts of the figure of the customers list at path, as of asOf,
// a page of limit at a time from cursor. The paths: customers (every customer scored, as
// RFM's customers: its purchases at or before as_of, the last counting the customer), and
// list.<customer>.<figure> for a customer of the list (see explainCustomer).
func ExplainCustomers(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	if err := checkPage(limit, cursor); err != nil {
		return explain.Answer{}, err
	}
	if path == "customers" {
		return ExplainRFM(ctx, db, t, asOf, path, limit, cursor)
	}
	id, figure, currency, ok := customerPath(path, "list.")
	if !ok {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the customers (customers, list.<customer>.<figure>)", path)
	}
	var parts []explain.Part
	err := ask(ctx, db, t, zone, asOf, func(q *query) error {
		var err error
		parts, err = q.customerParts(ctx, path, id, figure, currency)
		return err
	})
	if err != nil {
		return explain.Answer{}, err
	}
	return pageOf(path, asOf, parts, limit, cursor)
}

// ExplainValue answers the parts of the figure of a contact's value at path, as of asOf, a
// page of limit at a time from cursor. The paths: customers (as for the customers list) and
// customer.<figure> (see explainCustomer), of the customer the contact counts for. An unknown
// contact is a domain error with code not found.
func ExplainValue(ctx context.Context, db *projections.DB, t projections.Tables, zone *time.Location, contactID string, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	if err := checkPage(limit, cursor); err != nil {
		return explain.Answer{}, err
	}
	rest, ok := strings.CutPrefix(path, "customer.")
	before, figure, currency, isFigure := customerFigure(strings.Split(rest, "."))
	if path != "customers" && (!ok || !isFigure || len(before) > 0) {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of a contact's value (customers, customer.<figure>)", path)
	}
	var parts []explain.Part
	err := ask(ctx, db, t, zone, asOf, func(q *query) error {
		var (
			customerID string
			created    int64
		)
		err := q.row(ctx, `SELECT customer_id, created_at FROM `+q.t.Name(tableContacts)+`
			WHERE contact_id = ?`, contactID).Scan(&customerID, &created)
		if err == sql.ErrNoRows || err == nil && created > q.asOf {
			return domain.NotFound("contact %s", contactID)
		}
		if err != nil {
			return err
		}
		if path == "customers" {
			parts, err = q.rfmParts(ctx, rfmKeep{customer: func(int, int, string) bool { return true }})
			return err
		}
		parts, err = q.customerParts(ctx, path, customerID, figure, currency)
		return err
	})
	if err != nil {
		return explain.Answer{}, err
	}
	return pageOf(path, asOf, parts, limit, cursor)
}

// customerPath reads prefix<customer>.<figure> or prefix<customer>.currencies.<currency>.<figure>.
func customerPath(path, prefix string) (id, figure, currency string, ok bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return "", "", "", false
	}
	before, figure, currency, ok := customerFigure(strings.Split(rest, "."))
	return strings.Join(before, "."), figure, currency, ok && len(before) > 0
}

// customerFigure reads <figure> or currencies.<currency>.<figure> at the end of p, and
// answers the segments before it.
func customerFigure(p []string) (before []string, figure, currency string, ok bool) {
	n := len(p)
	if n >= 3 && p[n-3] == "currencies" && p[n-2] != "" && slices.Contains(currencyFigures, p[n-1]) {
		return p[:n-3], p[n-1], p[n-2], true
	}
	if _, ok := customerFigures[p[n-1]]; ok {
		return p[:n-1], p[n-1], "", true
	}
	return nil, "", "", false
}

// customerParts are the parts of a figure of a customer as of the question (explainCustomer):
// the customer's purchases at or before as_of that make it up, each counting 1 (an order),
// with the contact who made it (the customer, or a contact merged into it), its event, amount
// and currency, the bucket the customer. Of a figure of a currency, the purchases in that
// currency; of orders, f, segment and the median of days between purchases, every purchase;
// of the first, second and last purchase (and days to the second, recency and r), those; of
// m, the purchases in the currencies whose monetary score is m. A customer without a purchase
// by as_of, a currency it did not buy in, or a second purchase it has not made, is an invalid
// path.
func (q *query) customerParts(ctx context.Context, path, customerID, figure, currency string) ([]explain.Part, error) {
	c, _, err := q.customer(ctx, customerID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, domain.Invalid("explain", "%q: %s is not a customer as of %s", path, customerID, timeOf(q.asOf).Format(time.RFC3339))
	}
	var ps []purchaseRow
	err = q.each(ctx, "purchases", `SELECT contact_id, occurred_at, position, amount, currency, event_id FROM `+q.t.Name(tablePurchases)+`
		WHERE customer_id = ? AND occurred_at <= ? ORDER BY occurred_at, position`, []any{customerID, q.asOf}, func(rows *sql.Rows) error {
		var p purchaseRow
		err := rows.Scan(&p.contactID, &p.occurredAt, &p.position, &p.amount, &p.currency, &p.eventID)
		ps = append(ps, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	best := map[string]bool{}
	for _, cv := range c.Currencies {
		best[cv.Currency] = cv.MonetaryScore == c.M
	}
	part := func(p purchaseRow, fig string) explain.Part {
		return explain.Part{Entity: p.contactID, Figure: fig, Position: p.position, EventID: p.eventID, Bucket: customerID,
			At: p.occurredAt, Count: 1, Amount: p.amount, Currency: p.currency}
	}
	var parts []explain.Part
	last := len(ps) - 1
	for i, p := range ps {
		switch {
		case currency != "":
			if p.currency == currency {
				parts = append(parts, part(p, figPurchase))
			}
		case customerFigures[figure] == "all":
			parts = append(parts, part(p, figPurchase))
		case customerFigures[figure] == "best currency":
			if best[p.currency] {
				parts = append(parts, part(p, figPurchase))
			}
		case i == 0 && (figure == "first_purchase" || figure == "days_to_second"):
			parts = append(parts, part(p, figFirstPurchase))
		case i == 1 && (figure == "second_purchase" || figure == "days_to_second"):
			parts = append(parts, part(p, figSecondPurchase))
		case i == last && customerFigures[figure] == "last":
			parts = append(parts, part(p, figLastPurchase))
		}
	}
	switch {
	case currency != "" && len(parts) == 0:
		return nil, domain.Invalid("explain", "%q: %s bought nothing in %s by %s", path, customerID, currency, timeOf(q.asOf).Format(time.RFC3339))
	case (figure == "second_purchase" || figure == "days_to_second") && len(ps) < 2:
		return nil, domain.Invalid("explain", "%q: %s has no second purchase by %s", path, customerID, timeOf(q.asOf).Format(time.RFC3339))
	}
	return parts, nil
}
