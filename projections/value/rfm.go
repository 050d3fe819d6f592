package value

// Segments of RFM, in the order their rules are tried: the first that matches wins.
const (
	SegmentChampions      = "champions"
	SegmentLoyal          = "loyal"
	SegmentNew            = "new"
	SegmentAtRisk         = "at_risk"
	SegmentHibernating    = "hibernating"
	SegmentNeedsAttention = "needs_attention"
)

// Segments lists the segments in rule order.
func Segments() []string {
	return []string{SegmentChampions, SegmentLoyal, SegmentNew, SegmentAtRisk, SegmentHibernating, SegmentNeedsAttention}
}

// segmentOf is the segment of the scores r, f, m (DOMAIN.md: first match wins).
func segmentOf(r, f, m int) string {
	switch {
	case r >= 4 && f >= 4 && m >= 4:
		return SegmentChampions
	case f >= 4:
		return SegmentLoyal
	case f == 1 && r >= 4:
		return SegmentNew
	case r <= 2 && f >= 3:
		return SegmentAtRisk
	case r <= 2 && f <= 2:
		return SegmentHibernating
	default:
		return SegmentNeedsAttention
	}
}

// ladder scores one measure among n customers where a higher value is better (recency is
// scored by the time of the last purchase: later is better). With w the number of customers
// strictly worse than a value, its score is 1 + floor(5 w / n); floor(5 w / n) >= k exactly
// when w >= ceil(k n / 5), that is when the value at rank ceil(k n / 5) - 1 of the values in
// ascending order (0-based) is strictly below it. So four values, at[k-1] for k = 1..4, decide
// every score: that is all a question reads of the kept counts.
type ladder struct {
	n  int64
	at [4]int64
}

// rankOf is the 0-based rank, in ascending order, of the value that decides score k+1 and
// above among n values.
func rankOf(k int, n int64) int64 { return (int64(k)*n+4)/5 - 1 }

// ladderOf is the ladder of the values, sorted ascending.
func ladderOf(sorted []int64) ladder {
	l := ladder{n: int64(len(sorted))}
	if l.n == 0 {
		return l
	}
	for k := 1; k <= 4; k++ {
		l.at[k-1] = sorted[rankOf(k, l.n)]
	}
	return l
}

// score is the score of value v (1 to 5); 0 when nobody is scored.
func (l ladder) score(v int64) int {
	if l.n == 0 {
		return 0
	}
	s := 1
	for _, t := range l.at {
		if t < v {
			s++
		}
	}
	return s
}

// ladders are the ladders of one question: recency (by last purchase time), frequency
// (orders), monetary per currency.
type ladders struct {
	recency, frequency ladder
	monetary           map[string]ladder
}

// scores are the R, F, M scores and the segment of a customer.
func (ls ladders) scores(c *customerFacts) (r, f, m int, segment string) {
	r = ls.recency.score(c.last)
	f = ls.frequency.score(c.orders)
	for _, mo := range c.money {
		m = max(m, ls.monetary[mo.currency].score(mo.revenue))
	}
	return r, f, m, segmentOf(r, f, m)
}
