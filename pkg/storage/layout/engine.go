// Package layout is how the stores of package storage are laid out in the
// engines: the HBase tables, families, qualifiers and row keys, the Redis keys,
// the sequence cells that merge same-stamp writes and the sentinel timestamps.
// It is the one place that knows them.
//
// It declares two engine contracts, Cells (the HBase role: versioned cells) and
// SortedSets (the Redis role), which the HBase, embedded and Redis backends
// implement, and implements the domain ports of package storage once over them
// (NewTables, NewSets), so every backend answers the feed's questions the same
// way. Nothing but those backends imports it: services and offline jobs speak
// storage's words only.
package layout

import (
	"context"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Cells is the HBase role of an engine: timestamped versions of cells of the
// tables of Schema. Every method refuses a table or family outside Schema.
//
// The engine decodes what it reads through its BadCells, and a malformed value
// affects only itself: each method says what it does with one. The ids it is
// given to write are positive (the domain checks them: storage.CheckIDs).
type Cells interface {
	// Append records ids as the version of c at ts. If a version at ts already
	// exists, ids are merged into it (existing ids first, duplicates dropped), so
	// two writers that share a timestamp both land: a plain put would keep only
	// the last. The merge covers versions written by Append; a version PutCells
	// wrote at the same timestamp may be replaced instead (offline jobs own their
	// timestamps). A malformed version at ts is reported and replaced.
	Append(ctx context.Context, c Cell, ts int64, ids []int64) error
	// Versions returns, for each column of row, its live versions with timestamp
	// <= maxTS, newest first, at most limit per column (limit <= 0: all).
	// Columns without versions are absent from the map. A malformed version is
	// reported and skipped, and does not count toward limit: the next valid
	// version takes its place.
	Versions(ctx context.Context, table, row string, columns []string, maxTS int64, limit int) (map[string][]storage.Version, error)
	// DeleteThrough deletes the versions of c with timestamp <= ts. Versions
	// written later survive, which is what makes read-then-delete safe.
	DeleteThrough(ctx context.Context, c Cell, ts int64) error

	// Push appends ids to the tail of the id queue in c (a single-version
	// cell), skipping ids already queued. A malformed queue is reported and
	// replaced by ids.
	Push(ctx context.Context, c Cell, ids []int64) error
	// Take atomically removes and returns up to n ids from the head of the
	// queue in c: concurrent takers never get the same id. n <= 0 takes nothing.
	// A malformed queue is reported, dropped (the next Push starts afresh) and
	// reads as empty.
	Take(ctx context.Context, c Cell, n int) ([]int64, error)

	// Similar returns the n highest-scored neighbours of article (the
	// SimilarRow row of article_similar), highest first, ties by lower id. A
	// malformed score, or a column naming no article, is reported and that
	// neighbour skipped.
	Similar(ctx context.Context, article int64, n int) ([]storage.Scored, error)
	// HasRow says whether row holds a live cell in a family of table (any
	// value, malformed or not; the sequence family aside): whether anything
	// was written there, where a read of its values may find none valid.
	HasRow(ctx context.Context, table, row string) (bool, error)
	// UserWeightsIn returns the newest UserFeatureCell of user for each of
	// channels that has one, in one round trip. A malformed one is reported and
	// absent.
	UserWeightsIn(ctx context.Context, user string, channels []int32) (map[int32][]float64, error)
	// ArticleVectors returns the newest ArticleFeatureCell of each of ids that
	// has one, in one round trip (or one per thousand ids). A malformed one is
	// reported and absent: the ranker treats that article as having no features.
	ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error)

	// PutCells writes every value as given. A value at the timestamp of an
	// existing version replaces it. Every cell is checked against Schema before
	// anything is written; on a store error, some cells may have been written.
	PutCells(ctx context.Context, cells []CellValue) error
	// Bootstrap creates the tables of Schema; running it twice is harmless.
	Bootstrap(ctx context.Context) error

	// PeekQueue returns the id queue in c, head first, without taking any or
	// writing anything: a malformed queue is reported, reads as empty and is
	// left as it is.
	PeekQueue(ctx context.Context, c Cell) ([]int64, error)
}

// SortedSets is the Redis role of an engine: sorted sets of article ids, keyed
// by the key builders of this package. A member that is not an article id
// (storage.ParseID) is reported through the engine's BadCells and removed from
// its set by the read that finds it, without costing the valid members read
// with it their place.
type SortedSets interface {
	// Add sets the scores of members in key. A ttl > 0 (re)sets the key's
	// expiry in the same round trip.
	Add(ctx context.Context, key string, members []storage.Scored, ttl time.Duration) error
	// PopMax atomically removes and returns up to n members with the highest
	// scores, highest first: concurrent poppers never get the same member. n <=
	// 0 pops nothing. Malformed members popped on the way do not count toward n.
	PopMax(ctx context.Context, key string, n int) ([]int64, error)
	// Top returns up to n members with the highest scores, highest first,
	// without removing them (malformed members aside, which do not count toward
	// n).
	Top(ctx context.Context, key string, n int) ([]storage.Scored, error)
	// Delete removes keys.
	Delete(ctx context.Context, keys ...string) error
	// ClaimUnseen atomically adds to key the ids neither key nor also (when
	// not empty) holds and returns them in input order, (re)setting key's
	// expiry to ttl. When key or also lacks the marker SeedSeen puts (member 0),
	// it changes nothing and seeded is false: the set is not a copy of history.
	// With anySet it claims all the same, against what the sets hold (absent
	// ones hold nothing), and leaves them unmarked; seeded is then true.
	ClaimUnseen(ctx context.Context, key, also string, ids []int64, ttl time.Duration, anySet bool) (claimed []int64, seeded bool, err error)
	// SeedSeen adds ids and the marker to key, records last as key's
	// stamp (the time of the newest refresh its channel served) unless the
	// stamp is later already, and (re)sets the expiry of both to ttl.
	SeedSeen(ctx context.Context, key string, ids []int64, last int64, ttl time.Duration) error
	// PopUnseen is a refresh's cache hit in one atomic call. With at > 0 it
	// first starts the refresh at at: when seen's stamp is at or after at,
	// it changes nothing and reports Older (a history page); otherwise at
	// becomes the stamp, expiring with seen. Then it pops members of queue,
	// best first, until n of them are ids neither seen nor also (when not
	// empty) holds, or the queue is empty, adding those to seen and
	// (re)setting its expiry to ttl: popped ids the sets hold are dropped,
	// as they were served already by another path. With at = 0 it only
	// pops (a refresh that is under way). When seen or also lacks the
	// marker, or (with at > 0) seen has no stamp, it changes nothing and
	// Seeded is false.
	PopUnseen(ctx context.Context, queue, seen, also string, at int64, n int, ttl time.Duration) (Popped, error)
	// AddAbove atomically scores ids above every member of key, the first
	// highest (the highest score plus len(ids), down to plus 1; an empty key
	// counts as highest 0), moving those key holds. A ttl > 0 (re)sets the
	// key's expiry in the same call.
	AddAbove(ctx context.Context, key string, ids []int64, ttl time.Duration) error

	// IncrScores adds each increment to its member's score in key and
	// returns how many it applied, skipping those at or below the offset that
	// the hash applied (partition → newest offset applied) remembers for
	// their partition when the call starts; it records the newest offset
	// applied per partition, atomically with the scores.
	IncrScores(ctx context.Context, key, applied string, incrs []MarkedScore) (int, error)
	// Decay atomically multiplies every score of key by
	// 2^(-(now-last)/halfLife), last being the time in the string stamp,
	// removes the members whose score falls below floor and stamps now. A key
	// never stamped is only stamped; a now not after the stamp changes
	// nothing, so of racing callers the first decays and the others find
	// nothing left to decay.
	Decay(ctx context.Context, key, stamp string, now time.Time, halfLife time.Duration, floor float64) error

	// IncrCounts adds each reader's counts to their counters in the hash key
	// (CountersKey) and returns how many it applied, skipping by applied as
	// IncrScores does, atomically with the counters.
	IncrCounts(ctx context.Context, key, applied string, counts []MarkedCounts) (int, error)
	// Counts returns every reader's counters in the hash key, reading it in
	// bounded pieces (the hash of a strategy holds every reader it served). A
	// field outside the layout, or a counter that is not an integer, is
	// reported and skipped.
	Counts(ctx context.Context, key string) (map[string]storage.UserCounts, error)
	// AddNames adds names to the set key (names, not article ids).
	AddNames(ctx context.Context, key string, names []string) error
	// Names returns the names in the set key, in no particular order.
	Names(ctx context.Context, key string) ([]string, error)

	// PeekSet returns up to n members of key with the highest scores, in the
	// order PopMax would pop them (n <= 0: none), with how many members key
	// holds and its time to live, in one consistent read that changes
	// nothing: a malformed member is reported and skipped (it counts toward
	// n) but not removed, and the expiry stays as it was.
	PeekSet(ctx context.Context, key string, n int) (SetPeek, error)
	// PeekSeen returns what the seen set key (ClaimUnseen, SeedSeen) holds:
	// whether it has the marker, every id besides it (in no particular
	// order) and its time to live, in one consistent read that changes
	// nothing. A malformed member is reported and skipped, not removed.
	PeekSeen(ctx context.Context, key string) (SeenPeek, error)
}

// Popped is what PopUnseen did.
type Popped struct {
	Seeded bool
	// Older says at was not after the stamp, Last: nothing was popped.
	Older bool
	// Last is seen's stamp before the call (with at > 0).
	Last int64
	// IDs are the ids claimed, best first; Dry says the queue ran out
	// before n of them.
	IDs []int64
	Dry bool
}

// MarkedScore adds By to member ID's score, for the action at Mark.
type MarkedScore struct {
	storage.Mark
	ID int64
	By float64
}

// MarkedCounts adds to User's counters, for the action at Mark.
type MarkedCounts struct {
	storage.Mark
	User string
	storage.UserCounts
}
