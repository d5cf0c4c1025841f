package recocenter

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// TestFeedRefreshOrHistory covers the time-stamp split of DESIGN.md §4: a
// refresh when time_stamp > the newest refresh, a history page otherwise.
func TestFeedRefreshOrHistory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		versions map[int64][]int64 // the reader's history of channel 3
		ts       int64
		want     feed.Page
		// wantRecorded is the history version at ts after the call; nil for
		// a history page, which writes nothing.
		wantRecorded []int64
	}{
		{
			name: "first refresh responds time_stamp 0",
			ts:   200,
			want: feed.Page{IDs: []int64{6, 5}, Timestamp: 0}, wantRecorded: []int64{6, 5},
		},
		{
			name:     "refresh when time_stamp > newest responds time_stamp = last",
			versions: map[int64][]int64{100: {1}, 150: {2}},
			ts:       200,
			want:     feed.Page{IDs: []int64{6, 5}, Timestamp: 150}, wantRecorded: []int64{6, 5},
		},
		{
			name:     "history page with no version at or before the stamp is empty, time_stamp 0",
			versions: map[int64][]int64{300: {1, 2}},
			ts:       200,
			want:     feed.Page{History: true},
		},
		{
			name:     "history page with one version is that list, time_stamp 0",
			versions: map[int64][]int64{100: {1, 2}, 300: {3, 4}},
			ts:       200,
			want:     feed.Page{IDs: []int64{1, 2}, History: true},
		},
		{
			name:     "history page with two or more versions is the newest list, time_stamp = the second's",
			versions: map[int64][]int64{50: {9}, 100: {1, 2}, 150: {3, 4}, 300: {5}},
			ts:       200,
			want:     feed.Page{IDs: []int64{3, 4}, Timestamp: 100, History: true},
		},
		{
			name:     "time_stamp equal to newest is a history page",
			versions: map[int64][]int64{100: {1, 2}, 300: {3, 4}},
			ts:       300,
			want:     feed.Page{IDs: []int64{3, 4}, Timestamp: 100, History: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			for ts, ids := range tt.versions {
				e.history.add("u1", 3, ts, ids...)
			}
			// Ids the cases' histories never hold, so every refresh page is
			// the same.
			e.recall.cands[3] = candidates(feed.SourceALS, 5, 6)
			r := refreshOf(3, 2, tt.ts)
			got, err := e.center(t).Feed(testCtx(t), r)
			if err != nil {
				t.Fatalf("Feed: %v", err)
			}
			if !slices.Equal(got.IDs, tt.want.IDs) || got.Timestamp != tt.want.Timestamp || got.History != tt.want.History {
				t.Errorf("Feed = %+v, want %+v", got, tt.want)
			}
			if rec := e.history.at("u1", 3, tt.ts); tt.wantRecorded != nil && !slices.Equal(rec, tt.wantRecorded) {
				t.Errorf("history at %d = %v, want %v", tt.ts, rec, tt.wantRecorded)
			}
			if tt.want.History {
				if n := e.history.count("Record"); n != 0 {
					t.Errorf("history page made %d Record calls, want 0", n)
				}
				// The cache's Take tells it from a refresh, taking nothing.
				if n := e.cache.count("Take"); n != 1 {
					t.Errorf("history page made %d cache Take calls, want 1", n)
				}
				if n := e.cache.total() - 1 + e.recall.total() + e.popular.total() + e.sort.total(); n != 0 {
					t.Errorf("history page made %d more cache/recall/popular/sort calls, want 0", n)
				}
			}
		})
	}
}

// TestFeedRefresh covers the refresh path of DESIGN.md §4: cache, recall,
// history filtering, ranking, mixing, recording.
func TestFeedRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		channel int32
		n       int
		cached  []int64
		cands   []feed.Candidate
		seen    map[int32][]int64 // history per channel, at stamp 100
		mix     [2]float64        // new and hot ratios
		want    []int64
		// wantRecall is how many Recall calls the refresh makes.
		wantRecall int
		// wantSeen is the channels of the Seen call; nil when none is made.
		wantSeen []int32
		// wantQueued is what the cache holds afterwards.
		wantQueued []int64
		// wantRanked is what was sent to ranking (nil: no Rank call).
		wantRanked []int64
	}{
		{
			name: "cache hit serves without recall", channel: 3, n: 2,
			cached: []int64{11, 12, 13}, cands: candidates(feed.SourceALS, 1, 2),
			want: []int64{11, 12}, wantRecall: 0, wantQueued: []int64{13},
		},
		{
			name: "partial cache then recall fills the rest", channel: 3, n: 3,
			cached: []int64{11}, cands: candidates(feed.SourceALS, 11, 5, 6, 7),
			want: []int64{11, 7, 6}, wantRecall: 1, wantSeen: []int32{3, 0}, wantQueued: []int64{5},
			wantRanked: []int64{5, 6, 7},
		},
		{
			name: "recall candidates seen in the channel or in channel 0 are dropped", channel: 3, n: 3,
			cands: candidates(feed.SourceALS, 5, 6, 7, 8),
			seen:  map[int32][]int64{3: {8}, 0: {7}, 4: {6}},
			want:  []int64{6, 5}, wantRecall: 1, wantSeen: []int32{3, 0}, wantRanked: []int64{5, 6},
		},
		{
			name: "channel 0 reads only channel 0's history", channel: 0, n: 3,
			cands: candidates(feed.SourceALS, 5, 6, 7),
			seen:  map[int32][]int64{0: {7}, 3: {6}},
			want:  []int64{6, 5}, wantRecall: 1, wantSeen: []int32{0}, wantRanked: []int64{5, 6},
		},
		{
			name: "served in ranked order, the rest queued in order", channel: 3, n: 2,
			cands: candidates(feed.SourceALS, 1, 2, 3, 4),
			want:  []int64{4, 3}, wantRecall: 1, wantSeen: []int32{3, 0}, wantQueued: []int64{2, 1},
			wantRanked: []int64{1, 2, 3, 4},
		},
		{
			name: "new and hot mixed at the strategy's ratios", channel: 3, n: 5,
			cands: slices.Concat(candidates(feed.SourceALS, 91, 92, 93, 94, 95, 96), candidates(feed.SourceNew, 1, 2), candidates(feed.SourceHot, 3)),
			mix:   [2]float64{0.25, 0.25},
			// Ranked: 96 95 94 93 92 91 3 2 1; new first (1), hot at 2 (3),
			// then ranked until a new id is due again at position 5.
			want: []int64{1, 3, 96, 95, 2}, wantRecall: 1, wantSeen: []int32{3, 0},
			wantQueued: []int64{94, 93, 92, 91}, wantRanked: []int64{91, 92, 93, 94, 95, 96, 1, 2, 3},
		},
		{
			name: "no mixing at ratio 0", channel: 3, n: 3,
			cands: slices.Concat(candidates(feed.SourceALS, 91, 92, 93), candidates(feed.SourceNew, 1), candidates(feed.SourceHot, 3)),
			want:  []int64{93, 92, 91}, wantRecall: 1, wantSeen: []int32{3, 0},
			wantQueued: []int64{3, 1}, wantRanked: []int64{91, 92, 93, 1, 3},
		},
		{
			name: "every candidate already seen gives an empty page", channel: 3, n: 2,
			cands: candidates(feed.SourceALS, 5, 6),
			seen:  map[int32][]int64{3: {5}, 0: {6}},
			want:  nil, wantRecall: 1, wantSeen: []int32{3, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			e.cache.put("u1", tt.channel, tt.cached...)
			e.recall.cands[tt.channel] = tt.cands
			for ch, ids := range tt.seen {
				e.history.add("u1", ch, 100, ids...)
			}
			r := refreshOf(tt.channel, tt.n, 200)
			r.Strategy.NewRatio, r.Strategy.HotRatio = tt.mix[0], tt.mix[1]
			c := e.center(t)
			got, err := c.Feed(testCtx(t), r)
			if err != nil {
				t.Fatalf("Feed: %v", err)
			}
			if !slices.Equal(got.IDs, tt.want) || got.History {
				t.Errorf("Feed ids = %v (history %v), want %v (refresh)", got.IDs, got.History, tt.want)
			}
			if n := e.recall.count("Recall"); n != tt.wantRecall {
				t.Errorf("Recall calls = %d, want %d", n, tt.wantRecall)
			}
			var gotSeen []int32
			if len(e.history.channels) > 0 {
				gotSeen = e.history.channels[0]
			}
			if !slices.Equal(gotSeen, tt.wantSeen) || len(e.history.channels) > 1 {
				t.Errorf("Seen channels = %v, want one call with %v", e.history.channels, tt.wantSeen)
			}
			if q := e.cache.queue("u1", tt.channel); !slices.Equal(q, tt.wantQueued) {
				t.Errorf("cache holds %v, want %v", q, tt.wantQueued)
			}
			var gotRanked []int64
			if len(e.sort.ids) > 0 {
				gotRanked = e.sort.ids[0]
				if e.sort.models[0] != r.Strategy.Sort {
					t.Errorf("Rank model = %d, want %d", e.sort.models[0], r.Strategy.Sort)
				}
			}
			if !slices.Equal(gotRanked, tt.wantRanked) {
				t.Errorf("ranked %v, want %v", gotRanked, tt.wantRanked)
			}
			if got, want := testutil.ToFloat64(c.metrics.ranked.WithLabelValues(r.Strategy.Name)), float64(len(tt.wantRanked)); got != want {
				t.Errorf("ranked_articles_total{strategy=%q} = %v, want %v", r.Strategy.Name, got, want)
			}
			if e.recall.total() > 0 && !slices.Equal(e.recall.sources[0], r.Strategy.Recall) {
				t.Errorf("Recall sources = %v, want %v", e.recall.sources[0], r.Strategy.Recall)
			}
			// Served ids are recorded at the request's stamp; nothing when none.
			if rec := e.history.at("u1", tt.channel, r.Timestamp); !slices.Equal(rec, tt.want) {
				t.Errorf("history at %d = %v, want %v", r.Timestamp, rec, tt.want)
			}
			if len(tt.want) == 0 && e.history.count("Record") != 0 {
				t.Errorf("Record calls = %d for an empty page, want 0", e.history.count("Record"))
			}
			if d := e.degradations(t); len(d) != 0 {
				t.Errorf("degradations = %v, want none", d)
			}
		})
	}
}

// TestFeedAnonymous: anonymous readers get the channel's popular articles and
// leave no history.
func TestFeedAnonymous(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.popular.ids[3] = []int64{7, 8, 9, 10}
	e.cache.put("anony", 3, 1, 2, 3)
	r := refreshOf(3, 3, 200)
	r.User, r.Anonymous = "anony", true
	got, err := e.center(t).Feed(testCtx(t), r)
	if err != nil {
		t.Fatalf("Feed: %v", err)
	}
	if want := []int64{7, 8, 9}; !slices.Equal(got.IDs, want) || got.Timestamp != 0 || got.History {
		t.Errorf("Feed = %+v, want ids %v, time_stamp 0", got, want)
	}
	if e.popular.n[0] != 3 {
		t.Errorf("Popular n = %d, want 3", e.popular.n[0])
	}
	if n := e.history.total(); n != 0 {
		t.Errorf("history calls = %d, want 0 (no history for anonymous readers)", n)
	}
	if n := e.cache.total() + e.recall.total() + e.sort.total(); n != 0 {
		t.Errorf("cache/recall/sort calls = %d, want 0", n)
	}

	// With popular down too there is nothing to serve: the error is the
	// dependency's, not the caller's.
	e2 := newEnv()
	e2.popular.failOn("Popular", fault{err: errors.New("redis down")})
	if _, err := e2.center(t).Feed(testCtx(t), r); err == nil || errors.Is(err, ErrInvalidRequest) {
		t.Errorf("anonymous Feed with popular down: err = %v, want a dependency error", err)
	}
}

// TestFeedInvalidRequest: every out-of-range field is ErrInvalidRequest, and
// nothing is read or written.
func TestFeedInvalidRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(*feed.Request)
		substr string
	}{
		{"empty user", func(r *feed.Request) { r.User = "" }, "user_id"},
		{"negative channel", func(r *feed.Request) { r.Channel = -1 }, "channel_id"},
		{"channel past the last", func(r *feed.Request) { r.Channel = feed.NumChannels }, "channel_id"},
		{"article_num 0", func(r *feed.Request) { r.N = 0 }, "article_num"},
		{"article_num > MaxArticles", func(r *feed.Request) { r.N = feed.MaxArticles + 1 }, "article_num"},
		{"time_stamp 0", func(r *feed.Request) { r.Timestamp = 0 }, "time_stamp"},
		{"negative time_stamp", func(r *feed.Request) { r.Timestamp = -5 }, "time_stamp"},
		{"missing strategy", func(r *feed.Request) { r.Strategy = feed.Strategy{} }, "strategy"},
		{"strategy without sources", func(r *feed.Request) { r.Strategy.Recall = nil }, "recall"},
		{"strategy with source 105", func(r *feed.Request) { r.Strategy.Recall = []feed.Source{feed.SourceSimilar} }, "source 105"},
		{"strategy without sort model", func(r *feed.Request) { r.Strategy.Sort = 0 }, "sort"},
		{"strategy ratios over 1", func(r *feed.Request) { r.Strategy.NewRatio, r.Strategy.HotRatio = 0.6, 0.6 }, "ratio"},
		{"invalid anonymous request", func(r *feed.Request) { r.Anonymous, r.N = true, 0 }, "article_num"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			e.cache.put("u1", 3, 1, 2)
			e.recall.cands[3] = candidates(feed.SourceALS, 5, 6)
			r := refreshOf(3, 2, 200)
			tt.edit(&r)
			got, err := e.center(t).Feed(testCtx(t), r)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Feed err = %v, want ErrInvalidRequest", err)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("Feed err = %q, want it to name %q", err, tt.substr)
			}
			if got.IDs != nil || got.Timestamp != 0 {
				t.Errorf("Feed page = %+v, want zero", got)
			}
			if n := e.calls(); n != 0 {
				t.Errorf("ports got %d calls, want 0 (nothing read or written)", n)
			}
		})
	}
}

// TestFeedHistoryPageFails: a history page that cannot be read answers an
// empty page (nothing older to scroll to), counted as a degradation, not an
// error.
func TestFeedHistoryPageFails(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.history.add("u1", 3, 300, 1)
	e.history.failOn("Page", fault{err: errors.New("hbase down")})
	got, err := e.center(t).Feed(testCtx(t), refreshOf(3, 2, 100))
	if err != nil || !got.History || len(got.IDs) != 0 || got.Timestamp != 0 {
		t.Errorf("Feed = %+v, %v; want an empty history page", got, err)
	}
	if d := e.degradations(t); d["history"] != 1 {
		t.Errorf("degradations = %v, want history: 1", d)
	}
}

// TestFeedDegradations covers DESIGN.md §6: each failing dependency degrades
// the page, is counted under its cause and logged; nothing errors.
//
// Every case: reader u1, channel 3, article_num 2, time_stamp 200; history
// holds 6 in channel 3 (at 100) and 5 in channel 0; recall offers 1..6 (ALS),
// so the healthy page is [4 3]; popular is [6 5 7 8 9].
func TestFeedDegradations(t *testing.T) {
	t.Parallel()
	boom := errBoom
	tests := []struct {
		name   string
		faults func(e *env)
		want   feed.Page
		// wantCauses is reco_feed_degradations_total by cause, and the "feed
		// degraded" lines by cause; exact unless causesAtLeast.
		wantCauses    map[string]float64
		causesAtLeast bool
		// pageUnchecked skips the page's ids and what history holds: the
		// case pins the bound and the absence of an error only.
		pageUnchecked bool
		// wantRecorded is history at 200 afterwards (nil: nothing recorded).
		wantRecorded      []int64
		wantRecordCalls   int
		wantWriteFailures float64
		// maxElapsed bounds the call when a dependency hangs (0: unchecked).
		maxElapsed time.Duration
		check      func(t *testing.T, e *env)
	}{
		{
			name: "cache down and history Newest fails: still serves a refresh, the claims keep out what was seen",
			faults: func(e *env) {
				e.cache.failOn("Take", fault{err: boom})
				e.cache.failOn("Store", fault{err: boom})
				e.history.failOn("Newest", fault{err: boom})
			},
			want:       feed.Page{IDs: []int64{4, 3}},
			wantCauses: map[string]float64{"cache": 2, "history": 1}, wantRecorded: []int64{4, 3},
			check: func(t *testing.T, e *env) {
				if n := e.history.count("Seen"); n != 0 {
					t.Errorf("Seen calls = %d, want 0 with history down", n)
				}
			},
		},
		{
			name:       "history Seen fails: the claims keep out what was seen",
			faults:     func(e *env) { e.history.failOn("Seen", fault{err: boom}) },
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"history": 1}, wantRecorded: []int64{4, 3},
		},
		{
			name: "cache down: the ranking is served directly, minus seen",
			faults: func(e *env) {
				e.cache.failOn("Take", fault{err: boom})
				e.cache.failOn("Store", fault{err: boom})
			},
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"cache": 2}, wantRecorded: []int64{4, 3},
		},
		{
			name:       "cache Take fails after Store worked: the ranking is served directly",
			faults:     func(e *env) { e.cache.failOn("Take", fault{err: boom}) },
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"cache": 2}, wantRecorded: []int64{4, 3},
		},
		{
			name: "cache down and history Seen fails: the ranking, the claims keep out what was seen",
			faults: func(e *env) {
				e.cache.failOn("Take", fault{err: boom})
				e.cache.failOn("Store", fault{err: boom})
				e.history.failOn("Seen", fault{err: boom})
			},
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"cache": 2, "history": 1}, wantRecorded: []int64{4, 3},
		},
		{
			name:       "cache Store fails: the ranking is served directly",
			faults:     func(e *env) { e.cache.failOn("Store", fault{err: boom}) },
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"cache": 1}, wantRecorded: []int64{4, 3},
			check: func(t *testing.T, e *env) {
				if q := e.cache.queue("u1", 3); len(q) != 0 {
					t.Errorf("cache holds %v, want nothing", q)
				}
			},
		},
		{
			name:       "cache Store hangs: bounded by fill_timeout, the ranking is served directly",
			faults:     func(e *env) { e.cache.failOn("Store", fault{hang: true}) },
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"cache": 1}, wantRecorded: []int64{4, 3},
			maxElapsed: time.Second,
		},
		{
			name:       "recall fails: popular fallback minus seen, the rest queued",
			faults:     func(e *env) { e.recall.failOn("Recall", fault{err: boom}) },
			want:       feed.Page{IDs: []int64{7, 8}, Timestamp: 100},
			wantCauses: map[string]float64{"recall": 1}, wantRecorded: []int64{7, 8},
			check: func(t *testing.T, e *env) {
				if q := e.cache.queue("u1", 3); !slices.Equal(q, []int64{9}) {
					t.Errorf("cache holds %v, want [9]", q)
				}
				if n := e.sort.count("Rank"); n != 0 {
					t.Errorf("Rank calls = %d, want 0", n)
				}
			},
		},
		{
			// The page answers within the pass's deadline; what it holds is
			// TestHungRecallLeavesRoomForPopularFallback's concern.
			name:   "recall hangs: costs at most fill_timeout and the page still answers",
			faults: func(e *env) { e.recall.failOn("Recall", fault{hang: true}) },
			want:   feed.Page{Timestamp: 100}, pageUnchecked: true,
			wantCauses: map[string]float64{"recall": 1}, causesAtLeast: true,
			maxElapsed: time.Second,
		},
		{
			name:       "sort fails: recall order",
			faults:     func(e *env) { e.sort.failOn("Rank", fault{err: boom}) },
			want:       feed.Page{IDs: []int64{1, 2}, Timestamp: 100},
			wantCauses: map[string]float64{"sort": 1}, wantRecorded: []int64{1, 2},
		},
		{
			name:       "sort hangs: bounded by fill_timeout, recall order",
			faults:     func(e *env) { e.sort.failOn("Rank", fault{hang: true}) },
			want:       feed.Page{IDs: []int64{1, 2}, Timestamp: 100},
			wantCauses: map[string]float64{"sort": 1}, causesAtLeast: true, wantRecorded: []int64{1, 2},
			maxElapsed: time.Second,
		},
		{
			name: "recall and popular fail: empty page, no error",
			faults: func(e *env) {
				e.recall.failOn("Recall", fault{err: boom})
				e.popular.failOn("Popular", fault{err: boom})
			},
			want: feed.Page{Timestamp: 100},
			// Once to top up the ranking, once to backfill the page.
			wantCauses: map[string]float64{"recall": 1, "popular": 2},
		},
		{
			name: "cache, recall and popular fail: empty page, no error",
			faults: func(e *env) {
				e.cache.failOn("Take", fault{err: boom})
				e.recall.failOn("Recall", fault{err: boom})
				e.popular.failOn("Popular", fault{err: boom})
			},
			want:       feed.Page{Timestamp: 100},
			wantCauses: map[string]float64{"cache": 1, "recall": 1, "popular": 2},
		},
		{
			name:   "history Record fails: untouched, the served log holds the ids",
			faults: func(e *env) { e.history.failOn("Record", fault{err: boom}) },
			want:   feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			check: func(t *testing.T, e *env) {
				if got := e.served.entries; len(got) != 1 || got[0].Timestamp != 200 || !slices.Equal(got[0].IDs, []int64{4, 3}) {
					t.Errorf("served log = %v, want [4 3] at 200", got)
				}
				if !slices.Equal(e.served.claimed, []bool{true}) {
					t.Errorf("served log entries claimed = %v, want [true]", e.served.claimed)
				}
			},
		},
		{
			name:       "history Record hangs: untouched, the refresh takes no history round trip",
			faults:     func(e *env) { e.history.failOn("Record", fault{hang: true}); e.cache.put("u1", 3, 4, 3) },
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			maxElapsed: 50 * time.Millisecond,
			check: func(t *testing.T, e *env) {
				for _, m := range []string{"Newest", "Seen", "Page", "Record"} {
					if n := e.history.count(m); n != 0 {
						t.Errorf("history %s calls = %d, want 0 on a cache hit with the seen sets warm", m, n)
					}
				}
			},
		},
		{
			name:            "served log fails: history holds the ids",
			faults:          func(e *env) { e.served.failOn("Append", fault{err: boom}) },
			want:            feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses:      map[string]float64{"log": 1},
			wantRecorded:    []int64{4, 3},
			wantRecordCalls: 1,
		},
		{
			name:            "served log hangs (Kafka down): bounded by the request's deadline, history holds the ids",
			faults:          func(e *env) { e.served.failOn("Append", fault{hang: true}) },
			want:            feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses:      map[string]float64{"log": 1},
			wantRecorded:    []int64{4, 3},
			wantRecordCalls: 1,
			maxElapsed:      time.Second,
		},
		{
			name:       "claims fail (Redis down): history filters instead",
			faults:     func(e *env) { e.claims.failOn("Claim", fault{err: boom}); e.cache.failOn("Take", fault{err: boom}) },
			want:       feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantCauses: map[string]float64{"claims": 1}, causesAtLeast: true,
			check: func(t *testing.T, e *env) {
				if !slices.Equal(e.served.claimed, []bool{false}) {
					t.Errorf("served log entries claimed = %v, want [false]: the seen sets lack the page", e.served.claimed)
				}
			},
			wantRecorded: []int64{4, 3},
		},
		{
			name:         "seen sets lost (Redis restarted empty): seeded from history, nothing seen comes back",
			faults:       func(e *env) { e.claims.lose(); e.cache.put("u1", 3, 6, 5) },
			want:         feed.Page{IDs: []int64{4, 3}, Timestamp: 100},
			wantRecorded: []int64{4, 3},
			check: func(t *testing.T, e *env) {
				if n := e.claims.count("Seed"); n != 2 {
					t.Errorf("Seed calls = %d, want 2 (the channel and channel 0)", n)
				}
				if got := e.claims.served("u1", 3); !slices.Equal(got, []int64{3, 4, 6}) {
					t.Errorf("seen set of channel 3 = %v, want history's 6 and the served 3, 4", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv()
			e.cfg.FillTimeout, e.cfg.HistoryTimeout = 100*time.Millisecond, 100*time.Millisecond
			e.history.add("u1", 3, 100, 6)
			e.history.add("u1", 0, 100, 5)
			e.recall.cands[3] = candidates(feed.SourceALS, 1, 2, 3, 4, 5, 6)
			e.popular.ids[3] = []int64{6, 5, 7, 8, 9}
			tt.faults(e)
			c := e.center(t)
			r := refreshOf(3, 2, 200)

			// Routing's deadline (clients.recocenter.timeout).
			ctx, cancel := context.WithTimeout(testCtx(t), 800*time.Millisecond)
			defer cancel()
			start := time.Now()
			got, err := c.Feed(ctx, r)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Feed: %v, want a degraded page", err)
			}
			if (!tt.pageUnchecked && !slices.Equal(got.IDs, tt.want.IDs)) || got.Timestamp != tt.want.Timestamp || got.History {
				t.Errorf("Feed = %+v, want %+v", got, tt.want)
			}
			if tt.maxElapsed > 0 && elapsed > tt.maxElapsed {
				t.Errorf("Feed took %v, want at most %v (fill_timeout %v)", elapsed, tt.maxElapsed, e.cfg.FillTimeout)
			}
			causes, logged := e.degradations(t), e.degradedLogs(t, r)
			if tt.causesAtLeast {
				for cause, n := range tt.wantCauses {
					if causes[cause] < n || logged[cause] < n {
						t.Errorf("degradations = %v, logged %v, want at least %v", causes, logged, tt.wantCauses)
					}
				}
			} else {
				if !sameMap(causes, tt.wantCauses) {
					t.Errorf("reco_feed_degradations_total = %v, want %v", causes, tt.wantCauses)
				}
				if !sameMap(logged, tt.wantCauses) {
					t.Errorf(`"feed degraded" lines by cause = %v, want %v`, logged, tt.wantCauses)
				}
			}
			if rec := e.history.at("u1", 3, 200); !tt.pageUnchecked && !slices.Equal(rec, tt.wantRecorded) {
				t.Errorf("history at 200 = %v, want %v", rec, tt.wantRecorded)
			}
			if n := e.history.count("Record"); !tt.pageUnchecked && n != tt.wantRecordCalls {
				t.Errorf("Record calls = %d, want %d", n, tt.wantRecordCalls)
			}
			// Read by name from the registry (what is exported) and through
			// testutil (the collector itself): both must agree.
			if got := counterByName(t, e.reg, "reco_history_write_failures_total"); got != tt.wantWriteFailures {
				t.Errorf("reco_history_write_failures_total = %v, want %v", got, tt.wantWriteFailures)
			}
			if got := testutil.ToFloat64(c.metrics.historyFailed); got != tt.wantWriteFailures {
				t.Errorf("historyFailed collector = %v, want %v", got, tt.wantWriteFailures)
			}
			lost := e.logs.FilterMessage(lostMessage).All()
			switch {
			case tt.wantWriteFailures == 0 && len(lost) != 0:
				t.Errorf("logged %d lost-history lines, want none", len(lost))
			case tt.wantWriteFailures > 0 && len(lost) != 1:
				t.Errorf("logged %d lost-history lines, want 1", len(lost))
			case tt.wantWriteFailures > 0:
				f := lost[0].ContextMap()
				if lost[0].Level != zap.ErrorLevel {
					t.Errorf("lost-history line at %v, want error", lost[0].Level)
				}
				if gotIDs, wantIDs := fmtIDs(f["ids"]), fmtInt64s(got.IDs); gotIDs != wantIDs {
					t.Errorf("lost-history ids = %s, want %s", gotIDs, wantIDs)
				}
				if f["user"] != r.User || f["channel"] != r.Channel || f["strategy"] != r.Strategy.Name || f["time_stamp"] != r.Timestamp {
					t.Errorf("lost-history fields = %v, want user %q channel %d strategy %q time_stamp %d", f, r.User, r.Channel, r.Strategy.Name, r.Timestamp)
				}
			}
			if tt.check != nil {
				tt.check(t, e)
			}
		})
	}
}

// lostMessage is the error line of a refresh whose ids nothing recorded.
const lostMessage = "served ids not recorded: served log and history both failed"

// TestFeedRecordLostIsAnError: when the served log and history both fail,
// nothing would remember the page, so the refresh is an error; it is counted
// and logged with the ids.
func TestFeedRecordLostIsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cache.put("u1", 3, 1, 2)
	e.history.failOn("Record", fault{err: errBoom})
	e.served.failOn("Append", fault{err: errBoom})
	c := e.center(t)
	r := refreshOf(3, 2, 200)
	if _, err := c.Feed(testCtx(t), r); !errors.Is(err, errBoom) || errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("Feed err = %v, want it to wrap %v", err, errBoom)
	}
	if got := testutil.ToFloat64(c.metrics.historyFailed); got != 1 {
		t.Errorf("reco_history_write_failures_total = %v, want 1", got)
	}
	lost := e.logs.FilterMessage(lostMessage).All()
	if len(lost) != 1 || lost[0].Level != zap.ErrorLevel {
		t.Fatalf("lost lines = %v, want one at error level", lost)
	}
	if f := lost[0].ContextMap(); fmtIDs(f["ids"]) != fmtInt64s([]int64{1, 2}) || f["user"] != r.User || f["time_stamp"] != r.Timestamp {
		t.Errorf("lost line fields = %v, want ids [1 2], user and time_stamp", f)
	}
}

// TestHistoryPageRightAfterItsRefreshWhileTheApplierLags: the served log's
// applier writes history behind the answers (seconds while its consumer group
// rebalances); a reader paging back meanwhile still gets the refreshes this
// process served them, in order.
func TestHistoryPageRightAfterItsRefreshWhileTheApplierLags(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.served.stalled = true
	e.recall.cands[3] = candidates(feed.SourceALS, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	c := e.center(t)
	var pages [][]int64
	for _, ts := range []int64{100, 200, 300} {
		p, err := c.Feed(testCtx(t), refreshOf(3, 3, ts))
		if err != nil || p.History || len(p.IDs) != 3 {
			t.Fatalf("refresh at %d = %+v, %v; want 3 ids", ts, p, err)
		}
		pages = append(pages, p.IDs)
	}
	if got := e.history.count("Record"); got != 0 {
		t.Fatalf("history got %d writes, want none: the applier is stalled", got)
	}
	for _, tt := range []struct {
		at       int64
		want     []int64
		wantNext int64
	}{{300, pages[2], 200}, {250, pages[1], 100}, {100, pages[0], 0}, {99, nil, 0}} {
		got, err := c.Feed(testCtx(t), refreshOf(3, 3, tt.at))
		if err != nil || !got.History || !slices.Equal(got.IDs, tt.want) || got.Timestamp != tt.wantNext {
			t.Errorf("history page at %d = %+v, %v; want %v next %d", tt.at, got, err, tt.want, tt.wantNext)
		}
	}
}

// Two writes at one stamp are one refresh, whichever store holds them.
func TestNewestTwoMergesOneStamp(t *testing.T) {
	t.Parallel()
	got := newestTwo([]storage.Version{{Timestamp: 100, IDs: []int64{1}}, {Timestamp: 300, IDs: []int64{5, 6}}, {Timestamp: 200, IDs: []int64{3}}, {Timestamp: 300, IDs: []int64{6, 7}}})
	want := []storage.Version{{Timestamp: 300, IDs: []int64{5, 6, 7}}, {Timestamp: 200, IDs: []int64{3}}}
	if len(got) != len(want) {
		t.Fatalf("newestTwo = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Timestamp != want[i].Timestamp || !slices.Equal(got[i].IDs, want[i].IDs) {
			t.Errorf("newestTwo = %v, want %v", got, want)
		}
	}
}

// A reader whose seen sets are gone (Redis restarted empty, or they expired)
// is seeded from history, and the refresh excludes what that read found
// without reading history again.
func TestASeededRefreshReadsHistoryOncePerChannel(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.claims.lose()
	e.history.add("u1", 3, 100, 5)
	e.history.add("u1", 0, 100, 6)
	e.recall.cands[3] = candidates(feed.SourceALS, 5, 6, 7, 8)
	p, err := e.center(t).Feed(testCtx(t), refreshOf(3, 2, 200))
	if err != nil || !slices.Equal(p.IDs, []int64{8, 7}) {
		t.Fatalf("refresh = %+v, %v; want [8 7]: 5 and 6 are in history", p, err)
	}
	if n := e.history.count("Seen"); n != 2 {
		t.Errorf("history Seen calls = %d, want 2 (one per channel, for the seed)", n)
	}
}

// TestAHungCacheLeavesTheRefreshTimeToDegrade: the cache's step (Take, and
// the seeding of lost seen sets it may need) gets half the request's time, so
// a cache that hangs (its process stopped, or Redis not answering) still
// leaves the fallback, the record and the answer theirs before routing's
// deadline.
func TestAHungCacheLeavesTheRefreshTimeToDegrade(t *testing.T) {
	t.Parallel()
	e := newEnv()
	e.cfg.FillTimeout, e.cfg.HistoryTimeout = 100*time.Millisecond, 100*time.Millisecond
	e.cache.failOn("Take", fault{hang: true})
	e.recall.cands[3] = candidates(feed.SourceALS, 1, 2, 3, 4)
	c := e.center(t)
	const budget = 800 * time.Millisecond
	ctx, cancel := context.WithTimeout(testCtx(t), budget)
	defer cancel()
	start := time.Now()
	p, err := c.Feed(ctx, refreshOf(3, 2, 200))
	if elapsed := time.Since(start); err != nil || len(p.IDs) != 2 || elapsed >= budget-answerMargin {
		t.Errorf("Feed with the cache hung = %v, %v after %v; want 2 ids before %v (the deadline less the answer's margin)", p.IDs, err, elapsed, budget-answerMargin)
	}
}
