package layout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// fakeSets is an in-memory SortedSets that records the calls that change it;
// the methods the tests here do not reach are left to the nil SortedSets.
type fakeSets struct {
	SortedSets
	sets  map[string]map[int64]float64
	ttls  map[string]time.Duration
	calls []string
}

func newFakeSets() *fakeSets {
	return &fakeSets{sets: map[string]map[int64]float64{}, ttls: map[string]time.Duration{}}
}

func (f *fakeSets) Add(_ context.Context, key string, members []storage.Scored, ttl time.Duration) error {
	f.calls = append(f.calls, "add "+key)
	if f.sets[key] == nil {
		f.sets[key] = map[int64]float64{}
	}
	for _, m := range members {
		f.sets[key][m.ID] = m.Score
	}
	if ttl > 0 {
		f.ttls[key] = ttl
	}
	return nil
}

func (f *fakeSets) PopMax(context.Context, string, int) ([]int64, error) { return nil, nil }

func (f *fakeSets) ClaimUnseen(_ context.Context, key, also string, ids []int64, ttl time.Duration, _ bool) ([]int64, bool, error) {
	f.calls = append(f.calls, "claim "+key+" "+also)
	return ids, true, nil
}

func (f *fakeSets) SeedSeen(_ context.Context, key string, ids []int64, _ int64, ttl time.Duration) error {
	f.calls = append(f.calls, "seed "+key)
	return nil
}

func (f *fakeSets) PopUnseen(_ context.Context, queue, seen, also string, _ int64, _ int, _ time.Duration) (Popped, error) {
	f.calls = append(f.calls, "take "+queue+" "+seen+" "+also)
	return Popped{Seeded: true}, nil
}

func (f *fakeSets) Top(_ context.Context, key string, n int) ([]storage.Scored, error) {
	var all []storage.Scored
	for id, s := range f.sets[key] {
		all = append(all, storage.Scored{ID: id, Score: s})
	}
	return storage.Highest(all, n), nil
}

func (f *fakeSets) Delete(_ context.Context, keys ...string) error {
	for _, k := range keys {
		f.calls = append(f.calls, "delete "+k)
		delete(f.sets, k)
	}
	return nil
}

// Replace deletes the old list first only when it holds an article the new one
// does not: otherwise adding over it is atomic for readers, who never see it
// empty.
func TestReplaceDeletesOnlyStaleLists(t *testing.T) {
	ctx := context.Background()
	f := newFakeSets()
	s := NewSets(f)
	key := HotKey(4)
	step := func(articles []storage.Scored, want ...string) {
		t.Helper()
		f.calls = nil
		if err := s.Replace(ctx, storage.HotList, 4, articles); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.calls, want) {
			t.Errorf("Replace(%v) calls = %v, want %v", articles, f.calls, want)
		}
	}
	step([]storage.Scored{{ID: 1, Score: 1}}, "add "+key)
	step([]storage.Scored{{ID: 1, Score: 2}, {ID: 2, Score: 1}}, "add "+key)
	step([]storage.Scored{{ID: 2, Score: 1}}, "delete "+key, "add "+key)
	step(nil, "delete "+key)
}

// Store scores ids so that ZPOPMAX returns them in the given order, the first
// at len(ids), under CacheKey; Claim checks the channel's seen set and channel
// 0's (only its own for channel 0); Seed writes the channel's.
func TestStoreClaimAndSeedKeys(t *testing.T) {
	ctx := context.Background()
	f := newFakeSets()
	s := NewSets(f)
	if err := s.Store(ctx, "u", 2, []int64{7, 5, 9}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := f.sets[CacheKey("u", 2)]; got[7] != 3 || got[5] != 2 || got[9] != 1 || f.ttls[CacheKey("u", 2)] != time.Hour {
		t.Errorf("Store wrote %v (ttl %v), want 7:3 5:2 9:1 with ttl 1h", got, f.ttls[CacheKey("u", 2)])
	}
	f.calls = nil
	_, _ = s.Claim(ctx, "u", 2, []int64{1}, time.Minute)
	_, _ = s.Claim(ctx, "u", 0, []int64{1}, time.Minute)
	_ = s.Seed(ctx, "u", 2, nil, 0, time.Minute)
	_, _ = s.TakeUnseen(ctx, "u", 2, 1, 1, time.Minute)
	want := []string{"claim " + SeenKey("u", 2) + " " + SeenKey("u", 0), "claim " + SeenKey("u", 0) + " ", "seed " + SeenKey("u", 2),
		"take " + CacheKey("u", 2) + " " + SeenKey("u", 2) + " " + SeenKey("u", 0)}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls = %q, want %q", f.calls, want)
	}
	if SeenKey("u", 2) != "reco:seen:{u}:2" {
		t.Errorf("SeenKey = %q: the user must be the hash tag, so one claim's two keys share a cluster slot", SeenKey("u", 2))
	}
}

// fakeCells records the reads and writes a domain call makes.
type fakeCells struct {
	Cells
	reads []string
	put   []CellValue
}

func (f *fakeCells) Versions(_ context.Context, table, row string, columns []string, maxTS int64, limit int) (map[string][]storage.Version, error) {
	f.reads = append(f.reads, fmt.Sprint(table, " ", row, " ", columns, " ", maxTS, " ", limit))
	out := map[string][]storage.Version{}
	for _, c := range columns {
		out[c] = []storage.Version{{Timestamp: 1, IDs: []int64{int64(len(c))}}}
	}
	return out, nil
}

func (f *fakeCells) PutCells(_ context.Context, cells []CellValue) error {
	f.put = append(f.put, cells...)
	return nil
}

// The domain's reads are one Versions call each, on the row and columns of the
// layout, bounded by MaxTimestamp.
func TestReadsAreOneCall(t *testing.T) {
	ctx := context.Background()
	f := &fakeCells{}
	tb := NewTables(f)
	if _, err := tb.Seen(ctx, "u", []int32{0, 5}); err != nil {
		t.Fatal(err)
	}
	runs, err := tb.Read(ctx, "u", 3, []feed.Source{feed.SourceOnline, feed.SourceALS})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Recalled(ctx, "u", []int32{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Newest(ctx, "u", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Page(ctx, "u", 1, 42); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"history_recommend reco:his:u [channel:0 channel:5] 9223372036854775807 0",
		"cb_recall recall:user:u [online:3 als:3] 9223372036854775807 0",
		"history_recall reco:his:u [channel:2] 9223372036854775807 0",
		"history_recommend reco:his:u [channel:1] 9223372036854775807 1",
		"history_recommend reco:his:u [channel:1] 42 2",
	}
	if !slices.Equal(f.reads, want) {
		t.Errorf("reads = %q\nwant %q", f.reads, want)
	}
	if len(runs) != 2 || runs[feed.SourceOnline][0].IDs[0] != int64(len("online:3")) || runs[feed.SourceALS][0].IDs[0] != int64(len("als:3")) {
		t.Errorf("Read = %v: columns mapped to the wrong sources", runs)
	}
}

// Load writes each record at the cell the layout gives it.
func TestLoadCells(t *testing.T) {
	f := &fakeCells{}
	err := NewTables(f).Load(context.Background(), []storage.Record{
		storage.ArticleVector{Article: 7, Vector: []float64{0.5}},
		storage.Neighbours{Article: 7, Similar: []storage.Scored{{ID: 8, Score: 0.25}}},
		storage.UserWeights{User: "u", Channel: 2, Weights: []float64{1}},
		storage.RecallRun{User: "u", Channel: 2, Source: feed.SourceContent, Timestamp: 5, IDs: []int64{1, 2}},
		storage.RecalledRun{User: "u", Channel: 2, Timestamp: 5, IDs: []int64{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []CellValue{
		{Cell{TableArticleFeature, "7", "article:7"}, 0, []byte("[0.5]")},
		{Cell{TableArticleSimilar, "7", "similar:8"}, 0, []byte("0.25")},
		{Cell{TableUserFeature, "u", "channel:2"}, 0, []byte("[1]")},
		{Cell{TableCBRecall, "recall:user:u", "content:2"}, 5, []byte("[1, 2]")},
		{Cell{TableHistoryRecall, "reco:his:u", "channel:2"}, 5, []byte("[1]")},
	}
	if !slices.EqualFunc(f.put, want, func(a, b CellValue) bool {
		return a.Cell == b.Cell && a.Timestamp == b.Timestamp && string(a.Value) == string(b.Value)
	}) {
		t.Errorf("PutCells got %v\nwant %v", f.put, want)
	}
}

// hashTag is what Redis Cluster hashes of key: the content of its first
// {…} when that is not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// The keys one script touches share a cluster slot, whatever a strategy name
// holds.
func TestCompanionKeysShareASlot(t *testing.T) {
	for _, keys := range [][]string{
		{HotKey(3), HotAppliedKey(3), HotCooledKey(3)},
		{SeenKey("u", 2), SeenKey("u", 0), CacheKey("u", 2)},
	} {
		for _, k := range keys[1:] {
			if hashTag(k) != hashTag(keys[0]) {
				t.Errorf("%q hashes %q, %q hashes %q: want one slot", keys[0], hashTag(keys[0]), k, hashTag(k))
			}
		}
	}
	for _, strategy := range []string{"Algo-1", "exp-a|exp-b", "}", "a}b", "{", "{x}", "a{b}c"} {
		key, applied := CountersKey(strategy), CountersAppliedKey(strategy)
		if hashTag(key) != hashTag(applied) || key == applied {
			t.Errorf("strategy %q: %q hashes %q, %q hashes %q: want two keys of one slot", strategy, key, hashTag(key), applied, hashTag(applied))
		}
	}
}
