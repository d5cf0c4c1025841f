package recocenter

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// TestARankingStoredTwiceIsServedOnce: two passes stored the same ranking, so
// the cache holds every id twice; the serve-time claim serves each once.
func TestARankingStoredTwiceIsServedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cache.put("u1", 3, 1, 2, 3, 1, 2, 3, 4, 5)
	c := e.center(t)
	first, err := c.Feed(testCtx(t), refreshOf(3, 4, 200))
	if err != nil || !slices.Equal(first.IDs, []int64{1, 2, 3, 4}) {
		t.Fatalf("first refresh = %v, %v; want [1 2 3 4]", first.IDs, err)
	}
	second, err := c.Feed(testCtx(t), refreshOf(3, 4, 300))
	if err != nil || slices.ContainsFunc(second.IDs, func(id int64) bool { return slices.Contains(first.IDs, id) }) {
		t.Errorf("second refresh = %v, %v; want none of %v again", second.IDs, err, first.IDs)
	}
}

// TestAnIDQueuedBeforeItWasSeenInChannelZeroIsNotServed: DESIGN §4, "a queue
// filled before the user saw an id elsewhere must not serve it".
func TestAnIDQueuedBeforeItWasSeenInChannelZeroIsNotServed(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cache.put("u1", 3, 10, 11, 12, 13)
	e.cache.put("u1", 0, 10, 11)
	c := e.center(t)
	zero, err := c.Feed(testCtx(t), refreshOf(feed.ChannelAll, 2, 200))
	if err != nil || !slices.Equal(zero.IDs, []int64{10, 11}) {
		t.Fatalf("channel 0 = %v, %v; want [10 11]", zero.IDs, err)
	}
	got, err := c.Feed(testCtx(t), refreshOf(3, 2, 200))
	if err != nil || !slices.Equal(got.IDs, []int64{12, 13}) {
		t.Errorf("channel 3 after channel 0 served 10, 11 = %v, %v; want [12 13]", got.IDs, err)
	}
}

// TestConcurrentRefreshesOfOneQueueShareNoID: many refreshes popping one queue
// that holds every id several times get each id once between them.
func TestConcurrentRefreshesOfOneQueueShareNoID(t *testing.T) {
	t.Parallel()
	e := newEnv()
	for range 3 {
		e.cache.put("u1", 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	}
	c := e.center(t)
	var mu sync.Mutex
	counts := map[int64]int{}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := c.Feed(testCtx(t), refreshOf(3, 3, int64(200+i)))
			if err != nil {
				t.Error(err)
				return
			}
			if p.History {
				return // a newer refresh landed first: this one re-shows history
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range p.IDs {
				counts[id]++
			}
		}()
	}
	wg.Wait()
	for id, n := range counts {
		if n > 1 {
			t.Errorf("id %d served %d times", id, n)
		}
	}
	// Refreshes that arrive after a newer one are history pages; the rest
	// must have served something.
	if len(counts) == 0 {
		t.Error("no refresh served anything")
	}
}

// TestRecallRunsAreConsumedOnlyOnceQueued: a ranking the cache refused leaves
// its recall runs for the next refresh; a stored one consumes them.
func TestRecallRunsAreConsumedOnlyOnceQueued(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		storeFails  bool
		wantConsume int
	}{{"stored", false, 1}, {"store failed", true, 0}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			e.recall.cands[3] = candidates(feed.SourceALS, 1, 2, 3, 4)
			if tt.storeFails {
				e.cache.failOn("Store", fault{err: errBoom})
			}
			if _, err := e.center(t).Feed(testCtx(t), refreshOf(3, 2, 200)); err != nil {
				t.Fatal(err)
			}
			if n := e.recall.count("Consume"); n != tt.wantConsume {
				t.Errorf("Consume calls = %d, want %d", n, tt.wantConsume)
			}
		})
	}
}

// TestClaimsDownTheFallbackKnowsWhatHistoryLacks: with the seen sets
// unreachable the claim falls back to history, which lacks a refresh whose
// history write failed (its served-log entry not yet applied); what this
// process served lately keeps the next refresh from serving it again, in the
// channel and from channel 0.
func TestClaimsDownTheFallbackKnowsWhatHistoryLacks(t *testing.T) {
	t.Parallel()
	e := newEnv()
	// Redis down: no cache and no seen sets; recall down too, so every
	// refresh is offered the same popular list; history takes no writes.
	e.claims.failOn("Claim", fault{err: errBoom})
	e.cache.failOn("Take", fault{err: errBoom})
	e.cache.failOn("Store", fault{err: errBoom})
	e.recall.failOn("Recall", fault{err: errBoom})
	e.history.failOn("Record", fault{err: errBoom})
	for _, ch := range []int32{0, 3} {
		e.popular.ids[ch] = []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	}
	c := e.center(t)
	var served []int64
	for i, ch := range []int32{0, 3, 3} {
		p, err := c.Feed(testCtx(t), refreshOf(ch, 3, int64(200+i)))
		if err != nil || len(p.IDs) != 3 {
			t.Fatalf("refresh %d of channel %d = %v, %v; want 3 ids", i, ch, p.IDs, err)
		}
		for _, id := range p.IDs {
			if slices.Contains(served, id) {
				t.Errorf("refresh %d of channel %d served %d again (%v)", i, ch, id, p.IDs)
			}
		}
		served = append(served, p.IDs...)
	}
}

// TestSeenSetsSeededAfterALossIncludeWhatHistoryLacks: Redis restarted empty
// while the history write of the last refresh had failed (its served-log entry
// not yet applied); the seed adds what this process served lately, so the
// next refresh does not serve it again.
func TestSeenSetsSeededAfterALossIncludeWhatHistoryLacks(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.history.failOn("Record", fault{err: errBoom})
	e.cache.put("u1", 3, 1, 2)
	c := e.center(t)
	first, err := c.Feed(testCtx(t), refreshOf(3, 2, 200))
	if err != nil || !slices.Equal(first.IDs, []int64{1, 2}) {
		t.Fatalf("first refresh = %v, %v; want [1 2]", first.IDs, err)
	}
	e.claims.lose()
	e.cache.put("u1", 3, 1, 2, 3, 4)
	second, err := c.Feed(testCtx(t), refreshOf(3, 2, 300))
	if err != nil || !slices.Equal(second.IDs, []int64{3, 4}) {
		t.Errorf("refresh after the seen sets were lost = %v, %v; want [3 4]", second.IDs, err)
	}
}

// TestASeenSetThatOutlivedAClaimsOutageLearnsWhatTheFallbackServed: the seen
// sets were unreachable for a moment (not lost); what the fallback served
// then is added to them before the next claim, so it does not come back once
// the process has forgotten it too.
func TestASeenSetThatOutlivedAClaimsOutageLearnsWhatTheFallbackServed(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cache.put("u1", 3, 1, 2)
	c := e.center(t)
	if _, err := c.Feed(testCtx(t), refreshOf(3, 1, 100)); err != nil { // seeds the sets
		t.Fatal(err)
	}
	e.claims.failOn("Claim", fault{err: errBoom})
	e.history.failOn("Record", fault{err: errBoom})
	p, err := c.Feed(testCtx(t), refreshOf(3, 1, 200))
	if err != nil || !slices.Equal(p.IDs, []int64{2}) {
		t.Fatalf("refresh with the claims down = %v, %v; want [2]", p.IDs, err)
	}
	e.claims.failOn("Claim", fault{})
	// Popped again (a refill put it back), and the process's memory of it
	// gone with time: only the seen set can refuse it now.
	c.recent = newRecent(recentPeriod, recentReaders)
	c.recent.putBack("u1", 3, []int64{2})
	e.cache.put("u1", 3, 2, 3)
	p, err = c.Feed(testCtx(t), refreshOf(3, 1, 300))
	if err != nil || !slices.Equal(p.IDs, []int64{3}) {
		t.Errorf("refresh after the outage = %v, %v; want [3], not 2 again", p.IDs, err)
	}
}

// TestWhatTheFallbackServedReachesTheSeenSetsWithoutAnotherRequest: once the
// seen sets answer again, SyncFallback adds what the fallback claim served,
// although the reader asks this process nothing more: their next refresh may
// reach another replica, which knows only the seen sets.
func TestWhatTheFallbackServedReachesTheSeenSetsWithoutAnotherRequest(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cache.put("u1", 3, 1, 2)
	c := e.center(t)
	if _, err := c.Feed(testCtx(t), refreshOf(3, 1, 100)); err != nil { // seeds the sets
		t.Fatal(err)
	}
	// Redis unreachable a moment: no cache, no claims; recall down too, so
	// the refresh is the popular list's.
	e.claims.failOn("Claim", fault{err: errBoom})
	e.cache.failOn("Take", fault{err: errBoom})
	e.recall.failOn("Recall", fault{err: errBoom})
	e.popular.ids[3] = []int64{1, 2, 3}
	if p, err := c.Feed(testCtx(t), refreshOf(3, 1, 200)); err != nil || !slices.Equal(p.IDs, []int64{2}) {
		t.Fatalf("refresh with the claims down = %v, %v; want [2]", p.IDs, err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() { done <- c.SyncFallback(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("SyncFallback: %v", err)
		}
	}()
	time.Sleep(3 * fallbackSyncEvery)
	if slices.Contains(e.claims.served("u1", 3), 2) {
		t.Fatal("the seen set got 2 while its claims were failing")
	}
	e.claims.failOn("Claim", fault{})
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(e.claims.served("u1", 3), 2); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the seen set of u1/3 = %v 5s after the claims came back; want it to hold 2, which the fallback served", e.claims.served("u1", 3))
		}
	}
}

// TestWhatTheFallbackServedWaitsForASeedInFlight: the fallback served 2 while
// the reader's seen sets were gone, and a seed that read recent before that
// is about to land without it. The sync that meets the unseeded set keeps 2,
// so the one after the seed adds it: dropping it there was a repeat once the
// cache handed 2 out again.
func TestWhatTheFallbackServedWaitsForASeedInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.claims.lose()
	c := e.center(t)
	r := refreshOf(3, 1, 100)
	c.recent.putBack("u1", 3, []int64{2}) // as the fallback claim leaves it
	if err := c.syncFallback(testCtx(t), r); err != nil {
		t.Fatalf("sync into unseeded sets: %v, want nil (the claim that follows seeds them)", err)
	}
	for _, ch := range []int32{3, 0} { // the seed in flight lands, without 2
		if err := e.claims.Seed(testCtx(t), "u1", ch, []int64{1}, 50, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.syncFallback(testCtx(t), r); err != nil {
		t.Fatal(err)
	}
	if got := e.claims.served("u1", 3); !slices.Contains(got, 2) {
		t.Errorf("seen set of u1/3 = %v after the seed and the next sync; want it to hold 2, which the fallback served", got)
	}
}

// TestUnseededSetsStillClaimAcrossReplicas: the seen sets answer but cannot be
// seeded (history's newest refresh unreadable), so history filters and the
// sets claim provisionally. Another replica, which never heard of what this
// one served (the reader's refresh reached it because the ring moved), must
// not serve those ids again: the sets refuse them.
func TestUnseededSetsStillClaimAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.claims.lose()
	e.history.failOn("Newest", fault{err: errBoom})
	// History lacks a's page for now: the served log's applier has not
	// written it (its consumer group rebalances after a replica died).
	e.history.failOn("Record", fault{err: errBoom})
	e.cache.failOn("Take", fault{err: errBoom})
	e.recall.failOn("Recall", fault{err: errBoom})
	e.popular.ids[3] = []int64{1, 2, 3, 4}
	a := e.center(t)
	other := newEnv() // the other replica: its own process, the same stores
	other.cache, other.recall, other.popular, other.history, other.claims = e.cache, e.recall, e.popular, e.history, e.claims
	b := other.center(t)

	pa, err := a.Feed(testCtx(t), refreshOf(3, 2, 200))
	if err != nil || !slices.Equal(pa.IDs, []int64{1, 2}) {
		t.Fatalf("replica a's refresh = %v, %v; want [1 2]", pa.IDs, err)
	}
	pb, err := b.Feed(testCtx(t), refreshOf(3, 2, 300))
	if err != nil || !slices.Equal(pb.IDs, []int64{3, 4}) {
		t.Errorf("replica b's refresh = %v, %v; want [3 4], not what replica a served", pb.IDs, err)
	}
}
