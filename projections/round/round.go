// Package round rounds the figures of the read models as the metric definitions show them:
// lengths in days to 2 decimals and rates to 4, half up, in integer arithmetic so that SQLite
// and PostgreSQL builds answer the same.
package round

import "time"

// MicrosPerDay is the number of microseconds in a day.
const MicrosPerDay = int64(24 * time.Hour / time.Microsecond)

// Days converts a non-negative duration in microseconds to days, rounded half up to 2
// decimals.
func Days(micros int64) float64 {
	return float64((micros*100+MicrosPerDay/2)/MicrosPerDay) / 100
}

// Ratio is num/den rounded half up to 4 decimals, nil when den is 0.
func Ratio[N ~int | ~int64](num, den N) *float64 {
	if den == 0 {
		return nil
	}
	r := float64((int64(num)*20000+int64(den))/(2*int64(den))) / 10000
	return &r
}
