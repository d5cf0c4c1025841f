// Package storagetest is the contract every storage backend passes, in the
// domain's words (storage.Tables, storage.Sets): the embedded engine always,
// real HBase and Redis whenever the test command starts them.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// unique returns a prefix no earlier run used, so suites can share real servers.
func unique(t *testing.T) string {
	return fmt.Sprintf("t%d%d", time.Now().UnixNano(), rand.IntN(1000))
}

// uniqueChannel returns a channel no other test uses: channel lists are shared
// by every reader, so suites running against one real Redis must not clobber
// the lists of 0..NumChannels-1 that other tests seed.
func uniqueChannel() int32 { return 1<<20 + rand.Int32N(1<<30) }

// uniqueArticle returns an article id no earlier run used.
func uniqueArticle() int64 { return rand.Int64N(1<<40) + 1<<41 }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func load(t *testing.T, tables storage.Tables, records ...storage.Record) {
	t.Helper()
	if err := tables.Load(ctx(t), records); err != nil {
		t.Fatal(err)
	}
}

// Tables runs the contract of the HBase role against tables, which must have
// been bootstrapped once.
func Tables(t *testing.T, tables storage.Tables) {
	if err := tables.Bootstrap(ctx(t)); err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	t.Run("History", func(t *testing.T) { history(t, tables) })
	t.Run("WaitQueue", func(t *testing.T) { waitQueue(t, tables) })
	t.Run("RecallSets", func(t *testing.T) { recallSets(t, tables) })
	t.Run("Recalled", func(t *testing.T) { recalled(t, tables) })
	t.Run("Similarity", func(t *testing.T) { similarity(t, tables) })
	t.Run("Features", func(t *testing.T) { features(t, tables) })
	t.Run("Loader", func(t *testing.T) { loader(t, tables) })
	t.Run("WaitInspector", func(t *testing.T) { inspectWait(t, tables) })
}

func timestamps(vs []storage.Version) []int64 {
	var ts []int64
	for _, v := range vs {
		ts = append(ts, v.Timestamp)
	}
	return ts
}

func versionsEqual(a, b []storage.Version) bool {
	return slices.EqualFunc(a, b, func(x, y storage.Version) bool {
		return x.Timestamp == y.Timestamp && slices.Equal(x.IDs, y.IDs)
	})
}

func history(t *testing.T, h storage.History) {
	now := time.Now().UnixMilli()
	t.Run("pages newest first, bounded by their time stamp", func(t *testing.T) {
		user := unique(t)
		if ts, err := h.Newest(ctx(t), user, 3); err != nil || ts != 0 {
			t.Fatalf("Newest of a reader with no history = %d, %v; want 0", ts, err)
		}
		for _, ts := range []int64{now - 3000, now - 1000, now - 2000} {
			if err := h.Record(ctx(t), user, 3, ts, []int64{ts % 1000, ts%1000 + 1}); err != nil {
				t.Fatal(err)
			}
		}
		if ts, err := h.Newest(ctx(t), user, 3); err != nil || ts != now-1000 {
			t.Errorf("Newest = now-%d, %v; want now-1000", now-ts, err)
		}
		if ts, err := h.Newest(ctx(t), user, 4); err != nil || ts != 0 {
			t.Errorf("Newest of another channel = %d, %v; want 0", ts, err)
		}
		tests := []struct {
			at     int64
			wantTS []int64
		}{
			{now, []int64{now - 1000, now - 2000}},
			{now - 1500, []int64{now - 2000, now - 3000}},
			{now - 2000, []int64{now - 2000, now - 3000}},
			{now - 2500, []int64{now - 3000}},
			{now - 5000, nil},
		}
		for _, tt := range tests {
			got, err := h.Page(ctx(t), user, 3, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if ts := timestamps(got); !slices.Equal(ts, tt.wantTS) {
				t.Errorf("Page(now-%d) timestamps = %v, want %v", now-tt.at, ts, tt.wantTS)
			}
		}
		got, _ := h.Page(ctx(t), user, 3, now)
		if len(got) == 0 || !slices.Equal(got[0].IDs, []int64{(now - 1000) % 1000, (now-1000)%1000 + 1}) {
			t.Errorf("newest page = %+v, want the ids recorded at now-1000", got)
		}
	})

	t.Run("seen reads several channels at once", func(t *testing.T) {
		user := unique(t)
		if err := h.Record(ctx(t), user, 0, now, []int64{1}); err != nil {
			t.Fatal(err)
		}
		if err := h.Record(ctx(t), user, 5, now, []int64{5}); err != nil {
			t.Fatal(err)
		}
		if err := h.Record(ctx(t), user, 5, now-10, []int64{6}); err != nil {
			t.Fatal(err)
		}
		if err := h.Record(ctx(t), user, 7, now, []int64{7}); err != nil {
			t.Fatal(err)
		}
		got, err := h.Seen(ctx(t), user, []int32{0, 5, 9})
		want := map[int64]bool{1: true, 5: true, 6: true}
		if err != nil || !mapsEqual(got, want) {
			t.Errorf("Seen(0, 5, 9) = %v, %v; want %v (channel 7 not asked for)", got, err, want)
		}
		if got, err := h.Seen(ctx(t), unique(t), []int32{0, 5}); err != nil || len(got) != 0 {
			t.Errorf("Seen of a reader with no history = %v, %v; want nothing", got, err)
		}
	})

	t.Run("two refreshes at one time stamp merge", func(t *testing.T) {
		user := unique(t)
		if err := h.Record(ctx(t), user, 1, now, []int64{1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := h.Record(ctx(t), user, 1, now, []int64{2, 3}); err != nil {
			t.Fatal(err)
		}
		got, err := h.Page(ctx(t), user, 1, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []storage.Version{{Timestamp: now, IDs: []int64{1, 2, 3}}}
		if !versionsEqual(got, want) {
			t.Errorf("Page = %+v, want %+v", got, want)
		}
	})

	t.Run("concurrent refreshes at one time stamp all land", func(t *testing.T) {
		user := unique(t)
		const writers = 16
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- h.Record(ctx(t), user, 2, now, []int64{int64(100 + i)})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := h.Page(ctx(t), user, 2, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Fatalf("got %d versions, want 1", len(got))
		}
		ids := slices.Sorted(slices.Values(got[0].IDs))
		for i := range writers {
			if _, found := slices.BinarySearch(ids, int64(100+i)); !found {
				t.Errorf("id %d of writer %d lost: version holds %v", 100+i, i, ids)
			}
		}
	})

	t.Run("refreshes older than the TTL are gone", func(t *testing.T) {
		user := unique(t)
		day := int64(24 * time.Hour / time.Millisecond)
		if err := h.Record(ctx(t), user, 4, now-91*day, []int64{1}); err != nil {
			t.Fatal(err)
		}
		if err := h.Record(ctx(t), user, 4, now-89*day, []int64{2}); err != nil {
			t.Fatal(err)
		}
		got, err := h.Page(ctx(t), user, 4, now)
		if err != nil {
			t.Fatal(err)
		}
		if ts := timestamps(got); !slices.Equal(ts, []int64{now - 89*day}) {
			t.Errorf("timestamps = %v, want only the 89-day-old refresh (TTL is 90 days)", ts)
		}
		if seen, err := h.Seen(ctx(t), user, []int32{4}); err != nil || !mapsEqual(seen, map[int64]bool{2: true}) {
			t.Errorf("Seen = %v, %v; want only the id of the live refresh", seen, err)
		}
	})
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func waitQueue(t *testing.T, q storage.WaitQueue) {
	t.Run("push appends without duplicates, take pops the head", func(t *testing.T) {
		user := unique(t)
		if got, err := q.Take(ctx(t), user, 1, 5); err != nil || len(got) != 0 {
			t.Fatalf("Take on empty = %v, %v; want nothing", got, err)
		}
		if err := q.Push(ctx(t), user, 1, []int64{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if err := q.Push(ctx(t), user, 1, []int64{3, 4}); err != nil {
			t.Fatal(err)
		}
		if got, err := q.Take(ctx(t), user, 2, 5); err != nil || len(got) != 0 {
			t.Errorf("Take of another channel = %v, %v; want nothing", got, err)
		}
		for _, tt := range []struct {
			n    int
			want []int64
		}{{0, nil}, {-1, nil}, {2, []int64{1, 2}}, {10, []int64{3, 4}}, {1, nil}} {
			got, err := q.Take(ctx(t), user, 1, tt.n)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Take(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
			}
		}
	})

	t.Run("concurrent takers never get the same id", func(t *testing.T) {
		user := unique(t)
		const total = 120
		var all []int64
		for i := range total {
			all = append(all, int64(i+1))
		}
		if err := q.Push(ctx(t), user, 2, all); err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := q.Take(ctx(t), user, 2, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, id := range got {
						seen[id]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, id := range all {
			if seen[id] != 1 {
				t.Errorf("id %d taken %d times, want once", id, seen[id])
			}
		}
	})
}

func recallSets(t *testing.T, tables storage.Tables) {
	now := time.Now().UnixMilli()
	t.Run("runs of each source, newest first", func(t *testing.T) {
		user := unique(t)
		load(t, tables,
			storage.RecallRun{User: user, Channel: 7, Source: feed.SourceALS, Timestamp: now - 300, IDs: []int64{1}},
			storage.RecallRun{User: user, Channel: 7, Source: feed.SourceALS, Timestamp: now - 100, IDs: []int64{3}},
			storage.RecallRun{User: user, Channel: 7, Source: feed.SourceALS, Timestamp: now - 200, IDs: []int64{2}},
			storage.RecallRun{User: user, Channel: 7, Source: feed.SourceOnline, Timestamp: now, IDs: []int64{9, 8}},
			storage.RecallRun{User: user, Channel: 8, Source: feed.SourceContent, Timestamp: now, IDs: []int64{5}},
		)
		got, err := tables.Read(ctx(t), user, 7, []feed.Source{feed.SourceALS, feed.SourceContent, feed.SourceOnline})
		if err != nil {
			t.Fatal(err)
		}
		wantALS := []storage.Version{{Timestamp: now - 100, IDs: []int64{3}}, {Timestamp: now - 200, IDs: []int64{2}}, {Timestamp: now - 300, IDs: []int64{1}}}
		if len(got) != 2 || !versionsEqual(got[feed.SourceALS], wantALS) || !versionsEqual(got[feed.SourceOnline], []storage.Version{{Timestamp: now, IDs: []int64{9, 8}}}) {
			t.Errorf("Read(7) = %+v, want ALS %+v and online [9 8] only (content is in channel 8)", got, wantALS)
		}
		got, err = tables.Read(ctx(t), user, 7, []feed.Source{feed.SourceOnline})
		if err != nil || len(got) != 1 || len(got[feed.SourceOnline]) != 1 {
			t.Errorf("Read(7, online) = %+v, %v; want the online run only", got, err)
		}
		if got, err := tables.Read(ctx(t), unique(t), 7, []feed.Source{feed.SourceALS}); err != nil || len(got) != 0 {
			t.Errorf("Read of a reader with no runs = %+v, %v; want nothing", got, err)
		}
	})

	t.Run("sources without recall runs are refused", func(t *testing.T) {
		for _, s := range []feed.Source{feed.SourceNew, feed.SourceHot, feed.SourceSimilar, 0, 99} {
			if _, err := tables.Read(ctx(t), unique(t), 1, []feed.Source{feed.SourceALS, s}); err == nil {
				t.Errorf("Read of source %d succeeded", s)
			}
			if err := tables.Consume(ctx(t), unique(t), 1, s, now); err == nil {
				t.Errorf("Consume of source %d succeeded", s)
			}
		}
	})

	t.Run("consume through a time stamp keeps later runs", func(t *testing.T) {
		user := unique(t)
		for _, ts := range []int64{now - 300, now - 200, now - 100} {
			load(t, tables, storage.RecallRun{User: user, Channel: 7, Source: feed.SourceALS, Timestamp: ts, IDs: []int64{ts}})
		}
		load(t, tables, storage.RecallRun{User: user, Channel: 7, Source: feed.SourceContent, Timestamp: now - 300, IDs: []int64{1}})
		if err := tables.Consume(ctx(t), user, 7, feed.SourceALS, now-200); err != nil {
			t.Fatal(err)
		}
		both := []feed.Source{feed.SourceALS, feed.SourceContent}
		got, err := tables.Read(ctx(t), user, 7, both)
		if err != nil {
			t.Fatal(err)
		}
		if ts := timestamps(got[feed.SourceALS]); !slices.Equal(ts, []int64{now - 100}) {
			t.Errorf("after Consume(now-200) ALS timestamps = %v, want [now-100]", ts)
		}
		if ts := timestamps(got[feed.SourceContent]); !slices.Equal(ts, []int64{now - 300}) {
			t.Errorf("after consuming ALS, content timestamps = %v, want [now-300] untouched", ts)
		}
		// A run written after the consume, even at an older time stamp than the
		// newest, is visible: consuming covers what was there, not what comes.
		load(t, tables, storage.RecallRun{User: user, Channel: 7, Source: feed.SourceALS, Timestamp: now - 50, IDs: []int64{9}})
		got, _ = tables.Read(ctx(t), user, 7, both)
		if ts := timestamps(got[feed.SourceALS]); !slices.Equal(ts, []int64{now - 50, now - 100}) {
			t.Errorf("after a new run timestamps = %v, want [now-50 now-100]", ts)
		}
		if err := tables.Consume(ctx(t), user, 7, feed.SourceALS, now); err != nil {
			t.Fatal(err)
		}
		if got, _ := tables.Read(ctx(t), user, 7, []feed.Source{feed.SourceALS}); len(got) != 0 {
			t.Errorf("after consuming every run Read = %+v, want nothing", got)
		}
	})
}

func recalled(t *testing.T, tables storage.Tables) {
	now := time.Now().UnixMilli()
	user := unique(t)
	if got, err := tables.Recalled(ctx(t), user, []int32{0, 1}); err != nil || len(got) != 0 {
		t.Fatalf("Recalled of a new reader = %v, %v; want nothing", got, err)
	}
	load(t, tables,
		storage.RecalledRun{User: user, Channel: 0, Timestamp: now - 10, IDs: []int64{1, 2}},
		storage.RecalledRun{User: user, Channel: 0, Timestamp: now, IDs: []int64{3}},
		storage.RecalledRun{User: user, Channel: 5, Timestamp: now, IDs: []int64{5}},
		storage.RecalledRun{User: user, Channel: 7, Timestamp: now, IDs: []int64{7}},
	)
	got, err := tables.Recalled(ctx(t), user, []int32{0, 5, 9})
	if err != nil {
		t.Fatal(err)
	}
	want0 := []storage.Version{{Timestamp: now, IDs: []int64{3}}, {Timestamp: now - 10, IDs: []int64{1, 2}}}
	if len(got) != 2 || !versionsEqual(got[0], want0) || !versionsEqual(got[5], []storage.Version{{Timestamp: now, IDs: []int64{5}}}) {
		t.Errorf("Recalled(0, 5, 9) = %+v, want channel 0 %+v and channel 5 [5] only", got, want0)
	}
}

func similarity(t *testing.T, tables storage.Tables) {
	article := uniqueArticle()
	for _, n := range []int{5, 0} {
		if got, err := tables.Similar(ctx(t), article, n); !errors.Is(err, storage.ErrUnknownArticle) || len(got) != 0 {
			t.Fatalf("Similar(n=%d) of an article nothing was written of = %v, %v; want ErrUnknownArticle", n, got, err)
		}
	}
	in := []storage.Scored{{ID: 11, Score: 0.2}, {ID: 12, Score: 0.9}, {ID: 13, Score: 0.5}, {ID: 14, Score: 0.7}}
	load(t, tables, storage.Neighbours{Article: article, Similar: in})
	got, err := tables.Similar(ctx(t), article, 3)
	want := []storage.Scored{{ID: 12, Score: 0.9}, {ID: 14, Score: 0.7}, {ID: 13, Score: 0.5}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Similar(n=3) = %v, %v; want %v", got, err, want)
	}
	if got, err := tables.Similar(ctx(t), article, 0); err != nil || len(got) != 0 {
		t.Errorf("Similar(n=0) = %v, %v; want nothing", got, err)
	}

	// An article a build wrote without neighbours (alone in its channel) is
	// known: its features say so. It has no neighbours, and no error.
	lonely := uniqueArticle()
	load(t, tables, storage.ArticleVector{Article: lonely, Vector: []float64{1, 0.5}})
	for _, n := range []int{5, 0} {
		if got, err := tables.Similar(ctx(t), lonely, n); err != nil || len(got) != 0 {
			t.Errorf("Similar(n=%d) of a known article without neighbours = %v, %v; want nothing and no error", n, got, err)
		}
	}
}

func features(t *testing.T, tables storage.Tables) {
	user := unique(t)
	if got, err := tables.UserWeights(ctx(t), user, []int32{3}); err != nil || len(got) != 0 {
		t.Fatalf("UserWeights of an unknown reader = %v, %v; want nothing", got, err)
	}
	w := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
	w7 := []float64{7, 7, 7, 7, 7, 7, 7, 7, 7, 7}
	load(t, tables, storage.UserWeights{User: user, Channel: 3, Weights: w}, storage.UserWeights{User: user, Channel: 7, Weights: w7})
	if got, err := tables.UserWeights(ctx(t), user, []int32{3}); err != nil || len(got) != 1 || !slices.Equal(got[3], w) {
		t.Errorf("UserWeights(3) = %v, %v; want %v", got, err, w)
	}
	if got, err := tables.UserWeights(ctx(t), user, []int32{4}); err != nil || len(got) != 0 {
		t.Errorf("UserWeights of another channel = %v, %v; want nothing", got, err)
	}
	all, err := tables.UserWeights(ctx(t), user, []int32{3, 4, 7})
	if err != nil || len(all) != 2 || !slices.Equal(all[3], w) || !slices.Equal(all[7], w7) {
		t.Errorf("UserWeights(3, 4, 7) = %v, %v; want channels 3 and 7 only", all, err)
	}
	if got, err := tables.UserWeights(ctx(t), user, nil); err != nil || len(got) != 0 {
		t.Errorf("UserWeights of no channel = %v, %v; want nothing", got, err)
	}

	base := uniqueArticle()
	vecs := map[int64][]float64{}
	var records []storage.Record
	for i := range int64(50) {
		v := make([]float64, 111)
		for j := range v {
			v[j] = float64(i) + float64(j)/1000
		}
		vecs[base+i] = v
		records = append(records, storage.ArticleVector{Article: base + i, Vector: v})
	}
	load(t, tables, records...)
	ids := []int64{base + 3, base + 49, base + 1000, base + 3}
	got, err := tables.ArticleVectors(ctx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Equal(got[base+3], vecs[base+3]) || !slices.Equal(got[base+49], vecs[base+49]) {
		t.Errorf("ArticleVectors = %d vectors, want the 2 stored ones intact and the unknown id absent", len(got))
	}
}

// loader writes through Load and reads back through the domain readers, so a
// loaded record is exactly what the services expect.
func loader(t *testing.T, tables storage.Tables) {
	t.Run("round trip", func(t *testing.T) {
		now := time.Now().UnixMilli()
		user := unique(t)
		article := uniqueArticle()
		var records []storage.Record
		for i := range int64(300) {
			records = append(records, storage.RecallRun{User: user, Channel: int32(i % 25), Source: feed.SourceContent, Timestamp: now - i/25, IDs: []int64{i + 1}})
		}
		records = append(records,
			storage.RecallRun{User: user, Channel: 3, Source: feed.SourceALS, Timestamp: now - 10, IDs: []int64{1, 2}},
			storage.RecallRun{User: user, Channel: 3, Source: feed.SourceALS, Timestamp: now, IDs: []int64{3}},
			storage.RecalledRun{User: user, Channel: 3, Timestamp: now, IDs: []int64{3, 1, 2}},
			storage.UserWeights{User: user, Channel: 3, Weights: []float64{0.5, 0.25}},
			storage.ArticleVector{Article: article, Vector: []float64{3, 1, 2}},
			storage.Neighbours{Article: article, Similar: []storage.Scored{{ID: article + 1, Score: 0.75}}},
		)
		load(t, tables, records...)
		got, err := tables.Read(ctx(t), user, 3, []feed.Source{feed.SourceALS})
		if err != nil {
			t.Fatal(err)
		}
		want := []storage.Version{{Timestamp: now, IDs: []int64{3}}, {Timestamp: now - 10, IDs: []int64{1, 2}}}
		if !versionsEqual(got[feed.SourceALS], want) {
			t.Errorf("loaded ALS runs = %+v, want %+v", got[feed.SourceALS], want)
		}
		for ch := range int32(25) {
			got, err := tables.Read(ctx(t), user, ch, []feed.Source{feed.SourceContent})
			if err != nil {
				t.Fatal(err)
			}
			vs := got[feed.SourceContent]
			if len(vs) != 12 {
				t.Errorf("loaded content runs of channel %d = %d, want 12", ch, len(vs))
				continue
			}
			for i, v := range vs {
				if v.Timestamp != now-int64(i) || len(v.IDs) != 1 || v.IDs[0] != int64(i*25)+int64(ch)+1 {
					t.Errorf("loaded content run %d of channel %d = %+v, want [%d] at now-%d", i, ch, v, i*25+int(ch)+1, i)
					break
				}
			}
		}
		if r, err := tables.Recalled(ctx(t), user, []int32{3}); err != nil || !versionsEqual(r[3], []storage.Version{{Timestamp: now, IDs: []int64{3, 1, 2}}}) {
			t.Errorf("loaded recalled run = %+v, %v", r, err)
		}
		// The same time stamp again replaces: offline jobs own their runs.
		load(t, tables, storage.RecallRun{User: user, Channel: 3, Source: feed.SourceALS, Timestamp: now, IDs: []int64{4}})
		got, _ = tables.Read(ctx(t), user, 3, []feed.Source{feed.SourceALS})
		if vs := got[feed.SourceALS]; len(vs) != 2 || !slices.Equal(vs[0].IDs, []int64{4}) {
			t.Errorf("after a second load at the same time stamp = %+v, want [4] then [1 2]", vs)
		}
		if w, err := tables.UserWeights(ctx(t), user, []int32{3}); err != nil || !slices.Equal(w[3], []float64{0.5, 0.25}) {
			t.Errorf("loaded user weights = %v, %v", w, err)
		}
		if v, err := tables.ArticleVectors(ctx(t), []int64{article}); err != nil || !slices.Equal(v[article], []float64{3, 1, 2}) {
			t.Errorf("loaded article vector = %v, %v", v, err)
		}
		if s, err := tables.Similar(ctx(t), article, 5); err != nil || !slices.Equal(s, []storage.Scored{{ID: article + 1, Score: 0.75}}) {
			t.Errorf("loaded similar = %v, %v", s, err)
		}
		// Features and neighbours are replaced by the next load.
		load(t, tables,
			storage.UserWeights{User: user, Channel: 3, Weights: []float64{1}},
			storage.ArticleVector{Article: article, Vector: []float64{4}},
			storage.Neighbours{Article: article, Similar: []storage.Scored{{ID: article + 1, Score: 0.5}, {ID: article + 2, Score: 0.6}}},
		)
		if w, err := tables.UserWeights(ctx(t), user, []int32{3}); err != nil || !slices.Equal(w[3], []float64{1}) {
			t.Errorf("reloaded user weights = %v, %v; want [1]", w, err)
		}
		if v, err := tables.ArticleVectors(ctx(t), []int64{article}); err != nil || !slices.Equal(v[article], []float64{4}) {
			t.Errorf("reloaded article vector = %v, %v; want [4]", v, err)
		}
		if s, err := tables.Similar(ctx(t), article, 5); err != nil || !slices.Equal(s, []storage.Scored{{ID: article + 2, Score: 0.6}, {ID: article + 1, Score: 0.5}}) {
			t.Errorf("reloaded similar = %v, %v", s, err)
		}
		if err := tables.Load(ctx(t), nil); err != nil {
			t.Errorf("Load of nothing: %v", err)
		}
	})

	t.Run("a malformed record writes nothing", func(t *testing.T) {
		now := time.Now().UnixMilli()
		for name, bad := range map[string]storage.Record{
			"NaN score":        storage.Neighbours{Article: uniqueArticle(), Similar: []storage.Scored{{ID: 2, Score: 0.5}, {ID: 3, Score: math.NaN()}}},
			"Inf feature":      storage.ArticleVector{Article: uniqueArticle(), Vector: []float64{0.1, math.Inf(1)}},
			"NaN weight":       storage.UserWeights{User: unique(t), Channel: 1, Weights: []float64{math.NaN()}},
			"unknown source":   storage.RecallRun{User: unique(t), Channel: 1, Source: feed.SourceHot, Timestamp: now, IDs: []int64{1}},
			"unstamped run":    storage.RecallRun{User: unique(t), Channel: 1, Source: feed.SourceALS, IDs: []int64{1}},
			"unstamped recall": storage.RecalledRun{User: unique(t), Channel: 1, IDs: []int64{1}},
			"nil":              nil,
		} {
			t.Run(name, func(t *testing.T) {
				user, article := unique(t), uniqueArticle()
				good := []storage.Record{
					storage.ArticleVector{Article: article, Vector: []float64{1}},
					storage.Neighbours{Article: article, Similar: []storage.Scored{{ID: 1, Score: 1}}},
					storage.UserWeights{User: user, Channel: 1, Weights: []float64{1}},
					storage.RecallRun{User: user, Channel: 1, Source: feed.SourceALS, Timestamp: now, IDs: []int64{1}},
					storage.RecalledRun{User: user, Channel: 1, Timestamp: now, IDs: []int64{1}},
				}
				if err := tables.Load(ctx(t), append(good, bad)); err == nil {
					t.Fatal("Load succeeded")
				}
				if got, _ := tables.ArticleVectors(ctx(t), []int64{article}); len(got) != 0 {
					t.Errorf("after a refused Load, ArticleVectors = %v, want nothing", got)
				}
				if got, _ := tables.Similar(ctx(t), article, 5); len(got) != 0 {
					t.Errorf("after a refused Load, Similar = %v, want nothing", got)
				}
				if got, _ := tables.UserWeights(ctx(t), user, []int32{1}); len(got) != 0 {
					t.Errorf("after a refused Load, UserWeights = %v, want nothing", got)
				}
				if got, _ := tables.Read(ctx(t), user, 1, []feed.Source{feed.SourceALS}); len(got) != 0 {
					t.Errorf("after a refused Load, Read = %v, want nothing", got)
				}
				if got, _ := tables.Recalled(ctx(t), user, []int32{1}); len(got) != 0 {
					t.Errorf("after a refused Load, Recalled = %v, want nothing", got)
				}
			})
		}
	})
}

// Sets runs the contract of the Redis role against sets.
func Sets(t *testing.T, sets storage.Sets) {
	t.Run("ChannelLists", func(t *testing.T) { channelLists(t, sets) })
	t.Run("Tier1", func(t *testing.T) { tier1(t, sets) })
	t.Run("ServedClaims", func(t *testing.T) { servedClaims(t, sets) })
	t.Run("Interactions", func(t *testing.T) { interactions(t, sets) })
	t.Run("CacheInspector", func(t *testing.T) { inspectCache(t, sets) })
}

func channelLists(t *testing.T, sets storage.Sets) {
	t.Run("top in score order", func(t *testing.T) {
		ch := uniqueChannel()
		in := []storage.Scored{{ID: 1, Score: 10}, {ID: 2, Score: 30}, {ID: 3, Score: 20}, {ID: 4, Score: 5}}
		if err := sets.Replace(ctx(t), storage.HotList, ch, in); err != nil {
			t.Fatal(err)
		}
		top, err := sets.Top(ctx(t), storage.HotList, ch, 3)
		want := []storage.Scored{{ID: 2, Score: 30}, {ID: 3, Score: 20}, {ID: 1, Score: 10}}
		if err != nil || !slices.Equal(top, want) {
			t.Errorf("Top(3) = %v, %v; want %v", top, err, want)
		}
		for _, n := range []int{0, -1} {
			if top, err := sets.Top(ctx(t), storage.HotList, ch, n); err != nil || len(top) != 0 {
				t.Errorf("Top(%d) = %v, %v; want nothing", n, top, err)
			}
		}
		if top, err := sets.Top(ctx(t), storage.NewList, ch, 3); err != nil || len(top) != 0 {
			t.Errorf("Top of the new list = %v, %v; want nothing (only the hot list was set)", top, err)
		}
		if top, err := sets.Top(ctx(t), storage.HotList, ch+1, 3); err != nil || len(top) != 0 {
			t.Errorf("Top of another channel = %v, %v; want nothing", top, err)
		}
		if _, err := sets.Top(ctx(t), storage.ChannelList(7), ch, 3); err == nil {
			t.Error("Top of an unknown list succeeded")
		}
	})

	t.Run("replace holds exactly the new articles", func(t *testing.T) {
		ch := uniqueChannel()
		replace := func(articles []storage.Scored) {
			t.Helper()
			if err := sets.Replace(ctx(t), storage.NewList, ch, articles); err != nil {
				t.Fatal(err)
			}
			got, err := sets.Top(ctx(t), storage.NewList, ch, 100)
			want := storage.Highest(slices.Clone(articles), 100)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("after Replace(%v) Top = %v, %v; want %v", articles, got, err, want)
			}
		}
		replace([]storage.Scored{{ID: 1, Score: 1}, {ID: 2, Score: 2}})
		replace([]storage.Scored{{ID: 1, Score: 3}, {ID: 2, Score: 2}, {ID: 3, Score: 1}}) // a superset, re-scored
		replace([]storage.Scored{{ID: 4, Score: 4}, {ID: 2, Score: 2}})                    // drops 1 and 3
		replace(nil)
	})
}

func tier1(t *testing.T, sets storage.Sets) {
	t.Run("pop in stored order", func(t *testing.T) {
		user := unique(t)
		if got, err := sets.Pop(ctx(t), user, 1, 5); err != nil || len(got) != 0 {
			t.Fatalf("Pop of an empty tier = %v, %v; want nothing", got, err)
		}
		if err := sets.Store(ctx(t), user, 1, []int64{2, 3, 1, 4}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Pop(ctx(t), user, 2, 5); err != nil || len(got) != 0 {
			t.Errorf("Pop of another channel = %v, %v; want nothing", got, err)
		}
		for _, tt := range []struct {
			n    int
			want []int64
		}{{0, nil}, {-1, nil}, {2, []int64{2, 3}}, {5, []int64{1, 4}}, {1, nil}} {
			got, err := sets.Pop(ctx(t), user, 1, tt.n)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Pop(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
			}
		}
	})

	t.Run("store re-ranks what the tier holds", func(t *testing.T) {
		user := unique(t)
		if err := sets.Store(ctx(t), user, 1, []int64{1, 2, 3}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := sets.Store(ctx(t), user, 1, []int64{3, 4, 5, 6}, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, err := sets.Pop(ctx(t), user, 1, 10)
		// 3 now ranks first (score 4); 1 and 2 keep their scores 3 and 2 from the
		// first store, tied with 4 and 5.
		if err != nil || len(got) != 6 || got[0] != 3 || !slices.Equal(slices.Sorted(slices.Values(got)), []int64{1, 2, 3, 4, 5, 6}) {
			t.Errorf("Pop after two stores = %v, %v; want all six, 3 first", got, err)
		}
	})

	t.Run("concurrent pops never return an id twice", func(t *testing.T) {
		user := unique(t)
		var in []int64
		for i := range 200 {
			in = append(in, int64(i+1))
		}
		if err := sets.Store(ctx(t), user, 1, in, time.Minute); err != nil {
			t.Fatal(err)
		}
		takenOnce(t, in, func() ([]int64, bool, error) {
			got, err := sets.Pop(ctx(t), user, 1, 3)
			if !slices.IsSorted(got) {
				t.Errorf("Pop returned %v, not in stored order", got)
			}
			return got, len(got) == 0, err
		})
	})

	boost(t, sets)

	t.Run("the tier expires after its ttl", func(t *testing.T) {
		user := unique(t)
		if err := sets.Store(ctx(t), user, 1, []int64{1}, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := sets.Store(ctx(t), user, 2, []int64{2}, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Pop(ctx(t), user, 2, 1); err != nil || !slices.Equal(got, []int64{2}) {
			t.Fatalf("Pop right after Store = %v, %v; want [2]", got, err)
		}
		time.Sleep(600 * time.Millisecond)
		if got, err := sets.Pop(ctx(t), user, 1, 1); err != nil || len(got) != 0 {
			t.Errorf("Pop after the ttl = %v, %v; want nothing", got, err)
		}
	})
}

func servedClaims(t *testing.T, sets storage.Sets) {
	// seeded is a reader whose sets of channels 0, 1 and 2 are seeded from a
	// history in which channel 0 served 9.
	seeded := func(t *testing.T) string {
		t.Helper()
		user := unique(t)
		for _, ch := range []int32{0, 1, 2} {
			var history []int64
			if ch == 0 {
				history = []int64{9}
			}
			if err := sets.Seed(ctx(t), user, ch, history, 0, time.Minute); err != nil {
				t.Fatalf("Seed(%d): %v", ch, err)
			}
		}
		return user
	}

	t.Run("each id is claimed once, channel 0 counting for every channel", func(t *testing.T) {
		user := seeded(t)
		for _, tt := range []struct {
			channel int32
			offer   []int64
			want    []int64
		}{
			{1, []int64{1, 2}, []int64{1, 2}},
			{1, []int64{2, 3}, []int64{3}},
			{2, []int64{2, 3}, []int64{2, 3}}, // another channel has its own set
			{1, []int64{5, 4, 5}, []int64{5, 4}},
			{1, []int64{9, 6}, []int64{6}}, // 9 was seen in channel 0
			{0, []int64{1, 9, 7}, []int64{1, 7}},
			{2, []int64{7, 8}, []int64{8}}, // 7 was just served in channel 0
			{1, nil, nil},
		} {
			got, err := sets.Claim(ctx(t), user, tt.channel, tt.offer, time.Minute)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Claim(channel %d, %v) = %v, %v; want %v", tt.channel, tt.offer, got, err, tt.want)
			}
		}
	})

	t.Run("unseeded sets claim nothing until seeded from history", func(t *testing.T) {
		user := unique(t)
		if got, err := sets.Claim(ctx(t), user, 1, []int64{1}, time.Minute); !errors.Is(err, storage.ErrUnseeded) || len(got) != 0 {
			t.Fatalf("Claim before Seed = %v, %v; want ErrUnseeded", got, err)
		}
		if err := sets.Seed(ctx(t), user, 1, []int64{1, 2}, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Channel 0's set is checked too, and it is not seeded yet.
		if _, err := sets.Claim(ctx(t), user, 1, []int64{3}, time.Minute); !errors.Is(err, storage.ErrUnseeded) {
			t.Fatalf("Claim with channel 0 unseeded: err = %v, want ErrUnseeded", err)
		}
		if err := sets.Seed(ctx(t), user, 0, nil, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		got, err := sets.Claim(ctx(t), user, 1, []int64{2, 3, 1}, time.Minute)
		if err != nil || !slices.Equal(got, []int64{3}) {
			t.Errorf("Claim after Seed = %v, %v; want [3]: history held 1 and 2", got, err)
		}
		// Seeding again adds to what was claimed meanwhile, never removes.
		if err := sets.Seed(ctx(t), user, 1, []int64{4}, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Claim(ctx(t), user, 1, []int64{3, 4, 5}, time.Minute); err != nil || !slices.Equal(got, []int64{5}) {
			t.Errorf("Claim after a second Seed = %v, %v; want [5]", got, err)
		}
	})

	t.Run("provisional claims: atomic on unseeded sets, kept by the seed that follows", func(t *testing.T) {
		user := unique(t)
		if got, err := sets.ClaimProvisional(ctx(t), user, 0, []int64{9}, time.Minute); err != nil || !slices.Equal(got, []int64{9}) {
			t.Fatalf("ClaimProvisional in channel 0 = %v, %v; want [9]", got, err)
		}
		if got, err := sets.ClaimProvisional(ctx(t), user, 1, []int64{1, 9, 2, 1}, time.Minute); err != nil || !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("ClaimProvisional in channel 1 = %v, %v; want [1 2]: 9 was claimed in channel 0, 1 twice", got, err)
		}
		if got, err := sets.ClaimProvisional(ctx(t), user, 1, []int64{2, 3}, time.Minute); err != nil || !slices.Equal(got, []int64{3}) {
			t.Errorf("ClaimProvisional again = %v, %v; want [3]", got, err)
		}
		// The sets are still no copy of history: a claim needs the seed.
		if _, err := sets.Claim(ctx(t), user, 1, []int64{4}, time.Minute); !errors.Is(err, storage.ErrUnseeded) {
			t.Fatalf("Claim after provisional claims: err = %v, want ErrUnseeded", err)
		}
		for _, ch := range []int32{1, 0} {
			if err := sets.Seed(ctx(t), user, ch, []int64{5}, 0, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := sets.Claim(ctx(t), user, 1, []int64{1, 2, 3, 4, 5, 9}, time.Minute); err != nil || !slices.Equal(got, []int64{4}) {
			t.Errorf("Claim after the seed = %v, %v; want [4]: the provisional claims and history hold the rest", got, err)
		}
		// On seeded sets it claims as Claim does.
		if got, err := sets.ClaimProvisional(ctx(t), user, 1, []int64{4, 6}, time.Minute); err != nil || !slices.Equal(got, []int64{6}) {
			t.Errorf("ClaimProvisional on seeded sets = %v, %v; want [6]", got, err)
		}
	})

	t.Run("concurrent claims of one id: exactly one gets it", func(t *testing.T) {
		user := seeded(t)
		var (
			mu   sync.Mutex
			wins = map[int64]int{}
			wg   sync.WaitGroup
		)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var offer []int64
				for id := int64(100); id < 140; id++ {
					offer = append(offer, id+int64(g%2))
				}
				got, err := sets.Claim(ctx(t), user, 1, offer, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, id := range got {
					wins[id]++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		for id := int64(100); id <= 140; id++ {
			if wins[id] != 1 {
				t.Errorf("id %d claimed %d times, want once", id, wins[id])
			}
		}
	})

	t.Run("take starts a refresh after the newest one, pops and claims in one step", func(t *testing.T) {
		user := unique(t)
		for ch, last := range map[int32]int64{0: 500, 1: 1000} {
			if err := sets.Seed(ctx(t), user, ch, []int64{9}, last, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		// 9 was served (history), 8 goes out through channel 0 meanwhile.
		if err := sets.Store(ctx(t), user, 1, []int64{7, 9, 8, 6, 5, 4}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Claim(ctx(t), user, 0, []int64{8}, time.Minute); err != nil || !slices.Equal(got, []int64{8}) {
			t.Fatalf("Claim(0, [8]) = %v, %v", got, err)
		}
		for _, tt := range []struct {
			name string
			at   int64
			n    int
			want storage.Taken
		}{
			{"a stamp not after the newest refresh is a history page", 1000, 3, storage.Taken{Older: true, Last: 1000}},
			{"a refresh pops past what was served elsewhere", 2000, 3, storage.Taken{Last: 1000, IDs: []int64{7, 6, 5}}},
			{"the refresh just started is the newest", 2000, 3, storage.Taken{Older: true, Last: 2000}},
			{"an older stamp pages back", 1500, 3, storage.Taken{Older: true, Last: 2000}},
			{"a refresh under way pops on; the tier runs dry", 0, 3, storage.Taken{IDs: []int64{4}, Dry: true}},
			{"an empty tier starts a refresh all the same", 3000, 2, storage.Taken{Last: 2000, IDs: []int64{}, Dry: true}},
		} {
			got, err := sets.TakeUnseen(ctx(t), user, 1, tt.at, tt.n, time.Minute)
			if len(got.IDs) == 0 && len(tt.want.IDs) == 0 {
				got.IDs, tt.want.IDs = nil, nil
			}
			if err != nil || got.Older != tt.want.Older || got.Last != tt.want.Last || got.Dry != tt.want.Dry || !slices.Equal(got.IDs, tt.want.IDs) {
				t.Errorf("%s: TakeUnseen(at %d, n %d) = %+v, %v; want %+v", tt.name, tt.at, tt.n, got, err, tt.want)
			}
		}
		// What Take claimed, no other path serves.
		if got, err := sets.Claim(ctx(t), user, 1, []int64{7, 6, 5, 4, 3}, time.Minute); err != nil || !slices.Equal(got, []int64{3}) {
			t.Errorf("Claim after Take = %v, %v; want [3]", got, err)
		}
	})

	t.Run("take on unseeded sets changes nothing", func(t *testing.T) {
		user := unique(t)
		if err := sets.Store(ctx(t), user, 1, []int64{3, 2, 1}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := sets.TakeUnseen(ctx(t), user, 1, 100, 2, time.Minute); !errors.Is(err, storage.ErrUnseeded) {
			t.Fatalf("Take before Seed: err = %v, want ErrUnseeded", err)
		}
		if err := sets.Seed(ctx(t), user, 1, nil, 50, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := sets.TakeUnseen(ctx(t), user, 1, 100, 2, time.Minute); !errors.Is(err, storage.ErrUnseeded) {
			t.Fatalf("Take with channel 0 unseeded: err = %v, want ErrUnseeded", err)
		}
		if err := sets.Seed(ctx(t), user, 0, nil, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		// A seed never lowers the stamp a refresh raised.
		got, err := sets.TakeUnseen(ctx(t), user, 1, 100, 2, time.Minute)
		if err != nil || !slices.Equal(got.IDs, []int64{3, 2}) || got.Last != 50 {
			t.Fatalf("Take after Seed = %+v, %v; want [3 2] after 50", got, err)
		}
		if err := sets.Seed(ctx(t), user, 1, nil, 60, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.TakeUnseen(ctx(t), user, 1, 90, 2, time.Minute); err != nil || !got.Older || got.Last != 100 {
			t.Errorf("Take(at 90) after a seed at 60 = %+v, %v; want Older than 100", got, err)
		}
	})

	t.Run("concurrent takes of one queue: each id once", func(t *testing.T) {
		user := seeded(t)
		var queued []int64
		for id := int64(1000); id < 1100; id++ {
			queued = append(queued, id)
		}
		if err := sets.Store(ctx(t), user, 1, queued, time.Minute); err != nil {
			t.Fatal(err)
		}
		takenOnce(t, queued, func() ([]int64, bool, error) {
			got, err := sets.TakeUnseen(ctx(t), user, 1, 0, 7, time.Minute)
			return got.IDs, got.Dry, err
		})
	})

	t.Run("a set expires ttl after its last claim, then needs seeding again", func(t *testing.T) {
		user := unique(t)
		for _, ch := range []int32{0, 1} {
			if err := sets.Seed(ctx(t), user, ch, nil, 0, 300*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := sets.Claim(ctx(t), user, 0, []int64{1}, 300*time.Millisecond); err != nil || !slices.Equal(got, []int64{1}) {
			t.Fatalf("Claim(1) = %v, %v; want [1]", got, err)
		}
		time.Sleep(600 * time.Millisecond)
		if _, err := sets.Claim(ctx(t), user, 0, []int64{1}, time.Minute); !errors.Is(err, storage.ErrUnseeded) {
			t.Errorf("Claim after the ttl: err = %v, want ErrUnseeded", err)
		}
	})
}

// takenOnce runs concurrent takers of a queue holding queued until it runs
// dry (take says done) and checks that each id came out exactly once.
func takenOnce(t *testing.T, queued []int64, take func() (ids []int64, done bool, err error)) {
	t.Helper()
	var (
		mu   sync.Mutex
		wins = map[int64]int{}
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for {
				got, done, err := take()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, id := range got {
					wins[id]++
				}
				mu.Unlock()
				if done {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, id := range queued {
		if wins[id] != 1 {
			t.Errorf("id %d taken %d times, want once", id, wins[id])
		}
	}
}
