package recocenter

import (
	"slices"
	"testing"
)

func TestMix(t *testing.T) {
	ranked := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	tests := []struct {
		name               string
		fresh, hot         []int64
		newRatio, hotRatio float64
		want               []int64
	}{
		{"no mixing", []int64{11}, []int64{12}, 0, 0, ranked},
		{"10% each", []int64{11, 12}, []int64{10}, 0.1, 0.1, []int64{11, 10, 1, 2, 3, 4, 5, 6, 7, 8, 12, 9}},
		{"half new", []int64{7, 8, 9}, nil, 0.5, 0, []int64{7, 1, 8, 2, 9, 3, 4, 5, 6, 10, 11, 12}},
	}
	for _, tt := range tests {
		got := mix(ranked, tt.fresh, tt.hot, tt.newRatio, tt.hotRatio)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: mix = %v, want %v", tt.name, got, tt.want)
		}
	}
}
