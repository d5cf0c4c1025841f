package embedded

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// benchDB opens a bootstrapped database, fsyncing on commit or not.
func benchDB(b *testing.B, noSync bool) *DB {
	b.Helper()
	db, cleanup, err := Open(Config{Path: filepath.Join(b.TempDir(), "bench.db"), NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cleanup() })
	if err := db.Tables().Bootstrap(context.Background()); err != nil {
		b.Fatal(err)
	}
	return db
}

// durabilities runs fn with and without fsync on commit.
func durabilities(b *testing.B, fn func(b *testing.B, db *DB)) {
	b.Run("fsync", func(b *testing.B) { fn(b, benchDB(b, false)) })
	b.Run("nosync", func(b *testing.B) { fn(b, benchDB(b, true)) })
}

// preload writes versions of c (10 ids each) ending at newest, in one
// transaction.
func preload(b *testing.B, db *DB, c layout.Cell, versions int, newest int64) {
	b.Helper()
	prefix := cellPrefix(c.Row, c.Column)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(c.Table))
		for i := range versions {
			ts := newest - int64(i)*1000
			if err := bk.Put(versionKey(prefix, ts), storage.EncodeIDs(tenIDs(ts))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func tenIDs(seed int64) []int64 {
	ids := make([]int64, 10)
	for i := range ids {
		ids[i] = seed*10 + int64(i) + 1 // article ids are positive
	}
	return ids
}

// BenchmarkAppend records a refresh's history: 10 ids as a new version of one of
// 64 users' cells; two refreshes sharing a time_stamp (the second merges); and a
// new version on a cell that already holds 5000 (a heavy reader's 90 days), which
// measures the trim walk.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	hist := make([]layout.Cell, 64)
	for i := range hist {
		hist[i] = layout.HistoryCell("u"+strconv.Itoa(i), 1)
	}
	b.Run("new-version", func(b *testing.B) {
		durabilities(b, func(b *testing.B, db *DB) {
			tb := cells(db)
			base := time.Now().UnixMilli()
			var lat storagetest.Latencies
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				err := tb.Append(ctx, hist[i%len(hist)], base+int64(i), tenIDs(int64(i)))
				lat.Since(start)
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.Report(b)
		})
	})
	b.Run("same-timestamp", func(b *testing.B) {
		durabilities(b, func(b *testing.B, db *DB) {
			tb := cells(db)
			base := time.Now().UnixMilli()
			var lat storagetest.Latencies
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				err := tb.Append(ctx, hist[(i/2)%len(hist)], base+int64(i/2), tenIDs(int64(i)))
				lat.Since(start)
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.Report(b)
		})
	})
	b.Run("deep-cell", func(b *testing.B) {
		durabilities(b, func(b *testing.B, db *DB) {
			tb := cells(db)
			now := time.Now().UnixMilli()
			preload(b, db, hist[0], 5000, now-1000)
			var lat storagetest.Latencies
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				err := tb.Append(ctx, hist[0], now+int64(i), tenIDs(int64(i)))
				lat.Since(start)
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.Report(b)
		})
	})
}

// BenchmarkVersions reads history as a refresh does: the newest version (to tell
// refresh from history), and every version of channels c and 0 (to filter what
// the user has seen), each cell holding 200 versions of 10 ids.
func BenchmarkVersions(b *testing.B) {
	db := benchDB(b, true)
	tb := cells(db)
	ctx := context.Background()
	c, all := layout.HistoryCell("u", 5), layout.HistoryCell("u", 0)
	now := time.Now().UnixMilli()
	preload(b, db, c, 200, now)
	preload(b, db, all, 200, now)
	for _, bb := range []struct {
		name    string
		columns []string
		limit   int
		want    int
	}{
		{"newest", []string{c.Column}, 1, 1},
		{"all-two-columns", []string{c.Column, all.Column}, 0, 200},
	} {
		b.Run(bb.name, func(b *testing.B) {
			var lat storagetest.Latencies
			for b.Loop() {
				start := time.Now()
				got, err := tb.Versions(ctx, c.Table, c.Row, bb.columns, math.MaxInt64, bb.limit)
				lat.Since(start)
				if err != nil || len(got[c.Column]) != bb.want {
					b.Fatalf("Versions = %d versions, %v; want %d", len(got[c.Column]), err, bb.want)
				}
			}
			lat.Report(b)
		})
	}
}

// BenchmarkPopMax pops a refresh's worth (10) from a tier-1 cache of 100, the
// hot path of every refresh.
func BenchmarkPopMax(b *testing.B) {
	durabilities(b, func(b *testing.B, db *DB) {
		sets := zsets(db)
		ctx := context.Background()
		fill := make([]storage.Scored, 100)
		for i := range fill {
			fill[i] = storage.Scored{ID: int64(i + 1), Score: float64(i)}
		}
		var lat storagetest.Latencies
		for i := 0; b.Loop(); i++ {
			if i%10 == 0 {
				b.StopTimer()
				if err := sets.Add(ctx, "reco:u:1:art", fill, time.Hour); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			start := time.Now()
			ids, err := sets.PopMax(ctx, "reco:u:1:art", 10)
			lat.Since(start)
			if err != nil || len(ids) != 10 {
				b.Fatalf("PopMax = %v, %v; want 10 ids", ids, err)
			}
		}
		lat.Report(b)
	})
}
