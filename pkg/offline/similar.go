package offline

import (
	"context"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// neighbour is an article (by corpus index) and its cosine similarity.
type neighbour struct {
	idx   int32
	score float64
}

// topK keeps the k best neighbours seen, best first; equal scores go to the
// lower index, so the choice does not depend on the order of the scan.
type topK struct {
	k     int
	items []neighbour
}

func (t *topK) better(a, b neighbour) bool {
	return a.score > b.score || (a.score == b.score && a.idx < b.idx)
}

func (t *topK) offer(n neighbour) {
	if len(t.items) == t.k {
		if !t.better(n, t.items[t.k-1]) {
			return
		}
		t.items = t.items[:t.k-1]
	}
	i := len(t.items)
	t.items = append(t.items, n)
	for i > 0 && t.better(n, t.items[i-1]) {
		t.items[i] = t.items[i-1]
		i--
	}
	t.items[i] = n
}

// similarBlock is the number of articles whose similarities are computed in one
// matrix product: 512 rows of a 15k-article channel is a 60 MB block.
const similarBlock = 512

// similarities finds, for every article, its k most similar articles of the same
// channel (cosine of the article vectors' LSA dims, positive only) and its kFresh most
// similar among the channel's fresh articles (the candidates of content
// recall). Each channel is one exact all-pairs product, blocked: at MIND scale
// the largest channel (≈15k articles) is 15k² dot products of 91 numbers,
// seconds with gonum's blocked, parallel matrix multiply.
func similarities(ctx context.Context, c *corpus, k, kFresh int, bar *bar) (all, fresh [][]neighbour, err error) {
	all = make([][]neighbour, len(c.ids))
	fresh = make([][]neighbour, len(c.ids))
	for _, members := range c.byChannel {
		if len(members) < 2 {
			continue
		}
		x := mat.NewDense(len(members), globalDims, nil)
		for i, a := range members {
			x.SetRow(i, c.unit(a))
		}
		for lo := 0; lo < len(members); lo += similarBlock {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			hi := min(lo+similarBlock, len(members))
			var s mat.Dense
			s.Mul(x.Slice(lo, hi, 0, globalDims), x.T())
			parallelRows(hi-lo, func(r int) {
				a := members[lo+r]
				best, bestFresh := topK{k: k}, topK{k: kFresh}
				row := s.RawRowView(r)
				for j, score := range row {
					b := members[j]
					if b == a || score <= 0 {
						continue
					}
					n := neighbour{b, score}
					best.offer(n)
					if c.fresh[b] {
						bestFresh.offer(n)
					}
				}
				all[a], fresh[a] = best.items, bestFresh.items
			})
			bar.add(hi - lo)
		}
	}
	return all, fresh, nil
}

// parallelRows runs fn(0..n-1) on every CPU. fn must only write what row r
// owns, so the result does not depend on scheduling.
func parallelRows(n int, fn func(r int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for r := range n {
			fn(r)
		}
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := w; r < n; r += workers {
				fn(r)
			}
		}()
	}
	wg.Wait()
}
