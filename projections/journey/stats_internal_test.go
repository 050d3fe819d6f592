package journey

import (
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	// p75 by nearest rank is the ceil(0.75 n)-th smallest value.
	tests := []struct{ n, p, want int }{
		{1, 75, 1}, {2, 75, 2}, {3, 75, 3}, {4, 75, 3}, {5, 75, 4}, {8, 75, 6}, {9, 75, 7}, {100, 75, 75},
		{1, 50, 1}, {2, 50, 1}, {3, 50, 2}, {4, 50, 2},
		{10, 0, 1}, {10, 100, 10},
	}
	for _, tt := range tests {
		if got := nearestRank(tt.n, tt.p); got != tt.want {
			t.Errorf("nearestRank(%d, %d) = %d, want %d", tt.n, tt.p, got, tt.want)
		}
	}
}

func TestStatsOf(t *testing.T) {
	day := int64(24 * time.Hour / time.Microsecond)
	hour := int64(time.Hour / time.Microsecond)
	tests := []struct {
		name         string
		durations    []int64
		median, p75  float64
		wantNoResult bool
	}{
		{name: "none", wantNoResult: true},
		{name: "one", durations: []int64{2 * day}, median: 2, p75: 2},
		{name: "two: mean of both, p75 the larger", durations: []int64{5 * day, 10 * day}, median: 7.5, p75: 10},
		{name: "four, unsorted", durations: []int64{11 * day, 3 * day, 7 * day, 4 * day}, median: 5.5, p75: 7},
		{name: "five", durations: []int64{4 * day, 1 * day, 3 * day, 2 * day, 36 * hour}, median: 2, p75: 3},
		{name: "days rounded half up", durations: []int64{day + 12*hour/100*3}, median: 1.02, p75: 1.02}, // 1.015 d
		{name: "negative counts as 0", durations: []int64{-day}, median: 0, p75: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := statsOf(tt.durations)
			if tt.wantNoResult {
				if got.count != 0 || got.median != nil || got.p75 != nil {
					t.Fatalf("statsOf = %+v, want nothing", got)
				}
				return
			}
			if got.count != len(tt.durations) || got.median == nil || got.p75 == nil {
				t.Fatalf("statsOf = %+v", got)
			}
			if *got.median != tt.median || *got.p75 != tt.p75 {
				t.Errorf("median, p75 = %v, %v, want %v, %v", *got.median, *got.p75, tt.median, tt.p75)
			}
		})
	}
}
