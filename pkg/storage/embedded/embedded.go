// Package embedded is the development storage engine: both roles of DESIGN.md §3,
// the HBase tables (storage.Tables) and the Redis sorted sets (storage.Sets), in
// one bbolt file. It implements the engine contracts layout.Cells and
// layout.SortedSets; package layout lays the domain out over them.
//
// # Why bbolt
//
// It is one file and pure Go, so `reco serve --target=all` needs no server and no
// cgo. Its transactions are serializable (one writer at a time, readers on a
// consistent snapshot), which gives the two guarantees the feed depends on without
// extra machinery: Cells.Take and SortedSets.PopMax are a read and a delete in one
// transaction, so two concurrent refreshes never get the same id; and Cells.Append
// merges into a version at the same timestamp in one transaction, so two writes that
// share a request time_stamp both land. The HBase backend needs check-and-mutate
// for the latter and Redis gets it from ZPOPMAX; here it is free.
//
// # Tables
//
// Each table of layout.Schema is a bucket, created by Bootstrap (not by Open:
// forgetting Bootstrap fails here the way it fails against HBase). A version of a
// cell is one key:
//
//	row 0x00 family:qualifier 0x00 ^timestamp (8 bytes, big-endian)
//
// The inverted timestamp makes a cursor walk a cell newest first, so "newest
// version", "versions <= maxTS" and "versions through ts" are a seek and a short
// walk. Values are the JSON of storage's codec, byte for byte what HBase holds,
// and are decoded strictly, never with a panic: a malformed cell affects only
// itself, reported through the layout.BadCells of Open's WithBadCells and
// skipped as layout.Cells says. Each family's schema is honoured as HBase
// would: a write trims the cell to the family's MaxVersions, and a version older
// than now−TTL is invisible to reads and purged by the next write to its cell.
// Cells nobody writes again keep their expired versions on disk (HBase drops them
// at compaction); reads never see them.
//
// # Sorted sets
//
// Every key is a nested bucket of one top-level bucket, holding
//
//	'm' member        → score (float64 bits)
//	's' score member  → nothing (score in an order-preserving encoding)
//	'e'               → expiry (Unix ms), when the key has a ttl
//
// Members are decimal id strings, as in Redis, so ties of equal score are broken
// the way Redis breaks them (the lexicographically greater member pops first) and
// a hot list reads the same from both backends. A key past its expiry behaves as
// absent and is deleted by the next write that touches it; an expiry index lets
// every Add also delete a few expired keys nobody touches any more, so abandoned
// per-user caches do not pile up in the file.
//
// # Counters and marks
//
// The hashes beside the sets (the marks of what a hot list or a strategy's
// counters applied, the counters, the registry of strategies) are nested
// buckets of another top-level bucket, field → value; the time a hot list was
// cooled is a value of a third. Neither expires. A counted action and its
// mark are written in one transaction, which is all the atomicity the Redis
// backend needs a script for.
//
// # Durability and speed
//
// Every write is fsynced on commit unless Config.NoSync says otherwise; the
// writes that wait while a commit runs share the next transaction and its
// fsync (group commit), so concurrent writers cost one disk flush, not one
// each. The freelist is not written on commit (NoFreelistSync: one page write
// less per transaction; bbolt rebuilds it by scanning the file on Open) and is
// kept in a hashmap, which stays fast as the file grows. Writers queue in a
// way that honours the caller's context, so a deadline expires while waiting
// rather than after; once a write runs it completes.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// Config says where the embedded database lives and how it writes.
type Config struct {
	// Path is the database file, created if missing. Only one process can hold it.
	Path string `yaml:"path"`
	// NoSync skips the fsync on commit: writes are several times faster, and a
	// machine crash (not a process crash) may lose the last transactions. Fine for
	// tests and throwaway development data.
	NoSync bool `yaml:"no_sync"`
}

// Validate reports whether c can be opened.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("path is required")
	}
	return nil
}

// lockTimeout bounds the wait for another process's lock on the file, so a second
// `reco serve` on the same file fails with a message instead of hanging.
const lockTimeout = 2 * time.Second

// DB is an open embedded database. It serves both storage roles; Open's cleanup
// closes it.
type DB struct {
	bolt *bolt.DB
	// writes queue the write transactions for the committer, which runs
	// those waiting together in one transaction (group commit); stop ends it.
	writes chan *write
	stop   chan struct{}
	done   chan struct{}
	// now is the clock of TTLs, expiries and the timestamps of single-version
	// cells; tests move it.
	now func() time.Time
	// bad decodes what the engine reads and reports the malformed values.
	bad *layout.BadCells
}

// Option configures Open.
type Option func(*DB)

// WithBadCells reports the malformed values db reads to bad (counted and
// logged). Without it they are skipped all the same, silently.
func WithBadCells(bad *layout.BadCells) Option { return func(db *DB) { db.bad = bad } }

// Open opens (creating if needed) the database at cfg.Path. The sorted sets are
// ready at once; the tables exist after Tables().Bootstrap.
func Open(cfg Config, opts ...Option) (*DB, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid embedded storage config: %w", err)
	}
	b, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:        lockTimeout,
		NoSync:         cfg.NoSync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, nil, heldError(cfg.Path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open embedded storage %s: %w", cfg.Path, err)
	}
	writeHolder(cfg.Path)
	db := &DB{bolt: b, writes: make(chan *write), stop: make(chan struct{}), done: make(chan struct{}), now: time.Now}
	for _, o := range opts {
		o(db)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSets, bucketExpiry, bucketHashes, bucketStrings} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		removeHolder(cfg.Path)
		_ = b.Close()
		return nil, nil, fmt.Errorf("open embedded storage %s: %w", cfg.Path, err)
	}
	go db.commit()
	cleanup := func() error {
		close(db.stop)
		<-db.done
		removeHolder(cfg.Path)
		if err := b.Close(); err != nil {
			return fmt.Errorf("close embedded storage %s: %w", cfg.Path, err)
		}
		return nil
	}
	return db, cleanup, nil
}

// Tables returns the HBase role of db.
func (db *DB) Tables() storage.Tables { return layout.NewTables(&tables{db: db}) }

// Sets returns the Redis role of db.
func (db *DB) Sets() storage.Sets { return layout.NewSets(&sortedSets{db: db}) }

// write is one caller's write transaction, queued for the committer.
type write struct {
	ctx  context.Context
	fn   func(tx *bolt.Tx) error
	done chan error
}

// update runs fn in a write transaction, waiting for the committer no longer
// than ctx allows; once fn runs, its transaction completes. fn may run more
// than once (see commit) and must leave its results as the last run set them.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	w := &write{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case db.writes <- w:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.stop:
		return bolterrors.ErrDatabaseNotOpen
	}
	return <-w.done
}

// maxGroup bounds the writes one transaction commits.
const maxGroup = 256

// commit runs the queued writes until stop: every write waiting when the
// last commit ended shares the next transaction and its one fsync (group
// commit), so writers that arrive together cost one disk flush, and a lone
// writer waits for no one. When one write of a group fails, the transaction
// rolls back and each write of the group runs alone, so that one caller's
// error is never another's.
func (db *DB) commit() {
	defer close(db.done)
	group := make([]*write, 0, maxGroup)
	for {
		select {
		case w := <-db.writes:
			group = append(group[:0], w)
		case <-db.stop:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case w := <-db.writes:
				group = append(group, w)
			default:
				break more
			}
		}
		db.run(group)
	}
}

// run commits group, answering each of its writes.
func (db *DB) run(group []*write) {
	live := group[:0]
	for _, w := range group {
		if err := w.ctx.Err(); err != nil {
			w.done <- err // the caller stopped waiting before it ran
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	failed := false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		for _, w := range live {
			if err := w.fn(tx); err != nil {
				failed = true
				return err
			}
		}
		return nil
	})
	if !failed || len(live) == 1 {
		for _, w := range live {
			w.done <- err
		}
		return
	}
	for _, w := range live {
		w.done <- db.bolt.Update(w.fn)
	}
}

// view runs fn in a read transaction, unless ctx is already done.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(fn)
}
