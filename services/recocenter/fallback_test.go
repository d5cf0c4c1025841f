package recocenter

// Fallback tests: each pins a promise of DESIGN.md §4/§6 that an earlier
// version of service.go broke (found by these tests); the comments say what it
// did then.

import (
	"slices"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// bugEnv is reader u1, channel 3, time_stamp 200: history holds 6 (channel 3)
// and 5 (channel 0); popular is [6 5 7 8 9].
func bugEnv() *env {
	e := newEnv()
	e.cfg.FillTimeout = 100 * time.Millisecond
	e.history.add("u1", 3, 100, 6)
	e.history.add("u1", 0, 100, 5)
	e.popular.ids[3] = []int64{6, 5, 7, 8, 9}
	return e
}

// TestHungRecallLeavesRoomForPopularFallback — DESIGN.md §6: "a hop's deadline
// leaves room for its fallback (a hung HBase costs a bounded, small part of the
// request, then the fallback answers)" and "no recall → hot/new".
//
// Input: Recall hangs, popular is healthy, fill_timeout 100ms.
// Then: an empty page. ranking() calls Recall on the pass context, which hangs
// until the pass's whole FillTimeout is spent, then calls popularUnseen on that
// same, already expired context: Popular fails at once (a gRPC or Redis client
// refuses an ended context), the pass stores nothing and the page is empty
// (causes recall and popular both counted).
// Want: the popular fallback minus what the reader has seen, [7 8].
func TestHungRecallLeavesRoomForPopularFallback(t *testing.T) {
	t.Parallel()
	e := bugEnv()
	e.recall.failOn("Recall", fault{hang: true})
	got, err := e.center(t).Feed(testCtx(t), refreshOf(3, 2, 200))
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	if want := []int64{7, 8}; !slices.Equal(got.IDs, want) {
		t.Errorf("hung recall: Feed ids = %v, want the popular fallback %v (degradations %v: the fallback ran on the pass's expired context)",
			got.IDs, want, e.degradations(t))
	}
}

// TestRecallRunningShortIsBackfilledFromPopular — DESIGN.md §4 "Never dark: a
// refresh returns article_num ids whenever the channel holds at least that many
// articles the user has not seen. When recall and the cache run out, backfill
// from the channel's full hot and new lists ... before returning fewer."
//
// Input: article_num 3, cache empty, recall healthy but offering only 4 (its
// other candidates 5 and 6 are seen), popular [6 5 7 8 9] holds 7, 8, 9 unseen.
// Then: [4]. ranking() uses popular articles only when Recall errors; a recall
// that succeeds with too few unseen candidates is served short.
// Want: 3 unseen ids, 4 first (the ranking), then backfill from popular.
func TestRecallRunningShortIsBackfilledFromPopular(t *testing.T) {
	t.Parallel()
	e := bugEnv()
	e.recall.cands[3] = candidates(feed.SourceALS, 4, 5, 6)
	got, err := e.center(t).Feed(testCtx(t), refreshOf(3, 3, 200))
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	if len(got.IDs) != 3 || got.IDs[0] != 4 || slices.Contains(got.IDs, 5) || slices.Contains(got.IDs, 6) {
		t.Errorf("recall short of article_num: Feed ids = %v, want 3 unseen ids starting with 4, backfilled from popular (7, 8, 9)", got.IDs)
	}
}

// TestPopFailingAfterStoreServesPopular — DESIGN.md §6: "no cache →
// hot/new for the channel"; §4 "Never dark".
//
// Input: article_num 2, cache empty; the pass ranks [4 3 2 1] and stores it;
// then the cache's Take of this refresh's share fails.
// Then: an empty page (cause cache counted). fillAndPop logs the failed pop and
// returns nil, although the ranking is in hand and popular is healthy.
// Want: 2 unseen ids (the head of the ranking, or the popular fallback minus
// seen) rather than nothing.
func TestPopFailingAfterStoreServesPopular(t *testing.T) {
	t.Parallel()
	e := bugEnv()
	e.recall.cands[3] = candidates(feed.SourceALS, 1, 2, 3, 4, 5, 6)
	e.cache.failOn("Take", fault{err: errBoom, skip: 1})
	got, err := e.center(t).Feed(testCtx(t), refreshOf(3, 2, 200))
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	if len(got.IDs) != 2 || slices.Contains(got.IDs, 5) || slices.Contains(got.IDs, 6) {
		t.Errorf("cache Pop failed after the store: Feed ids = %v, want 2 unseen ids (e.g. [4 3] or [7 8])", got.IDs)
	}
	if d := e.degradations(t); d["cache"] != 1 {
		t.Errorf("degradations = %v, want cache 1", d)
	}
}
