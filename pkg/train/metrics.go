package train

import (
	"cmp"
	"math"
	"slices"
)

// AUC is the area under the ROC curve of scores against labels: the chance that
// a random clicked sample scores above a random unclicked one, ties counting
// half. It is NaN when either class is missing.
func AUC(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	return aucOf(scores, labels, idx)
}

// aucOf is AUC over the samples idx (reordered in place).
func aucOf(scores []float64, labels []bool, idx []int) float64 {
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(scores[a], scores[b]) })
	var pos, neg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		// Tied scores share the mean of their ranks (1-based).
		rank := float64(i+j+1) / 2
		for _, k := range idx[i:j] {
			if labels[k] {
				pos++
				rankSum += rank
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// GroupAUC is the mean AUC of the groups (impressions) that hold both a clicked
// and an unclicked sample: MIND's headline metric, which asks how well a ranker
// orders one feed rather than how well it separates users. It also returns the
// number of groups averaged.
func GroupAUC(scores []float64, labels []bool, groups []int32) (float64, int) {
	by := map[int32][]int{}
	for i, g := range groups {
		by[g] = append(by[g], i)
	}
	keys := make([]int32, 0, len(by))
	for g := range by {
		keys = append(keys, g)
	}
	slices.Sort(keys) // a fixed summation order gives the same digits every run
	var sum float64
	n := 0
	for _, g := range keys {
		if a := aucOf(scores, labels, by[g]); !math.IsNaN(a) {
			sum += a
			n++
		}
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return sum / float64(n), n
}

// LogLoss is the mean negative log-likelihood of labels under the predicted
// click probabilities, each clamped to [1e-15, 1-1e-15].
func LogLoss(probs []float64, labels []bool) float64 {
	if len(probs) == 0 {
		return math.NaN()
	}
	var sum float64
	for i, p := range probs {
		p = min(max(p, 1e-15), 1-1e-15)
		if labels[i] {
			sum -= math.Log(p)
		} else {
			sum -= math.Log(1 - p)
		}
	}
	return sum / float64(len(probs))
}
