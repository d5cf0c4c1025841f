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
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout/layouttest"
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

// cells is db's engine of the HBase role, below the domain's layout.
func cells(db *DB) *tables { return &tables{db: db} }

// zsets is db's engine of the Redis role, below the domain's layout.
func zsets(db *DB) *sortedSets { return &sortedSets{db: db} }

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

func TestSetsContract(t *testing.T) {
	storagetest.Sets(t, open(t, false).Sets())
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

func TestTablesNeedBootstrap(t *testing.T) {
	db := open(t, false)
	err := db.Tables().Record(context.Background(), "u", 1, 1, []int64{1})
	if !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("Record before Bootstrap: err = %v, want ErrNotBootstrapped", err)
	}
}

func TestTablesRefuseWhatHBaseWould(t *testing.T) {
	tb := cells(open(t, true))
	ctx := context.Background()
	tests := []struct {
		name string
		cell layout.Cell
		want error
	}{
		{"unknown table", layout.Cell{Table: "wait_recommmend", Row: "reco:u", Column: "channel:1"}, ErrUnknownFamily},
		{"unknown family", layout.Cell{Table: layout.TableHistoryRecommend, Row: "reco:his:u", Column: "chanel:1"}, ErrUnknownFamily},
		{"NUL in row", layout.HistoryCell("u\x00v", 1), ErrInvalidKey},
		{"NUL in column", layout.Cell{Table: layout.TableHistoryRecommend, Row: "reco:his:u", Column: "channel:\x00"}, ErrInvalidKey},
		{"empty row", layout.Cell{Table: layout.TableHistoryRecommend, Column: "channel:1"}, ErrInvalidKey},
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

// The original ran eval() on these bytes; here they are data, and a malformed
// value affects only itself: whichever domain port reads it skips it, counts it
// and logs it once, and serves the rest.
func TestMalformedCellsAffectOnlyThemselves(t *testing.T) {
	db := open(t, true)
	r := layouttest.NewReports(t)
	db.bad = r.Bad
	layouttest.MalformedCells(t, context.Background(), cells(db), r, "u", 1000)
}

func TestMalformedMembersAffectOnlyThemselves(t *testing.T) {
	db := open(t, false)
	r := layouttest.NewReports(t)
	db.bad = r.Bad
	ctx := context.Background()
	add := func(key, m string, score float64) {
		t.Helper()
		err := db.update(ctx, func(tx *bolt.Tx) error {
			b, err := tx.Bucket(bucketSets).CreateBucketIfNotExists([]byte(key))
			if err != nil {
				return err
			}
			return errors.Join(b.Put(memberKey([]byte(m)), encodeInt64(int64(math.Float64bits(score)))), b.Put(scoreKey(score, []byte(m)), nil))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	members := func(key string) []string {
		t.Helper()
		var out []string
		err := db.bolt.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSets).Bucket([]byte(key))
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, _ := c.Seek([]byte{tagMember}); k != nil && k[0] == tagMember; k, _ = c.Next() {
				out = append(out, string(k[1:]))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	layouttest.MalformedMembers(t, ctx, zsets(db), add, members, r, "u", 3)
}

// An index entry of the embedded layout that is no score key at all is
// dropped like a malformed member.
func TestMalformedIndexEntryIsDropped(t *testing.T) {
	db := open(t, false)
	sets := zsets(db)
	ctx := context.Background()
	if err := sets.Add(ctx, "k", []storage.Scored{{ID: 4, Score: 1}}, 0); err != nil {
		t.Fatal(err)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSets).Bucket([]byte("k")).Put([]byte{tagScore, 0xff}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := sets.PopMax(ctx, "k", 5); err != nil || !slices.Equal(got, []int64{4}) {
		t.Errorf("PopMax = %v, %v; want [4]", got, err)
	}
	if got, err := sets.Top(ctx, "k", 5); err != nil || len(got) != 0 {
		t.Errorf("Top after the pop = %v, %v; want an empty set", got, err)
	}
}

// Versions honours every combination of bound and limit, beyond the ones the
// domain's readers use (History.Page: a bound and 2; Newest: 1; the rest: all).
func TestVersionsBounds(t *testing.T) {
	layouttest.VersionsBounds(t, context.Background(), cells(open(t, true)), "u")
}

func TestSingleVersionCellsKeepOneVersion(t *testing.T) {
	db := open(t, true)
	clk := withClock(db)
	tb := cells(db)
	ctx := context.Background()

	wait := layout.WaitCell("u", 1)
	for i := range int64(5) {
		if err := tb.Push(ctx, wait, []int64{i + 1}); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Millisecond)
	}
	// The clock going back must not lose the write that follows.
	clk.advance(-time.Hour)
	if err := tb.Push(ctx, wait, []int64{6}); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, db, wait.Table, cellPrefix(wait.Row, wait.Column)); len(keys) != 1 {
		t.Errorf("wait_recommend cell holds %d versions, want 1 (VERSIONS 1)", len(keys))
	}
	if got, err := tb.Take(ctx, wait, 10); err != nil || !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("Take = %v, %v; want [1 2 3 4 5 6]", got, err)
	}
	if keys := rawKeys(t, db, wait.Table, cellPrefix(wait.Row, wait.Column)); len(keys) != 0 {
		t.Errorf("emptied queue left %d versions, want none", len(keys))
	}

	for _, score := range []float64{0.1, 0.9, 0.3} {
		nb := storage.Neighbours{Article: 1, Similar: []storage.Scored{{ID: 2, Score: score}, {ID: 3, Score: 0.5}}}
		if err := db.Tables().Load(ctx, []storage.Record{nb}); err != nil {
			t.Fatal(err)
		}
		clk.advance(time.Millisecond)
	}
	want := []storage.Scored{{ID: 3, Score: 0.5}, {ID: 2, Score: 0.3}}
	if got, err := tb.Similar(ctx, 1, 5); err != nil || !slices.Equal(got, want) {
		t.Errorf("Similar = %v, %v; want %v (the last scores only)", got, err, want)
	}
	if keys := rawKeys(t, db, layout.TableArticleSimilar, rowPrefix(layout.SimilarRow(1))); len(keys) != 2 {
		t.Errorf("article_similar row holds %d versions, want 2 (one per neighbour)", len(keys))
	}
}

func TestExpiredVersionsArePurgedOnWrite(t *testing.T) {
	db := open(t, true)
	clk := withClock(db)
	tb := cells(db)
	ctx := context.Background()
	c := layout.HistoryCell("u", 1)
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
	if err := tb.Append(ctx, c, clk.now().UnixMilli(), []int64{1}); err != nil {
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
	ts := time.Now().UnixMilli()
	if err := db.Tables().Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Tables().Record(ctx, "u", 1, ts, []int64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.Sets().Replace(ctx, storage.NewList, 1, []storage.Scored{{ID: 3, Score: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	db, cleanup, err = Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	got, err := db.Tables().Page(ctx, "u", 1, ts)
	if err != nil || len(got) != 1 || !slices.Equal(got[0].IDs, []int64{1, 2}) {
		t.Errorf("after reopen Page = %v, %v; want [1 2]", got, err)
	}
	if top, err := db.Sets().Top(ctx, storage.NewList, 1, 5); err != nil || len(top) != 1 {
		t.Errorf("after reopen Top = %v, %v; want member 3", top, err)
	}
}

// Ties and the extremes of the score range order as in Redis, so code tested
// against the embedded engine sees what it will see in production.
func TestSortedSetOrderMatchesRedis(t *testing.T) {
	sets := zsets(open(t, false))
	ctx := context.Background()
	in := []storage.Scored{
		{ID: 9, Score: 1}, {ID: 10, Score: 1}, {ID: 100, Score: 1},
		{ID: 1, Score: math.Inf(-1)}, {ID: 2, Score: -2.5}, {ID: 3, Score: math.Copysign(0, -1)},
		{ID: 4, Score: 0.25}, {ID: 5, Score: math.Inf(1)}, {ID: 70, Score: -2.5},
	}
	if err := sets.Add(ctx, "order", in, 0); err != nil {
		t.Fatal(err)
	}
	want := []storage.Scored{
		{ID: 5, Score: math.Inf(1)}, {ID: 9, Score: 1}, {ID: 100, Score: 1}, {ID: 10, Score: 1},
		{ID: 4, Score: 0.25}, {ID: 3, Score: 0}, {ID: 70, Score: -2.5}, {ID: 2, Score: -2.5},
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

// Touching a key again soon after leaves its expiry (and the index every key
// shares) alone, within 1/expirySlack of its life; later it moves, and the
// key lives on.
func TestExpiryMovesOnlyWhenItMatters(t *testing.T) {
	db := open(t, false)
	clk := withClock(db)
	sets := zsets(db)
	ctx := context.Background()
	ttl := 30 * time.Minute
	indexed := func() []byte {
		t.Helper()
		var first []byte
		err := db.bolt.View(func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bucketExpiry).Cursor().First()
			first = clone(k)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return first
	}
	add := func() {
		t.Helper()
		if err := sets.Add(ctx, "k", []storage.Scored{{ID: 1, Score: 1}}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	add()
	was := indexed()
	clk.advance(time.Second)
	add()
	if got := indexed(); !bytes.Equal(got, was) {
		t.Errorf("a touch 1s later rewrote the expiry index (%q → %q): within %v of %v it should stay", was, got, ttl/expirySlack, ttl)
	}
	clk.advance(ttl / 8)
	add()
	if got := indexed(); bytes.Equal(got, was) {
		t.Errorf("a touch %v later left the expiry at %q: it should move", ttl/8, was)
	}
	// Alive past the first expiry: the last touch moved it.
	clk.advance(ttl - ttl/8)
	if got, err := sets.Top(ctx, "k", 1); err != nil || len(got) != 1 {
		t.Errorf("Top after the first expiry = %v, %v; want the member, its expiry moved", got, err)
	}
}

func TestSortedSetExpiry(t *testing.T) {
	db := open(t, false)
	clk := withClock(db)
	sets := zsets(db)
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
	tb, sets := cells(db), zsets(db)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	c := layout.HistoryCell("u", 1)
	for name, err := range map[string]error{
		"Append":   tb.Append(cancelled, c, 1, []int64{1}),
		"Versions": func() error { _, err := tb.Versions(cancelled, c.Table, c.Row, []string{c.Column}, 1, 0); return err }(),
		"Take":     func() error { _, err := tb.Take(cancelled, layout.WaitCell("u", 1), 1); return err }(),
		"Add":      sets.Add(cancelled, "k", []storage.Scored{{ID: 1}}, 0),
		"PopMax":   func() error { _, err := sets.PopMax(cancelled, "k", 1); return err }(),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", name, err)
		}
	}

	// A writer queued behind another gives up at its deadline.
	release := busyCommitter(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := tb.Append(ctx, c, 1, []int64{1})
	release()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Append behind a busy writer: err = %v, want context.DeadlineExceeded", err)
	}
}

// busyCommitter holds db's committer in a transaction until release.
func busyCommitter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	started, hold := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.update(context.Background(), func(*bolt.Tx) error {
			close(started)
			<-hold
			return nil
		})
	}()
	<-started
	var once sync.Once
	return func() { once.Do(func() { close(hold) }) }
}

// Writes that wait while a commit runs share the next one, and one of them
// failing fails only itself: the others land.
func TestGroupCommitKeepsWritesApart(t *testing.T) {
	db := open(t, false)
	sets := zsets(db)
	ctx := context.Background()
	release := busyCommitter(t, db)
	errs := make(chan error, 3)
	put := func(key string, id int64) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.Bucket(bucketSets).CreateBucketIfNotExists([]byte(key))
			if err != nil {
				return err
			}
			return putMember(b, storage.Scored{ID: id, Score: 1})
		}
	}
	boom := errors.New("boom")
	for _, fn := range []func(*bolt.Tx) error{put("a", 1), func(*bolt.Tx) error { return boom }, put("b", 3)} {
		go func() { errs <- db.update(ctx, fn) }()
	}
	time.Sleep(50 * time.Millisecond) // all three queued behind the busy commit
	release()
	failed := 0
	for range 3 {
		if err := <-errs; err != nil {
			failed++
			if !errors.Is(err, boom) {
				t.Errorf("a write failed with %v, want only the failing one's error", err)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d of 3 writes failed, want 1", failed)
	}
	for key, want := range map[string]int64{"a": 1, "b": 3} {
		if got, err := sets.Top(ctx, key, 1); err != nil || len(got) != 1 || got[0].ID != want {
			t.Errorf("Top(%s) = %v, %v; want [%d]", key, got, err, want)
		}
	}
}

// A sorted set's Delete removes every key given; absent ones are fine.
func TestSortedSetDelete(t *testing.T) {
	sets := zsets(open(t, false))
	ctx := context.Background()
	for _, k := range []string{"a", "b"} {
		if err := sets.Add(ctx, k, []storage.Scored{{ID: 1, Score: 1}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := sets.Delete(ctx, "a", "b", "absent"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if got, err := sets.Top(ctx, k, 1); err != nil || len(got) != 0 {
			t.Errorf("Top(%s) after Delete = %v, %v; want nothing", k, got, err)
		}
	}
}
