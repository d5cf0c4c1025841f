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

// ImpressionMetrics are MIND's leaderboard metrics of a ranker. Each is
// computed within one impression — the articles one feed showed, ranked by
// score — and averaged over the impressions that hold both a clicked and an
// unclicked article, as MIND's evaluation script averages them (every
// impression of MIND's dev and test sets holds both). They ask how well a
// ranker orders one feed, not how well it separates users.
//
// Tied scores have no order of their own, so each metric is its mean over the
// orders of the ties (AUC counts a tied pair half): a ranker that scores a
// whole feed alike gets chance, not the order the log listed it in, which for
// position-biased clicks would be better than chance.
type ImpressionMetrics struct {
	// AUC is the mean per-impression AUC (MIND's AUC, often called group AUC).
	AUC float64
	// MRR is the mean of MIND's reciprocal rank: within an impression, the
	// mean of 1/rank over its clicked articles.
	MRR float64
	// NDCG5 and NDCG10 are the mean nDCG@5 and nDCG@10: the DCG of the first k
	// (a click gains 2^1-1 = 1 at rank r, discounted by log2(r+1)) over that
	// of the best order.
	NDCG5, NDCG10 float64
	// Impressions is how many impressions were averaged.
	Impressions int
}

// PerImpression computes MIND's metrics of scores against labels, grouped
// into impressions by groups. With no impression to average, every metric is
// NaN.
func PerImpression(scores []float64, labels []bool, groups []int32) ImpressionMetrics {
	by := map[int32][]int{}
	for i, g := range groups {
		by[g] = append(by[g], i)
	}
	keys := make([]int32, 0, len(by))
	for g := range by {
		keys = append(keys, g)
	}
	slices.Sort(keys) // a fixed summation order gives the same digits every run
	var m ImpressionMetrics
	for _, g := range keys {
		idx := by[g]
		auc := aucOf(scores, labels, idx)
		if math.IsNaN(auc) {
			continue
		}
		mrr, ndcg5, ndcg10 := rankMetrics(scores, labels, idx)
		m.AUC += auc
		m.MRR += mrr
		m.NDCG5 += ndcg5
		m.NDCG10 += ndcg10
		m.Impressions++
	}
	if m.Impressions == 0 {
		nan := math.NaN()
		return ImpressionMetrics{AUC: nan, MRR: nan, NDCG5: nan, NDCG10: nan}
	}
	n := float64(m.Impressions)
	m.AUC, m.MRR, m.NDCG5, m.NDCG10 = m.AUC/n, m.MRR/n, m.NDCG5/n, m.NDCG10/n
	return m
}

// rankMetrics are the reciprocal rank, nDCG@5 and nDCG@10 of one impression
// (idx, reordered in place) holding at least one click. A block of tied
// scores spreads each of its clicks evenly over the ranks it spans.
func rankMetrics(scores []float64, labels []bool, idx []int) (mrr, ndcg5, ndcg10 float64) {
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(scores[b], scores[a]) })
	discount := func(rank int) float64 { return 1 / math.Log2(float64(rank)+1) }
	var rr, dcg5, dcg10 float64
	clicks := 0
	for i := 0; i < len(idx); {
		j := i
		c := 0
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] {
				c++
			}
			j++
		}
		if c > 0 {
			share := float64(c) / float64(j-i) // each rank's expected clicks
			for rank := i + 1; rank <= j; rank++ {
				rr += share / float64(rank)
				if rank <= 10 {
					dcg10 += share * discount(rank)
				}
				if rank <= 5 {
					dcg5 += share * discount(rank)
				}
			}
		}
		clicks += c
		i = j
	}
	var ideal5, ideal10 float64
	for rank := 1; rank <= min(clicks, 10); rank++ {
		ideal10 += discount(rank)
		if rank <= 5 {
			ideal5 += discount(rank)
		}
	}
	return rr / float64(clicks), dcg5 / ideal5, dcg10 / ideal10
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
