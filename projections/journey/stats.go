package journey

import (
	"slices"

	"github.com/eventcrm/crm/projections/round"
)

// durationStats are the medians of a set of closed stays.
type durationStats struct {
	count  int
	median *float64
	p75    *float64
}

// statsOf measures durations (microseconds; a negative one, possible only with back-dated
// events, counts as 0) in days rounded half up to 2 decimals:
//   - median: the middle value of the sorted durations; for an even count, the mean of the two
//     middle values;
//   - p75: nearest rank, the ceil(0.75 * n)-th smallest duration (1-based), always one of the
//     durations.
//
// Both are nil when there is no duration.
func statsOf(durations []int64) durationStats {
	n := len(durations)
	if n == 0 {
		return durationStats{}
	}
	sorted := make([]int64, n)
	for i, d := range durations {
		sorted[i] = max(d, 0)
	}
	slices.Sort(sorted)
	// twice the median, so that the mean of two middle values stays an integer
	twice := 2 * sorted[n/2]
	if n%2 == 0 {
		twice = sorted[n/2-1] + sorted[n/2]
	}
	median := float64((twice*100+round.MicrosPerDay)/(2*round.MicrosPerDay)) / 100
	p75 := round.Days(sorted[nearestRank(n, 75)-1])
	return durationStats{count: n, median: &median, p75: &p75}
}

// nearestRank is the 1-based rank of the p-th percentile of n sorted values by the
// nearest-rank method: ceil(p/100 * n), at least 1.
func nearestRank(n, p int) int {
	return max((p*n+99)/100, 1)
}
