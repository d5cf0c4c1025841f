package offline

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"gonum.org/v1/gonum/mat"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Collaborative filtering is implicit ALS rather than item-based CF: recall
// source 100 is ALS in the original and in every track log that names it;
// ALS learns from the whole click matrix, so a user with three clicks still
// gets a taste vector shaped by everyone else's, where item-item co-occurrence
// needs each of the user's articles to share readers with the candidates; and
// its cost is linear in clicks per sweep (with conjugate gradient), where
// item-item pairs grow with the square of history length.
//
// Content recall scores each fresh article by Σ over the user's 20 latest clicks
// of 0.85^rank · cosine(click, article), over each click's most similar fresh
// articles of its channel, times 0.5^(age in days): unlike ALS it reaches
// articles nobody clicked yet, and the newest of them are the news.

// contentDecay weighs the user's clicks, newest first.
const contentDecay = 0.85

// newsHalfLife is how fast a content candidate's score fades with its age at
// the cutoff: news a day old is worth half as much as news of the hour.
const newsHalfLife = 24 * time.Hour

// freshness is article a's age factor, 0.5^(age/newsHalfLife).
func (b *build) freshness(a int32) float64 {
	age := b.cutoff.Sub(time.UnixMilli(b.c.published[a]))
	return math.Exp2(-float64(age) / float64(newsHalfLife))
}

// alsBlock is the number of users scored in one matrix product.
const alsBlock = 1024

// recallReaders is the number of concurrent reads of what recall offered: enough to
// hide a remote store's round trips, few enough not to crowd it.
const recallReaders = 8

func (b *build) buildRecall(ctx context.Context, recalled storage.Recalled, in *interactions, bar *bar) error {
	if err := b.readRecalled(ctx, recalled, bar); err != nil {
		return err
	}
	if err := b.alsRecall(ctx, in, bar); err != nil {
		return err
	}
	return b.contentRecall(ctx, bar)
}

// readRecalled reads what recall already offered every user, keeping the ids
// of runs other builds and online recall recorded: the run at this build's own
// timestamp is what a previous run of this same build recorded, and ignoring it
// is what makes re-running give the same result.
func (b *build) readRecalled(ctx context.Context, recalled storage.Recalled, bar *bar) error {
	channels := make([]int32, int(feed.NumChannels))
	for ch := range feed.NumChannels {
		channels[ch] = ch
	}
	own := b.opts.Version.UnixMilli()
	b.recalled = make([]map[int64]bool, len(b.u.names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(recallReaders)
	for ui, name := range b.u.names {
		g.Go(func() error {
			vs, err := recalled.Recalled(gctx, name, channels)
			if err != nil {
				return fmt.Errorf("read what recall offered %s: %w", name, err)
			}
			var ids map[int64]bool
			for _, versions := range vs {
				for _, v := range versions {
					if v.Timestamp == own {
						continue
					}
					if ids == nil {
						ids = map[int64]bool{}
					}
					for _, id := range v.IDs {
						ids[id] = true
					}
				}
			}
			b.recalled[ui] = ids
			bar.add(1)
			return nil
		})
	}
	return g.Wait()
}

// excluded says whether recall must not offer article a to user ui: clicked,
// or recalled before.
func (b *build) excluded(ui int, a int32) bool {
	return b.u.clicked[ui][a] || b.recalled[ui][b.c.ids[a]]
}

// alsRecall ranks the fresh articles that have factors for every user that has
// clicks, by x_u·y_i.
func (b *build) alsRecall(ctx context.Context, in *interactions, bar *bar) error {
	b.alsLists = make([][]int32, len(b.u.names))
	var pool []int32
	for a := range in.items {
		if b.c.fresh[a] && len(in.byItem[a]) > 0 {
			pool = append(pool, int32(a))
		}
	}
	var active []int
	for ui, row := range in.byUser {
		if len(row) > 0 {
			active = append(active, ui)
		}
	}
	bar.add(len(b.u.names) - len(active))
	if len(pool) == 0 || len(active) == 0 {
		bar.add(len(active))
		return nil
	}
	f := b.opts.ALS.Factors
	y := mat.NewDense(len(pool), f, nil)
	for i, a := range pool {
		y.SetRow(i, b.als.y.RawRowView(int(a)))
	}
	for lo := 0; lo < len(active); lo += alsBlock {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+alsBlock, len(active))
		x := mat.NewDense(hi-lo, f, nil)
		for i, ui := range active[lo:hi] {
			x.SetRow(i, b.als.x.RawRowView(ui))
		}
		var s mat.Dense
		s.Mul(x, y.T())
		parallelRows(hi-lo, func(r int) {
			ui := active[lo+r]
			top := topK{k: b.opts.RecallN}
			for j, score := range s.RawRowView(r) {
				if a := pool[j]; !b.excluded(ui, a) {
					top.offer(neighbour{a, score})
				}
			}
			b.alsLists[ui] = indices(top.items)
		})
		bar.add(hi - lo)
	}
	return nil
}

// contentRecall scores fresh neighbours of each user's recent clicks.
func (b *build) contentRecall(ctx context.Context, bar *bar) error {
	b.contentList = make([][]int32, len(b.u.names))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := map[int32]float64{}
			for ui := w; ui < len(b.u.names); ui += workers {
				if ui%1024 == w {
					if errs[w] = ctx.Err(); errs[w] != nil {
						return
					}
				}
				clear(acc)
				weight := 1.0
				for _, a := range b.u.recent[ui] {
					for _, nb := range b.freshSimilar[a] {
						acc[nb.idx] += weight * nb.score
					}
					weight *= contentDecay
				}
				top := topK{k: b.opts.RecallN}
				for a, s := range acc {
					if !b.excluded(ui, a) {
						top.offer(neighbour{a, s * b.freshness(a)})
					}
				}
				b.contentList[ui] = indices(top.items)
				bar.add(1)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func indices(ns []neighbour) []int32 {
	out := make([]int32, len(ns))
	for i, n := range ns {
		out[i] = n.idx
	}
	return out
}

// recallCells are one user's recall columns: for each channel, its share of the
// source's ranked list; for channel 0, the list's head.
func (b *build) recallColumns(list []int32) map[int32][]int64 {
	if len(list) == 0 {
		return nil
	}
	out := map[int32][]int64{}
	for i, a := range list {
		id := b.c.ids[a]
		ch := b.c.channel[a]
		out[ch] = append(out[ch], id)
		if i < b.opts.RecallAllN {
			out[feed.ChannelAll] = append(out[feed.ChannelAll], id)
		}
	}
	return out
}
