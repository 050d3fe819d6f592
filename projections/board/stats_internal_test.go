package board

import (
	"testing"
	"time"
)

func TestMedianDays(t *testing.T) {
	day := int64(24 * time.Hour / time.Microsecond)
	hours := func(h float64) int64 { return int64(h * float64(time.Hour/time.Microsecond)) }
	tests := []struct {
		name      string
		durations []int64
		want      *float64
	}{
		{"none", nil, nil},
		{"one", []int64{3 * day}, ptr(3)},
		{"odd count takes the middle", []int64{5 * day, 1 * day, 3 * day}, ptr(3)},
		{"even count takes the mean of the middle two", []int64{1 * day, 2 * day, 4 * day, 9 * day}, ptr(3)},
		{"rounded half up to 2 decimals", []int64{hours(1.08)}, ptr(0.05)}, // 0.045 d
		{"rounded down below half", []int64{hours(1.07)}, ptr(0.04)},       // 0.04458 d
		{"mean of two middle values rounded once", []int64{0, 1}, ptr(0)},
		{"negative stays count as 0", []int64{-day, 2 * day}, ptr(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := medianDays(tt.durations)
			switch {
			case got == nil && tt.want == nil:
			case got == nil || tt.want == nil || *got != *tt.want:
				t.Errorf("medianDays = %v, want %v", deref(got), deref(tt.want))
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
