package analytics

import (
	"context"
	"strings"
	"time"

	"github.com/eventcrm/crm/domain"
	"github.com/eventcrm/crm/projections"
	"github.com/eventcrm/crm/projections/explain"
)

// NPSParams ask for the NPS of the periods holding the business dates From..To.
type NPSParams struct {
	// Period is the kind of period (month when empty).
	Period string `json:"period,omitempty"`
	// From and To (YYYY-MM-DD, inclusive); To defaults to as_of's business date, From to To.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Owner and Segment keep the answers of contacts of that owner, that segment (at the time
	// of the answer).
	Owner   string `json:"owner,omitempty"`
	Segment string `json:"segment,omitempty"`
	// AsOf is the business time of the question (required).
	AsOf time.Time      `json:"as_of"`
	Zone *time.Location `json:"-"`
	// Explain asks for the parts of one figure: "<period>.responses|promoters|passives|detractors".
	Explain string `json:"explain,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
	// fromParts sums the parts even where the kept counts answer (tests compare both).
	fromParts bool
}

// NPSAnswer is the NPS of each period.
type NPSAnswer struct {
	Period  string      `json:"period"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	AsOf    time.Time   `json:"as_of"`
	Zone    string      `json:"zone"`
	Owner   string      `json:"owner,omitempty"`
	Segment string      `json:"segment,omitempty"`
	Periods []NPSPeriod `json:"periods"`
}

// NPSPeriod counts each contact's latest survey answer in the period: promoters 9-10,
// passives 7-8, detractors 0-6; NPS = 100 x (promoters - detractors) / responses, one
// decimal, half away from zero (null without responses).
type NPSPeriod struct {
	Period     string   `json:"period"`
	End        string   `json:"end"`
	Responses  int64    `json:"responses"`
	Promoters  int64    `json:"promoters"`
	Passives   int64    `json:"passives"`
	Detractors int64    `json:"detractors"`
	NPS        *float64 `json:"nps"`
}

// QueryNPS answers the NPS of params from the tables of set t.
func QueryNPS(ctx context.Context, db *projections.DB, t projections.Tables, params NPSParams) (any, error) {
	kp, err := KPIParams{Period: params.Period, From: params.From, To: params.To, Owner: params.Owner, Segment: params.Segment,
		AsOf: params.AsOf, Zone: params.Zone, fromParts: params.fromParts}.check()
	if err != nil {
		return nil, err
	}
	return readAnswer(ctx, db, t, func(r *reader) (any, error) {
		if params.Explain != "" {
			return r.explainNPS(ctx, kp, params)
		}
		return r.nps(ctx, kp)
	})
}

func (r *reader) nps(ctx context.Context, q kpiQuestion) (NPSAnswer, error) {
	kept, err := r.kept(ctx, q.AsOf)
	if err != nil {
		return NPSAnswer{}, err
	}
	byPeriod := map[string]figures{}
	f, oneFilter := filterOf(q.Owner, "", q.Segment)
	if kept && oneFilter && !q.fromParts {
		err = r.counts(ctx, q.w, q.Period, f, figNPS, upper(figNPS), byPeriod)
	} else {
		var parts []explain.Part
		parts, err = r.parts(ctx, q.w, []string{figNPS + q.Period + "/"}, q.AsOf, q.Owner, "", q.Segment)
		for _, p := range parts {
			label := q.w.periodOf(p.Bucket)
			if byPeriod[label] == nil {
				byPeriod[label] = figures{}
			}
			byPeriod[label].add(figNPS+p.Figure[strings.LastIndex(p.Figure, "/")+1:], p.Count, 0)
		}
	}
	if err != nil {
		return NPSAnswer{}, err
	}
	answer := NPSAnswer{Period: q.Period, From: q.From, To: q.To, AsOf: q.AsOf.UTC(), Zone: q.Zone.String(), Owner: q.Owner,
		Segment: q.Segment, Periods: []NPSPeriod{}}
	for _, label := range q.w.labels() {
		_, end, _ := q.w.span(label)
		fs := byPeriod[label]
		p := NPSPeriod{Period: label, End: end, Promoters: fs[figNPS+"promoter"].count, Passives: fs[figNPS+"passive"].count,
			Detractors: fs[figNPS+"detractor"].count}
		p.Responses = p.Promoters + p.Passives + p.Detractors
		p.NPS = npsScore(p.Promoters, p.Detractors, p.Responses)
		answer.Periods = append(answer.Periods, p)
	}
	return answer, nil
}

// npsScore is 100 x (promoters - detractors) / responses to one decimal, half away from zero.
func npsScore(promoters, detractors, responses int64) *float64 {
	if responses == 0 {
		return nil
	}
	num := 1000 * (promoters - detractors) // in tenths
	neg := num < 0
	if neg {
		num = -num
	}
	tenths := (2*num + responses) / (2 * responses)
	if neg {
		tenths = -tenths
	}
	s := float64(tenths) / 10
	return &s
}

func (r *reader) explainNPS(ctx context.Context, q kpiQuestion, params NPSParams) (ExplainAnswer, error) {
	label, figure, _ := strings.Cut(params.Explain, ".")
	from, to, ok := q.w.span(label)
	if !ok {
		return ExplainAnswer{}, domain.Invalid("explain", "%q: %q is not the first date of a period of the answer", params.Explain, label)
	}
	prefix := figNPS + q.Period + "/"
	// The parts of the period's kind in it have its label as their bucket.
	eq := explain.Question{From: from, To: to, AsOf: q.AsOf, Owner: q.Owner, Segment: q.Segment, Limit: params.Limit,
		Cursor: params.Cursor}
	switch figure {
	case "responses":
		eq.Figures = []string{prefix}
	case "promoters", "passives", "detractors":
		eq.Figures = []string{prefix + strings.TrimSuffix(figure, "s")}
	default:
		return ExplainAnswer{}, domain.Invalid("explain", "%q is not the path of a figure of the NPS (<period>.responses, promoters, passives or detractors)", params.Explain)
	}
	page, err := explain.Read(ctx, r.tx, r.db.Dialect, r.t.Name(tableParts), eq, nil)
	if err != nil {
		return ExplainAnswer{}, err
	}
	return ExplainAnswer{Explain: params.Explain, AsOf: q.AsOf.UTC(), Page: page}, nil
}
