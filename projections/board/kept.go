package board

import (
	"github.com/eventcrm/crm/projections/horizon"
	"github.com/eventcrm/crm/projections/lengths"
	"github.com/eventcrm/crm/projections/readmodel"
)

// What the board now reads, kept by the fold as intervals open and close: nothing depends on
// the clock (days in stage are counted per question from the cards).

// Dims of the stay bins: every owner, or one.
const (
	dimAll   = ""
	dimOwner = "owner"
)

type totalRow struct {
	owner, stage, currency string
	deals, amount          int64
}

type stayBinRow struct {
	dim, value, stage string
	width, bin, count int64
}

type stayRow struct {
	stage  string
	micros int64
	owner  string
	count  int64
}

func (m *model) declareKept() {
	type (
		tr = totalRow
		sb = stayBinRow
		sr = stayRow
	)
	m.totals = readmodel.NewTable(tableTotals, 3,
		readmodel.Text("owner", func(r *tr) *string { return &r.owner }),
		readmodel.Text("stage", func(r *tr) *string { return &r.stage }),
		readmodel.Text("currency", func(r *tr) *string { return &r.currency }),
		readmodel.BigInt("deals", func(r *tr) *int64 { return &r.deals }),
		readmodel.BigInt("amount", func(r *tr) *int64 { return &r.amount })).
		Clustered().
		WithIndexes(readmodel.Index{Name: "stage", Columns: "stage, currency"})
	m.stayBins = readmodel.NewTable(tableStayBins, 5,
		readmodel.Text("dim", func(r *sb) *string { return &r.dim }),
		readmodel.Text("value", func(r *sb) *string { return &r.value }),
		readmodel.Text("stage", func(r *sb) *string { return &r.stage }),
		readmodel.Integer("width", func(r *sb) *int64 { return &r.width }),
		readmodel.BigInt("bin", func(r *sb) *int64 { return &r.bin }),
		readmodel.Integer("count", func(r *sb) *int64 { return &r.count })).
		Clustered()
	m.stays = readmodel.NewTable(tableStays, 3,
		readmodel.Text("stage", func(r *sr) *string { return &r.stage }),
		readmodel.BigInt("micros", func(r *sr) *int64 { return &r.micros }),
		readmodel.Text("owner", func(r *sr) *string { return &r.owner }),
		readmodel.Integer("count", func(r *sr) *int64 { return &r.count })).
		Clustered()
	m.horizon = horizon.New()
}

// keepOpened counts a new open interval in its stage's totals.
func (m *model) keepOpened(rows *readmodel.Rows, iv intervalRow) {
	m.addTotal(rows, iv, 1)
	m.horizon.Reach(rows, iv.enteredAt)
}

// keepClosed takes a closed interval out of its stage's totals and counts its length.
func (m *model) keepClosed(rows *readmodel.Rows, iv intervalRow) {
	m.addTotal(rows, iv, -1)
	micros := max(iv.leftAt.Int64-iv.enteredAt, 0)
	for _, d := range [][2]string{{dimAll, ""}, {dimOwner, iv.owner}} {
		for _, b := range lengths.Bins(micros) {
			m.stayBins.Add(rows, stayBinRow{dim: d[0], value: d[1], stage: iv.stage, width: b.Width, bin: b.Bin, count: 1})
		}
	}
	m.stays.Add(rows, stayRow{stage: iv.stage, micros: micros, owner: iv.owner, count: 1})
	m.horizon.Reach(rows, iv.leftAt.Int64)
}

// addTotal adds (sign 1) or takes away (sign -1) an open interval from the totals of its
// owner, stage and currency, without reading them: a row that comes back to no deals stays,
// and the board's query filters it. No weighted amount is kept: the probabilities may change
// after the deals entered the stage, so the query weighs the sum with the one in force.
func (m *model) addTotal(rows *readmodel.Rows, iv intervalRow, sign int64) {
	m.totals.Add(rows, totalRow{owner: iv.owner, stage: iv.stage, currency: iv.currency,
		deals: sign, amount: sign * iv.amount})
}
