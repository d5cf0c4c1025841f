package recocenter

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// joinGrace is how long a test waits, after every caller has read its history
// (the last port call before joining the pass), for them to join it.
const joinGrace = 100 * time.Millisecond

// feedResult is one concurrent caller's outcome.
type feedResult struct {
	page feed.Page
	err  error
}

// concurrentRefreshes starts n refreshes of u1's channel 3 while Recall is
// held, releases it once all of them wait on the pass, and returns their pages.
func concurrentRefreshes(t *testing.T, e *env, c *Center, n, articles int) []feedResult {
	t.Helper()
	release := e.recall.gate("Recall")
	defer release()
	results := make([]feedResult, n)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range n {
		// Each a refresh after the one before: the first to start one at
		// a stamp makes the others at it or before history pages.
		wg.Go(func() {
			page, err := c.Feed(ctx, refreshOf(3, articles, int64(200+i)))
			results[i] = feedResult{page, err}
		})
		// Its history read comes once its Take set its stamp: waiting for
		// the Take call alone would let the next caller's newer stamp in
		// first, making this one a history page.
		e.history.waitCalls(t, "Seen", i+1)
	}
	time.Sleep(joinGrace)
	release()
	wg.Wait()
	return results
}

// TestFeedSharedPass: concurrent refreshes of one reader's channel share one
// recall + sort + store pass, and each gets its own page, no id twice.
func TestFeedSharedPass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		storeErr  error
		callers   int
		articles  int
		wantPages int // callers that get a full page
	}{
		{name: "five refreshes share one pass through the cache", callers: 5, articles: 3, wantPages: 5},
		{name: "cache Store fails: two waiters get disjoint ids of the ranking", storeErr: errBoom, callers: 2, articles: 2, wantPages: 2},
		{name: "more waiters than the ranking holds: the last get short pages, never a repeat", callers: 4, articles: 3, wantPages: 2},
		{name: "cache Store fails and more waiters than the ranking holds", storeErr: errBoom, callers: 4, articles: 3, wantPages: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			ranking := 20
			if tt.wantPages < tt.callers {
				ranking = tt.wantPages*tt.articles + 1
			}
			ids := make([]int64, ranking)
			for i := range ids {
				ids[i] = int64(i + 1)
			}
			e.recall.cands[3] = candidates(feed.SourceALS, ids...)
			if tt.storeErr != nil {
				e.cache.failOn("Store", fault{err: tt.storeErr})
			}
			results := concurrentRefreshes(t, e, e.center(t), tt.callers, tt.articles)

			if n := e.recall.count("Recall"); n != 1 {
				t.Errorf("Recall calls = %d, want 1 shared pass", n)
			}
			served := map[int64]int{}
			full := 0
			var all []int64
			for i, res := range results {
				if res.err != nil {
					t.Errorf("caller %d: Feed: %v", i, res.err)
				}
				if len(res.page.IDs) == tt.articles {
					full++
				}
				for _, id := range res.page.IDs {
					served[id]++
					all = append(all, id)
					if served[id] > 1 {
						t.Errorf("id %d served %d times across the pages %v", id, served[id], results)
					}
				}
			}
			if full != tt.wantPages {
				t.Errorf("%d full pages of %d, want %d (pages %v)", full, tt.articles, tt.wantPages, results)
			}
			if want := min(ranking, tt.callers*tt.articles); len(all) != want {
				t.Errorf("served %d ids in all, want %d", len(all), want)
			}
			// The served ids are the top of the ranking (descending ids).
			slices.Sort(all)
			for i, id := range all {
				if want := int64(ranking - len(all) + 1 + i); id != want {
					t.Errorf("served ids %v, want the top %d of the ranking", all, len(all))
					break
				}
			}
			// Every served id lands in history, at its refresh's stamp.
			var rec []int64
			for i := range tt.callers {
				rec = append(rec, e.history.at("u1", 3, int64(200+i))...)
			}
			slices.Sort(rec)
			if !slices.Equal(rec, all) {
				t.Errorf("history at 200 = %v, want %v", rec, all)
			}
			wantCauses := map[string]float64{}
			if tt.storeErr != nil {
				wantCauses["cache"] = 1
			}
			if got := e.degradations(t); !sameMap(got, wantCauses) {
				t.Errorf("degradations = %v, want %v", got, wantCauses)
			}
		})
	}
}

// TestFeedCancelledCallerDoesNotFailThePass: the pass runs on its own deadline
// (fill_timeout), so the caller that started it may go away without failing
// the others that joined it.
func TestFeedCancelledCallerDoesNotFailThePass(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cfg.FillTimeout = 2 * time.Second
	e.recall.cands[3] = candidates(feed.SourceALS, 1, 2, 3, 4, 5, 6)
	release := e.recall.gate("Recall")
	defer release()
	c := e.center(t)

	// The first caller starts the pass on a short-lived context: a long
	// deadline, then a cancel.
	firstCtx, cancelFirst := context.WithTimeout(testCtx(t), time.Hour)
	defer cancelFirst()
	first := make(chan feedResult, 1)
	go func() {
		page, err := c.Feed(firstCtx, refreshOf(3, 2, 200))
		first <- feedResult{page, err}
	}()
	e.recall.waitCalls(t, "Recall", 1)
	second := make(chan feedResult, 1)
	secondCtx := testCtx(t)
	go func() {
		page, err := c.Feed(secondCtx, refreshOf(3, 2, 201))
		second <- feedResult{page, err}
	}()
	e.history.waitCalls(t, "Seen", 2)
	time.Sleep(joinGrace)

	cancelFirst()
	res := <-first
	if res.err != nil || len(res.page.IDs) != 0 {
		t.Errorf("cancelled caller: Feed = %v, %v; want an empty page, no error", res.page.IDs, res.err)
	}
	release()
	res = <-second
	if res.err != nil || !slices.Equal(res.page.IDs, []int64{6, 5}) {
		t.Errorf("joined caller: Feed = %v, %v; want [6 5], nil", res.page.IDs, res.err)
	}
	if n := e.recall.count("Recall"); n != 1 {
		t.Errorf("Recall calls = %d, want 1", n)
	}
	if left := e.recall.deadlines[0]; left <= 0 || left > e.cfg.FillTimeout {
		t.Errorf("the pass's deadline was %v away, want its own fill_timeout (%v), not the caller's hour", left, e.cfg.FillTimeout)
	}
	if q := e.cache.queue("u1", 3); !slices.Equal(q, []int64{4, 3, 2, 1}) {
		t.Errorf("cache holds %v after the pass, want the rest of the ranking [4 3 2 1]", q)
	}
	if rec := e.history.at("u1", 3, 201); !slices.Equal(rec, []int64{6, 5}) {
		t.Errorf("history at 201 = %v, want [6 5]", rec)
	}
}
