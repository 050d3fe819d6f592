package value

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// Figures of the repeat rate's parts: a customer's first and second purchase, by cohort.
const (
	figCohort = "cohort/"
	figRepeat = "repeat/"
)

// orderFigure is the figure of the parts of the purchases of a month of the year (1-12).
func orderFigure(month int64) string { return fmt.Sprintf("order/%02d", month) }

// ExplainSeasonality answers the parts of the figure of the seasonality at path: the
// purchases made at or before asOf in a month of the year, each with the contact who made it
// and its event, a page of limit at a time from cursor (explain.DefaultLimit when 0, at most
// explain.MaxLimit). The paths: months.<month>.orders (month 1-12),
// months.<month>.currencies.<currency>.orders and .revenue.
func ExplainSeasonality(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	bad := domain.Invalid("explain", "%q is not the path of a figure of the seasonality (see the documentation)", path)
	p := strings.Split(path, ".")
	if len(p) < 3 || p[0] != "months" {
		return explain.Answer{}, bad
	}
	month, err := strconv.Atoi(p[1])
	if err != nil || month < 1 || month > 12 || p[1] != strconv.Itoa(month) {
		return explain.Answer{}, bad
	}
	q := explain.Question{Figures: []string{orderFigure(int64(month))}, AsOf: asOf, Limit: limit, Cursor: cursor}
	switch {
	case len(p) == 3 && p[2] == "orders":
	case len(p) == 5 && p[2] == "currencies" && (p[4] == "orders" || p[4] == "revenue"):
		currency := p[3]
		q.Keep = func(part explain.Part) bool { return part.Currency == currency }
	default:
		return explain.Answer{}, bad
	}
	var page explain.Page
	err = db.ReadOnly(ctx, func(tx *sql.Tx) error {
		var err error
		page, err = explain.Read(ctx, tx, db.Dialect, t.Name(tableParts), q, nil)
		return err
	})
	if err != nil {
		return explain.Answer{}, err
	}
	return explain.Answer{Explain: path, AsOf: asOf.UTC(), Page: page}, nil
}

// ExplainRepeatRate answers the parts of the figure of the repeat rate at path: the customers
// of a cohort as of asOf, each with the event of its first purchase (cohorts.<YYYY-MM>.customers)
// or of its second (cohorts.<YYYY-MM>.repeat_customers), a page of limit at a time from cursor.
// A repeat rate is the quotient of the two: explain those.
func ExplainRepeatRate(ctx context.Context, db *projections.DB, t projections.Tables, asOf time.Time, path string, limit int, cursor string) (explain.Answer, error) {
	if err := asOfRequired(asOf); err != nil {
		return explain.Answer{}, err
	}
	p := strings.Split(path, ".")
	if len(p) != 3 || p[0] != "cohorts" {
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the repeat rate (see the documentation)", path)
	}
	if _, err := time.Parse(CohortLayout, p[1]); err != nil {
		return explain.Answer{}, domain.Invalid("explain", "%q: %q is not a cohort (YYYY-MM)", path, p[1])
	}
	q := explain.Question{AsOf: asOf, Limit: limit, Cursor: cursor}
	switch p[2] {
	case "customers":
		q.Figures = []string{figCohort + p[1]}
	case "repeat_customers":
		q.Figures = []string{figRepeat + p[1]}
	default:
		return explain.Answer{}, domain.Invalid("explain", "%q is not the path of a figure of the repeat rate (see the documentation)", path)
	}
	var page explain.Page
	err := db.ReadOnly(ctx, func(tx *sql.Tx) error {
		var err error
		page, err = explain.Read(ctx, tx, db.Dialect, t.Name(tableParts), q, nil)
		return err
	})
	if err != nil {
		return explain.Answer{}, err
	}
	return explain.Answer{Explain: path, AsOf: asOf.UTC(), Page: page}, nil
}
