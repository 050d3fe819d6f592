package round

import "testing"

func TestRatio(t *testing.T) {
	tests := []struct {
		num, den int
		want     float64
	}{
		{2, 3, 0.6667}, {1, 3, 0.3333}, {1, 8, 0.125}, {1, 16, 0.0625}, {1, 32, 0.0313}, {0, 5, 0}, {5, 5, 1},
	}
	for _, tt := range tests {
		got := Ratio(tt.num, tt.den)
		if got == nil || *got != tt.want {
			t.Errorf("Ratio(%d, %d) = %v, want %v", tt.num, tt.den, got, tt.want)
		}
	}
	if got := Ratio(1, 0); got != nil {
		t.Errorf("Ratio(1, 0) = %v, want nil", *got)
	}
}
