package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The nearline job adds a click to the profile it recovers from stored
// weights; the weights it writes must be those the build would have written
// after the same clicks.
func TestProfileOfThenClickMatchesReplay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	topic := func() []float64 {
		v := make([]float64, TopicDims)
		for i := range v {
			v[i] = round6(rng.Float64()*2 - 1)
		}
		return v
	}
	for trial := range 50 {
		var replay Profile
		for range 1 + rng.IntN(40) {
			replay.Click(int32(1+rng.IntN(4)), topic())
		}
		stored := map[int32][]float64{}
		for ch := range int32(5) {
			w := make([]float64, UserWeightsLen)
			if replay.Weights(ch, w) {
				stored[ch] = w
			}
		}
		recovered := ProfileOf(stored)
		ch, tp := int32(1+rng.IntN(4)), topic()
		replay.Click(ch, tp)
		recovered.Click(ch, tp)
		for c := range int32(5) {
			want, got := make([]float64, UserWeightsLen), make([]float64, UserWeightsLen)
			wantOK, gotOK := replay.Weights(c, want), recovered.Weights(c, got)
			if wantOK != gotOK {
				t.Fatalf("trial %d channel %d: has weights %v, replay says %v", trial, c, gotOK, wantOK)
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 2e-5 {
					t.Fatalf("trial %d channel %d weight %d: %v after recovering, %v replayed", trial, c, i, got[i], want[i])
				}
			}
		}
	}
}
