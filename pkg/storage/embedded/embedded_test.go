package embedded

import (
	"bytes"
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// open opens a fresh database in a temporary directory, closed at the end of the
// test.
func open(t testing.TB, bootstrap bool) *DB {
	t.Helper()
	db, cleanup, err := Open(Config{Path: filepath.Join(t.TempDir(), "reco.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	})
	if bootstrap {
		if err := db.Tables().Bootstrap(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// clock is a settable time source for TTLs and expiries.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withClock(db *DB) *clock {
	c := &clock{t: time.Now()}
	db.now = c.now
	return c
}

func TestTablesContract(t *testing.T) {
	storagetest.Tables(t, open(t, true).Tables())
}

func TestSortedSetsContract(t *testing.T) {
	storagetest.SortedSets(t, open(t, false).SortedSets())
}

// rawKeys returns the keys of table that start with prefix.
func rawKeys(t *testing.T, db *DB, table string, prefix []byte) [][]byte {
	t.Helper()
	var keys [][]byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(table)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, clone(k))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// rawPut writes value as the version at ts of c, bypassing the codec.
func rawPut(t *testing.T, db *DB, c storage.Cell, ts int64, value string) {
	t.Helper()
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(c.Table)).Put(versionKey(cellPrefix(c.Row, c.Column), ts), []byte(value))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTablesNeedBootstrap(t *testing.T) {
	db := open(t, false)
	err := db.Tables().Append(context.Background(), storage.HistoryCell("u", 1), 1, []int64{1})
	if !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("Append before Bootstrap: err = %v, want ErrNotBootstrapped", err)
	}
}

func TestTablesRefuseWhatHBaseWould(t *testing.T) {
	tb := open(t, true).Tables()
	ctx := context.Background()
	tests := []struct {
		name string
		cell storage.Cell
		want error
	}{
		{"unknown table", storage.Cell{Table: "wait_recommmend", Row: "reco:u", Column: "channel:1"}, ErrUnknownFamily},
		{"unknown family", storage.Cell{Table: storage.TableHistoryRecommend, Row: "reco:his:u", Column: "chanel:1"}, ErrUnknownFamily},
		{"NUL in row", storage.HistoryCell("u\x00v", 1), ErrInvalidKey},
		{"NUL in column", storage.Cell{Table: storage.TableHistoryRecommend, Row: "reco:his:u", Column: "channel:\x00"}, ErrInvalidKey},
		{"empty row", storage.Cell{Table: storage.TableHistoryRecommend, Column: "channel:1"}, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tb.Append(ctx, tt.cell, 1, []int64{1}); !errors.Is(err, tt.want) {
				t.Errorf("Append: err = %v, want %v", err, tt.want)
			}
			if _, err := tb.Versions(ctx, tt.cell.Table, tt.cell.Row, []string{tt.cell.Column}, 1, 0); !errors.Is(err, tt.want) {
				t.Errorf("Versions: err = %v, want %v", err, tt.want)
			}
		})
	}
}

// The original ran eval() on these bytes; here they are data, and bad data is an
// error.
func TestMalformedValuesAreErrors(t *testing.T) {
	db := open(t, true)
	tb := db.Tables()
	ctx := context.Background()
	const evil = "__import__('os').system('id')"
	now := time.Now().UnixMilli()

	hist := storage.HistoryCell("u", 1)
	rawPut(t, db, hist, now, evil)
	if _, err := tb.Versions(ctx, hist.Table, hist.Row, []string{hist.Column}, now, 0); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("Versions over a bad cell: err = %v, want ErrMalformed", err)
	}
	if err := tb.Append(ctx, hist, now, []int64{1}); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("Append merging into a bad cell: err = %v, want ErrMalformed", err)
	}

	wait := storage.WaitCell("u", 1)
	rawPut(t, db, wait, now, "[1, 2")
	if _, err := tb.Take(ctx, wait, 1); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("Take from a bad queue: err = %v, want ErrMalformed", err)
	}
	if err := tb.Push(ctx, wait, []int64{3}); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("Push to a bad queue: err = %v, want ErrMalformed", err)
	}

	rawPut(t, db, storage.UserFeatureCell("u", 1), now, "null")
	if _, err := tb.UserWeights(ctx, "u", 1); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("UserWeights of a bad cell: err = %v, want ErrMalformed", err)
	}

	rawPut(t, db, storage.ArticleFeatureCell(7), now, "[0.1, 'x']")
	if _, err := tb.ArticleVectors(ctx, []int64{7}); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("ArticleVectors with a bad cell: err = %v, want ErrMalformed", err)
	}

	rawPut(t, db, storage.Cell{Table: storage.TableArticleSimilar, Row: storage.SimilarRow(9), Column: storage.SimilarColumn(10)}, now, "0.5; rm -rf /")
	if _, err := tb.Similar(ctx, 9, 3); !errors.Is(err, storage.ErrMalformed) {
		t.Errorf("Similar with a bad score: err = %v, want ErrMalformed", err)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	tb := open(t, true).Tables()
	ctx := context.Background()
	if err := tb.PutSimilar(ctx, 1, []storage.Scored{{ID: 2, Score: 0.5}, {ID: 3, Score: math.NaN()}}); err == nil {
		t.Error("PutSimilar with a NaN score succeeded")
	}
	if got, _ := tb.Similar(ctx, 1, 5); len(got) != 0 {
		t.Errorf("after a refused PutSimilar, Similar = %v, want nothing", got)
	}
	err := tb.PutArticleVectors(ctx, map[int64][]float64{1: {0.1}, 2: {math.Inf(1)}})
	if err == nil {
		t.Error("PutArticleVectors with an Inf succeeded")
	}
	if got, _ := tb.ArticleVectors(ctx, []int64{1, 2}); len(got) != 0 {
		t.Errorf("after a refused PutArticleVectors, ArticleVectors = %v, want nothing", got)
	}
}

func TestSingleVersionCellsKeepOneVersion(t *testing.T) {
	db := open(t, true)
	clk := withClock(db)
	tb := db.Tables()
	ctx := context.Background()

	wait := storage.WaitCell("u", 1)
	for i := range int64(5) {
		if err := tb.Push(ctx, wait, []int64{i}); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Millisecond)
	}
	// The clock going back must not lose the write that follows.
	clk.advance(-time.Hour)
	if err := tb.Push(ctx, wait, []int64{5}); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, db, wait.Table, cellPrefix(wait.Row, wait.Column)); len(keys) != 1 {
		t.Errorf("wait_recommend cell holds %d versions, want 1 (VERSIONS 1)", len(keys))
	}
	if got, err := tb.Take(ctx, wait, 10); err != nil || !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5}) {
		t.Errorf("Take = %v, %v; want [0 1 2 3 4 5]", got, err)
	}
	if keys := rawKeys(t, db, wait.Table, cellPrefix(wait.Row, wait.Column)); len(keys) != 0 {
		t.Errorf("emptied queue left %d versions, want none", len(keys))
	}

	for _, score := range []float64{0.1, 0.9, 0.3} {
		if err := tb.PutSimilar(ctx, 1, []storage.Scored{{ID: 2, Score: score}, {ID: 3, Score: 0.5}}); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Millisecond)
	}
	want := []storage.Scored{{ID: 3, Score: 0.5}, {ID: 2, Score: 0.3}}
	if got, err := tb.Similar(ctx, 1, 5); err != nil || !slices.Equal(got, want) {
		t.Errorf("Similar = %v, %v; want %v (the last scores only)", got, err, want)
	}
	if keys := rawKeys(t, db, storage.TableArticleSimilar, rowPrefix(storage.SimilarRow(1))); len(keys) != 2 {
		t.Errorf("article_similar row holds %d versions, want 2 (one per neighbour)", len(keys))
	}
}

func TestExpiredVersionsArePurgedOnWrite(t *testing.T) {
	db := open(t, true)
	clk := withClock(db)
	tb := db.Tables()
	ctx := context.Background()
	c := storage.HistoryCell("u", 1)
	day := 24 * time.Hour
	now := clk.now().UnixMilli()
	for _, age := range []time.Duration{91 * day, 89 * day, 10 * day} {
		if err := tb.Append(ctx, c, now-age.Milliseconds(), []int64{int64(age / day)}); err != nil {
			t.Fatal(err)
		}
	}
	prefix := cellPrefix(c.Row, c.Column)
	if keys := rawKeys(t, db, c.Table, prefix); len(keys) != 2 {
		t.Errorf("after writing versions 91, 89 and 10 days old: %d on disk, want 2", len(keys))
	}
	clk.advance(2 * day)
	got, err := tb.Versions(ctx, c.Table, c.Row, []string{c.Column}, math.MaxInt64, 0)
	if err != nil || len(got[c.Column]) != 1 || !slices.Equal(got[c.Column][0].IDs, []int64{10}) {
		t.Errorf("two days later Versions = %v, %v; want only the 10-day-old version", got, err)
	}
	if err := tb.Append(ctx, c, clk.now().UnixMilli(), []int64{0}); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, db, c.Table, prefix); len(keys) != 2 {
		t.Errorf("after the next write: %d versions on disk, want 2 (the expired one purged)", len(keys))
	}
}

// The key encodings keep their order across zero and at the extremes.
func TestKeyOrder(t *testing.T) {
	ts := []int64{math.MinInt64, -2, -1, 0, 1, math.MaxInt64}
	for i := 1; i < len(ts); i++ {
		older, newer := versionKey([]byte("p"), ts[i-1]), versionKey([]byte("p"), ts[i])
		if bytes.Compare(newer, older) >= 0 {
			t.Errorf("version key of %d does not sort before that of %d", ts[i], ts[i-1])
		}
		if got := keyTimestamp(older); got != ts[i-1] {
			t.Errorf("keyTimestamp(versionKey(%d)) = %d", ts[i-1], got)
		}
	}
	scores := []float64{math.Inf(-1), -math.MaxFloat64, -1, -math.SmallestNonzeroFloat64, 0, math.SmallestNonzeroFloat64, 1, math.MaxFloat64, math.Inf(1)}
	for i := 1; i < len(scores); i++ {
		if sortableScore(scores[i-1]) >= sortableScore(scores[i]) {
			t.Errorf("score %v does not sort before %v", scores[i-1], scores[i])
		}
		if got := unsortableScore(sortableScore(scores[i])); got != scores[i] {
			t.Errorf("score %v round-trips to %v", scores[i], got)
		}
	}
	if sortableScore(math.Copysign(0, -1)) != sortableScore(0) {
		t.Error("-0 and 0 sort apart")
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reco.db")
	ctx := context.Background()
	db, cleanup, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	c := storage.HistoryCell("u", 1)
	ts := time.Now().UnixMilli()
	if err := db.Tables().Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Tables().Append(ctx, c, ts, []int64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.SortedSets().Add(ctx, "k", []storage.Scored{{ID: 3, Score: 1}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	db, cleanup, err = Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	got, err := db.Tables().Versions(ctx, c.Table, c.Row, []string{c.Column}, ts, 0)
	if err != nil || len(got[c.Column]) != 1 || !slices.Equal(got[c.Column][0].IDs, []int64{1, 2}) {
		t.Errorf("after reopen Versions = %v, %v; want [1 2]", got, err)
	}
	if top, err := db.SortedSets().Top(ctx, "k", 5); err != nil || len(top) != 1 {
		t.Errorf("after reopen Top = %v, %v; want member 3", top, err)
	}
}

// Ties and the extremes of the score range order as in Redis, so code tested
// against the embedded engine sees what it will see in production.
func TestSortedSetOrderMatchesRedis(t *testing.T) {
	sets := open(t, false).SortedSets()
	ctx := context.Background()
	in := []storage.Scored{
		{ID: 9, Score: 1}, {ID: 10, Score: 1}, {ID: 100, Score: 1},
		{ID: 1, Score: math.Inf(-1)}, {ID: 2, Score: -2.5}, {ID: 3, Score: math.Copysign(0, -1)},
		{ID: 4, Score: 0.25}, {ID: 5, Score: math.Inf(1)}, {ID: -7, Score: -2.5},
	}
	if err := sets.Add(ctx, "order", in, 0); err != nil {
		t.Fatal(err)
	}
	want := []storage.Scored{
		{ID: 5, Score: math.Inf(1)}, {ID: 9, Score: 1}, {ID: 100, Score: 1}, {ID: 10, Score: 1},
		{ID: 4, Score: 0.25}, {ID: 3, Score: 0}, {ID: 2, Score: -2.5}, {ID: -7, Score: -2.5},
		{ID: 1, Score: math.Inf(-1)},
	}
	if got, err := sets.Top(ctx, "order", 20); err != nil || !slices.Equal(got, want) {
		t.Errorf("Top = %v, %v\nwant %v", got, err, want)
	}
	// A member added again moves to its new score.
	if err := sets.Add(ctx, "order", []storage.Scored{{ID: 1, Score: 2}}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := sets.PopMax(ctx, "order", 2); err != nil || !slices.Equal(got, []int64{5, 1}) {
		t.Errorf("PopMax(2) after re-scoring 1 = %v, %v; want [5 1]", got, err)
	}
}

func TestSortedSetExpiry(t *testing.T) {
	db := open(t, false)
	clk := withClock(db)
	sets := db.SortedSets()
	ctx := context.Background()
	one := []storage.Scored{{ID: 1, Score: 1}}

	if err := sets.Add(ctx, "a", one, time.Second); err != nil {
		t.Fatal(err)
	}
	// A ttl of 0 leaves the expiry alone, as ZADD does.
	if err := sets.Add(ctx, "a", []storage.Scored{{ID: 2, Score: 2}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := sets.Add(ctx, "forgotten", one, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.advance(2 * time.Second)
	if got, err := sets.PopMax(ctx, "a", 5); err != nil || len(got) != 0 {
		t.Errorf("PopMax of an expired key = %v, %v; want nothing", got, err)
	}
	// Adding to an expired key starts a new set without the old members.
	if err := sets.Add(ctx, "a", []storage.Scored{{ID: 3, Score: 3}}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := sets.Top(ctx, "a", 5); err != nil || !slices.Equal(got, []storage.Scored{{ID: 3, Score: 3}}) {
		t.Errorf("Top after re-adding to an expired key = %v, %v; want [{3 3}]", got, err)
	}
	// That Add also swept the key nobody touches any more.
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSets).Bucket([]byte("forgotten")) != nil {
			t.Error("expired key still on disk after a later Add")
		}
		if k, _ := tx.Bucket(bucketExpiry).Cursor().First(); k != nil {
			t.Errorf("expiry index still holds %q", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Popping the last member deletes the key, as in Redis.
	if _, err := sets.PopMax(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSets).Bucket([]byte("a")) != nil {
			t.Error("emptied set still on disk")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCallsHonourTheContext(t *testing.T) {
	db := open(t, true)
	tb, sets := db.Tables(), db.SortedSets()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	c := storage.HistoryCell("u", 1)
	for name, err := range map[string]error{
		"Append":   tb.Append(cancelled, c, 1, []int64{1}),
		"Versions": func() error { _, err := tb.Versions(cancelled, c.Table, c.Row, []string{c.Column}, 1, 0); return err }(),
		"Take":     func() error { _, err := tb.Take(cancelled, storage.WaitCell("u", 1), 1); return err }(),
		"Add":      sets.Add(cancelled, "k", []storage.Scored{{ID: 1}}, 0),
		"PopMax":   func() error { _, err := sets.PopMax(cancelled, "k", 1); return err }(),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", name, err)
		}
	}

	// A writer queued behind another gives up at its deadline.
	db.writer <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := tb.Append(ctx, c, 1, []int64{1})
	<-db.writer
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append behind a busy writer: err = %v, want context.DeadlineExceeded", err)
	}
}
