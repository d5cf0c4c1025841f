// Package storagetest is the contract every storage backend passes: the embedded
// engine always, real HBase and Redis whenever the test command starts them.
package storagetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// unique returns a prefix no earlier run used, so suites can share real servers.
func unique(t *testing.T) string {
	return fmt.Sprintf("t%d%d", time.Now().UnixNano(), rand.IntN(1000))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Tables runs the contract of the HBase role against tables.
func Tables(t *testing.T, tables storage.Tables) {
	if err := tables.Bootstrap(ctx(t)); err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	t.Run("Lists", func(t *testing.T) { lists(t, tables) })
	t.Run("Queue", func(t *testing.T) { queue(t, tables) })
	t.Run("Similarity", func(t *testing.T) { similarity(t, tables) })
	t.Run("Features", func(t *testing.T) { features(t, tables) })
	t.Run("Loader", func(t *testing.T) { loader(t, tables) })
}

// loader writes through PutCells and reads back through the typed readers, so a
// loaded cell is exactly what the services expect.
func loader(t *testing.T, tables storage.Tables) {
	now := time.Now().UnixMilli()
	user := unique(t)
	article := rand.Int64N(1<<40) + 1<<41
	als := storage.Cell{Table: storage.TableCBRecall, Row: storage.RecallRow(user), Column: storage.RecallColumn("als", 3)}
	weights, _ := storage.EncodeFloats([]float64{0.5, 0.25})
	vector, _ := storage.EncodeFloats([]float64{3, 1, 2})
	score, _ := storage.EncodeScore(0.75)
	var cells []storage.CellValue
	for i := range int64(300) {
		cells = append(cells, storage.CellValue{Cell: storage.Cell{Table: storage.TableCBRecall, Row: storage.RecallRow(user), Column: storage.RecallColumn("content", int32(i%25))}, Timestamp: now, Value: storage.EncodeIDs([]int64{i})})
	}
	cells = append(cells,
		storage.CellValue{Cell: als, Timestamp: now - 10, Value: storage.EncodeIDs([]int64{1, 2})},
		storage.CellValue{Cell: als, Timestamp: now, Value: storage.EncodeIDs([]int64{3})},
		storage.CellValue{Cell: storage.UserFeatureCell(user, 3), Value: weights},
		storage.CellValue{Cell: storage.ArticleFeatureCell(article), Value: vector},
		storage.CellValue{Cell: storage.Cell{Table: storage.TableArticleSimilar, Row: storage.SimilarRow(article), Column: storage.SimilarColumn(article + 1)}, Value: score},
	)
	if err := tables.PutCells(ctx(t), cells); err != nil {
		t.Fatal(err)
	}
	got, err := tables.Versions(ctx(t), als.Table, als.Row, []string{als.Column, storage.RecallColumn("content", 24)}, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.Version{{Timestamp: now, IDs: []int64{3}}, {Timestamp: now - 10, IDs: []int64{1, 2}}}
	if !versionsEqual(got[als.Column], want) {
		t.Errorf("loaded als versions = %+v, want %+v", got[als.Column], want)
	}
	if v := got[storage.RecallColumn("content", 24)]; len(v) != 1 || len(v[0].IDs) != 1 || v[0].IDs[0]%25 != 24 {
		t.Errorf("loaded content:24 = %+v, want one version of one id ≡ 24 mod 25", v)
	}
	// The same timestamp again replaces: offline jobs own their versions.
	if err := tables.PutCells(ctx(t), []storage.CellValue{{Cell: als, Timestamp: now, Value: storage.EncodeIDs([]int64{4})}}); err != nil {
		t.Fatal(err)
	}
	got, _ = tables.Versions(ctx(t), als.Table, als.Row, []string{als.Column}, now, 1)
	if v := got[als.Column]; len(v) != 1 || !slices.Equal(v[0].IDs, []int64{4}) {
		t.Errorf("after a second load at the same timestamp = %+v, want [4]", v)
	}
	if w, err := tables.UserWeights(ctx(t), user, 3); err != nil || !slices.Equal(w, []float64{0.5, 0.25}) {
		t.Errorf("loaded user weights = %v, %v", w, err)
	}
	if v, err := tables.ArticleVectors(ctx(t), []int64{article}); err != nil || !slices.Equal(v[article], []float64{3, 1, 2}) {
		t.Errorf("loaded article vector = %v, %v", v, err)
	}
	if s, err := tables.Similar(ctx(t), article, 5); err != nil || !slices.Equal(s, []storage.Scored{{ID: article + 1, Score: 0.75}}) {
		t.Errorf("loaded similar = %v, %v", s, err)
	}
}

func timestamps(vs []storage.Version) []int64 {
	var ts []int64
	for _, v := range vs {
		ts = append(ts, v.Timestamp)
	}
	return ts
}

func lists(t *testing.T, l storage.Lists) {
	now := time.Now().UnixMilli()
	t.Run("versions newest first, bounded by timestamp and limit", func(t *testing.T) {
		c := storage.HistoryCell(unique(t), 3)
		for _, ts := range []int64{now - 3000, now - 1000, now - 2000} {
			if err := l.Append(ctx(t), c, ts, []int64{ts % 1000, ts%1000 + 1}); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			maxTS  int64
			limit  int
			wantTS []int64
		}{
			{now, 0, []int64{now - 1000, now - 2000, now - 3000}},
			{now - 1500, 0, []int64{now - 2000, now - 3000}},
			{now - 2000, 0, []int64{now - 2000, now - 3000}},
			{now, 2, []int64{now - 1000, now - 2000}},
			{now - 1500, 1, []int64{now - 2000}},
			{now - 5000, 0, nil},
		}
		for _, tt := range tests {
			got, err := l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, tt.maxTS, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if ts := timestamps(got[c.Column]); !slices.Equal(ts, tt.wantTS) {
				t.Errorf("Versions(maxTS=now-%d, limit=%d) timestamps = %v, want %v", now-tt.maxTS, tt.limit, ts, tt.wantTS)
			}
			if _, ok := got[c.Column]; !ok && tt.wantTS != nil {
				t.Errorf("column missing from result")
			}
		}
		got, _ := l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, now, 1)
		if v := got[c.Column]; len(v) != 1 || !slices.Equal(v[0].IDs, []int64{(now - 1000) % 1000, (now-1000)%1000 + 1}) {
			t.Errorf("newest version = %+v, want the ids written at now-1000", v)
		}
	})

	t.Run("several columns in one read", func(t *testing.T) {
		user := unique(t)
		c0, c5 := storage.HistoryCell(user, 0), storage.HistoryCell(user, 5)
		if err := l.Append(ctx(t), c0, now, []int64{1}); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx(t), c5, now, []int64{5}); err != nil {
			t.Fatal(err)
		}
		got, err := l.Versions(ctx(t), c0.Table, c0.Row, []string{c0.Column, c5.Column, storage.ChannelColumn(9)}, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !slices.Equal(got[c0.Column][0].IDs, []int64{1}) || !slices.Equal(got[c5.Column][0].IDs, []int64{5}) {
			t.Errorf("Versions = %+v, want channel:0 [1] and channel:5 [5] only", got)
		}
	})

	t.Run("two writes at one timestamp merge", func(t *testing.T) {
		c := storage.HistoryCell(unique(t), 1)
		if err := l.Append(ctx(t), c, now, []int64{1, 2}); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx(t), c, now, []int64{2, 3}); err != nil {
			t.Fatal(err)
		}
		got, err := l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []storage.Version{{Timestamp: now, IDs: []int64{1, 2, 3}}}
		if !versionsEqual(got[c.Column], want) {
			t.Errorf("Versions = %+v, want %+v", got[c.Column], want)
		}
	})

	t.Run("concurrent writes at one timestamp all land", func(t *testing.T) {
		c := storage.HistoryCell(unique(t), 2)
		const writers = 16
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- l.Append(ctx(t), c, now, []int64{int64(100 + i)})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got[c.Column]) != 1 {
			t.Fatalf("got %d versions, want 1", len(got[c.Column]))
		}
		ids := slices.Sorted(slices.Values(got[c.Column][0].IDs))
		for i := range writers {
			if _, found := slices.BinarySearch(ids, int64(100+i)); !found {
				t.Errorf("id %d of writer %d lost: version holds %v", 100+i, i, ids)
			}
		}
	})

	t.Run("versions older than the TTL are gone", func(t *testing.T) {
		c := storage.HistoryCell(unique(t), 4)
		day := int64(24 * time.Hour / time.Millisecond)
		if err := l.Append(ctx(t), c, now-91*day, []int64{1}); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx(t), c, now-89*day, []int64{2}); err != nil {
			t.Fatal(err)
		}
		got, err := l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ts := timestamps(got[c.Column]); !slices.Equal(ts, []int64{now - 89*day}) {
			t.Errorf("timestamps = %v, want only the 89-day-old version (TTL is 90 days)", ts)
		}
	})

	t.Run("delete through a timestamp keeps later versions", func(t *testing.T) {
		c := storage.Cell{Table: storage.TableCBRecall, Row: storage.RecallRow(unique(t)), Column: storage.RecallColumn("als", 7)}
		for _, ts := range []int64{now - 300, now - 200, now - 100} {
			if err := l.Append(ctx(t), c, ts, []int64{ts}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.DeleteThrough(ctx(t), c, now-200); err != nil {
			t.Fatal(err)
		}
		got, err := l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ts := timestamps(got[c.Column]); !slices.Equal(ts, []int64{now - 100}) {
			t.Errorf("after DeleteThrough(now-200) timestamps = %v, want [now-100]", ts)
		}
		// A write after the delete, even at an older timestamp, is visible again:
		// deletes cover what was there, not what comes.
		if err := l.Append(ctx(t), c, now-50, []int64{9}); err != nil {
			t.Fatal(err)
		}
		got, _ = l.Versions(ctx(t), c.Table, c.Row, []string{c.Column}, now, 0)
		if ts := timestamps(got[c.Column]); !slices.Equal(ts, []int64{now - 50, now - 100}) {
			t.Errorf("after a new write timestamps = %v, want [now-50 now-100]", ts)
		}
	})
}

func versionsEqual(a, b []storage.Version) bool {
	return slices.EqualFunc(a, b, func(x, y storage.Version) bool {
		return x.Timestamp == y.Timestamp && slices.Equal(x.IDs, y.IDs)
	})
}

func queue(t *testing.T, q storage.Queue) {
	t.Run("push appends without duplicates, take pops the head", func(t *testing.T) {
		c := storage.WaitCell(unique(t), 1)
		if got, err := q.Take(ctx(t), c, 5); err != nil || len(got) != 0 {
			t.Fatalf("Take on empty = %v, %v; want nothing", got, err)
		}
		if err := q.Push(ctx(t), c, []int64{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if err := q.Push(ctx(t), c, []int64{3, 4}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			n    int
			want []int64
		}{{0, nil}, {-1, nil}, {2, []int64{1, 2}}, {10, []int64{3, 4}}, {1, nil}} {
			got, err := q.Take(ctx(t), c, tt.n)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Take(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
			}
		}
	})

	t.Run("concurrent takers never get the same id", func(t *testing.T) {
		c := storage.WaitCell(unique(t), 2)
		const total = 120
		var all []int64
		for i := range total {
			all = append(all, int64(i+1))
		}
		if err := q.Push(ctx(t), c, all); err != nil {
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
					got, err := q.Take(ctx(t), c, 7)
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

func similarity(t *testing.T, s storage.Similarity) {
	article := rand.Int64N(1<<40) + 1<<41
	if got, err := s.Similar(ctx(t), article, 5); err != nil || len(got) != 0 {
		t.Fatalf("Similar of an unknown article = %v, %v; want nothing", got, err)
	}
	in := []storage.Scored{{ID: 11, Score: 0.2}, {ID: 12, Score: 0.9}, {ID: 13, Score: 0.5}, {ID: 14, Score: 0.7}}
	if err := s.PutSimilar(ctx(t), article, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Similar(ctx(t), article, 3)
	want := []storage.Scored{{ID: 12, Score: 0.9}, {ID: 14, Score: 0.7}, {ID: 13, Score: 0.5}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Similar(n=3) = %v, %v; want %v", got, err, want)
	}
}

func features(t *testing.T, f storage.Features) {
	user := unique(t)
	if got, err := f.UserWeights(ctx(t), user, 3); err != nil || got != nil {
		t.Fatalf("UserWeights of an unknown user = %v, %v; want nil", got, err)
	}
	w := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
	if err := f.PutUserWeights(ctx(t), user, 3, w); err != nil {
		t.Fatal(err)
	}
	if got, err := f.UserWeights(ctx(t), user, 3); err != nil || !slices.Equal(got, w) {
		t.Errorf("UserWeights = %v, %v; want %v", got, err, w)
	}
	if got, _ := f.UserWeights(ctx(t), user, 4); got != nil {
		t.Errorf("UserWeights of another channel = %v, want nil", got)
	}
	w7 := []float64{7, 7, 7, 7, 7, 7, 7, 7, 7, 7}
	if err := f.PutUserWeights(ctx(t), user, 7, w7); err != nil {
		t.Fatal(err)
	}
	all, err := f.UserWeightsIn(ctx(t), user, []int32{3, 4, 7})
	if err != nil || len(all) != 2 || !slices.Equal(all[3], w) || !slices.Equal(all[7], w7) {
		t.Errorf("UserWeightsIn(3, 4, 7) = %v, %v; want channels 3 and 7 only", all, err)
	}

	base := rand.Int64N(1<<40) + 1<<41
	vecs := map[int64][]float64{}
	for i := range int64(50) {
		v := make([]float64, 111)
		for j := range v {
			v[j] = float64(i) + float64(j)/1000
		}
		vecs[base+i] = v
	}
	if err := f.PutArticleVectors(ctx(t), vecs); err != nil {
		t.Fatal(err)
	}
	ids := []int64{base + 3, base + 49, base + 1000}
	got, err := f.ArticleVectors(ctx(t), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !slices.Equal(got[base+3], vecs[base+3]) || !slices.Equal(got[base+49], vecs[base+49]) {
		t.Errorf("ArticleVectors = %d vectors, want the 2 stored ones intact", len(got))
	}
}

// SortedSets runs the contract of the Redis role against sets.
func SortedSets(t *testing.T, sets storage.SortedSets) {
	t.Run("top and pop in score order", func(t *testing.T) {
		key := unique(t) + ":art"
		in := []storage.Scored{{ID: 1, Score: 10}, {ID: 2, Score: 30}, {ID: 3, Score: 20}, {ID: 4, Score: 5}}
		if err := sets.Add(ctx(t), key, in, 0); err != nil {
			t.Fatal(err)
		}
		top, err := sets.Top(ctx(t), key, 3)
		want := []storage.Scored{{ID: 2, Score: 30}, {ID: 3, Score: 20}, {ID: 1, Score: 10}}
		if err != nil || !slices.Equal(top, want) {
			t.Errorf("Top(3) = %v, %v; want %v", top, err, want)
		}
		for _, tt := range []struct {
			n    int
			want []int64
		}{{0, nil}, {-1, nil}, {2, []int64{2, 3}}, {5, []int64{1, 4}}, {1, nil}} {
			got, err := sets.PopMax(ctx(t), key, tt.n)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("PopMax(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
			}
		}
	})

	t.Run("concurrent pops never return a member twice", func(t *testing.T) {
		key := unique(t) + ":art"
		var in []storage.Scored
		for i := range 200 {
			in = append(in, storage.Scored{ID: int64(i + 1), Score: float64(i)})
		}
		if err := sets.Add(ctx(t), key, in, time.Minute); err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
		)
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := sets.PopMax(ctx(t), key, 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					if !slices.IsSortedFunc(got, func(a, b int64) int { return int(b - a) }) {
						t.Errorf("PopMax returned %v, not highest score first", got)
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
		for _, m := range in {
			if seen[m.ID] != 1 {
				t.Errorf("member %d popped %d times, want once", m.ID, seen[m.ID])
			}
		}
	})

	t.Run("add new: each member is claimed once", func(t *testing.T) {
		key := unique(t) + ":served"
		got, err := sets.AddNew(ctx(t), key, []storage.Scored{{ID: 1, Score: 1}, {ID: 2, Score: 1}}, time.Minute)
		if err != nil || !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("AddNew(1, 2) = %v, %v; want [1 2]", got, err)
		}
		got, err = sets.AddNew(ctx(t), key, []storage.Scored{{ID: 2, Score: 5}, {ID: 3, Score: 1}}, time.Minute)
		if err != nil || !slices.Equal(got, []int64{3}) {
			t.Errorf("AddNew(2, 3) = %v, %v; want [3]", got, err)
		}
		if top, _ := sets.Top(ctx(t), key, 1); len(top) != 1 || top[0].Score != 1 {
			t.Errorf("Top = %v: AddNew changed an existing member's score", top)
		}
		// Concurrent claims of overlapping ids: each id goes to exactly one caller.
		var (
			mu   sync.Mutex
			wins = map[int64]int{}
			wg   sync.WaitGroup
		)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var offer []storage.Scored
				for id := int64(100); id < 140; id++ {
					offer = append(offer, storage.Scored{ID: id + int64(g%2), Score: 1})
				}
				got, err := sets.AddNew(ctx(t), key, offer, time.Minute)
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

	t.Run("keys expire after their ttl", func(t *testing.T) {
		key := unique(t) + ":art"
		if err := sets.Add(ctx(t), key, []storage.Scored{{ID: 1, Score: 1}}, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if got, _ := sets.Top(ctx(t), key, 1); len(got) != 1 {
			t.Fatalf("Top right after Add = %v, want the member", got)
		}
		time.Sleep(600 * time.Millisecond)
		if got, err := sets.Top(ctx(t), key, 1); err != nil || len(got) != 0 {
			t.Errorf("Top after the ttl = %v, %v; want nothing", got, err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		key := unique(t) + ":hot"
		if err := sets.Add(ctx(t), key, []storage.Scored{{ID: 1, Score: 1}}, 0); err != nil {
			t.Fatal(err)
		}
		if err := sets.Delete(ctx(t), key); err != nil {
			t.Fatal(err)
		}
		if got, err := sets.Top(ctx(t), key, 1); err != nil || len(got) != 0 {
			t.Errorf("Top after Delete = %v, %v; want nothing", got, err)
		}
	})
}
