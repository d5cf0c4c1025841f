// Package storage declares the stores the services read and write (DESIGN.md §3),
// the schema the backends create, and the codec of the values they hold.
//
// Each interface is implemented by every backend: HBase (through its Thrift2
// gateway) and Redis in production, and the embedded engine for development. The
// contract suite in storagetest pins the behaviour they share.
package storage

import (
	"context"
	"time"
)

// Cell addresses one column ("family:qualifier") of one row of one table.
type Cell struct {
	Table  string
	Row    string
	Column string
}

// Version is one timestamped version of an id list.
type Version struct {
	// Timestamp is the cell timestamp in milliseconds (for history_recommend, the
	// request's time_stamp).
	Timestamp int64
	IDs       []int64
}

// Scored is an article id with a score: a similarity, a publish time, a click count
// or a rank.
type Scored struct {
	ID    int64
	Score float64
}

// Lists keeps id lists as timestamped versions of a cell: history_recommend,
// cb_recall and history_recall.
type Lists interface {
	// Append records ids as the version of c at ts. If a version at ts already
	// exists, ids are merged into it (existing ids first, duplicates dropped), so two
	// writers that share a timestamp both land: a plain put would keep only the last.
	// The merge covers versions written by Append; a version a Loader wrote at the
	// same timestamp may be replaced instead (offline jobs own their timestamps).
	Append(ctx context.Context, c Cell, ts int64, ids []int64) error
	// Versions returns, for each column of row, its live versions with timestamp
	// <= maxTS, newest first, at most limit per column (limit <= 0: all). Columns
	// without versions are absent from the map.
	Versions(ctx context.Context, table, row string, columns []string, maxTS int64, limit int) (map[string][]Version, error)
	// DeleteThrough deletes the versions of c with timestamp <= ts. Versions
	// written later survive, which is what makes read-then-delete safe.
	DeleteThrough(ctx context.Context, c Cell, ts int64) error
}

// Queue is an ordered id list in one cell: tier 2 of the cache (wait_recommend).
type Queue interface {
	// Push appends ids to the tail of the queue in c, skipping ids already queued.
	Push(ctx context.Context, c Cell, ids []int64) error
	// Take atomically removes and returns up to n ids from the head of the queue:
	// concurrent takers never get the same id. n <= 0 takes nothing (the
	// original's article_num = 0 emptied the cache).
	Take(ctx context.Context, c Cell, n int) ([]int64, error)
}

// Similarity holds each article's similar articles with their scores
// (article_similar).
type Similarity interface {
	// PutSimilar stores (or overwrites) the similarity scores of article's
	// neighbours.
	PutSimilar(ctx context.Context, article int64, neighbours []Scored) error
	// Similar returns the n highest-scored neighbours of article, highest first.
	Similar(ctx context.Context, article int64, n int) ([]Scored, error)
}

// Features holds the CTR features (ctr_feature_user, ctr_feature_article).
type Features interface {
	// PutUserWeights stores a user's interest weights for a channel.
	PutUserWeights(ctx context.Context, user string, channel int32, weights []float64) error
	// UserWeights returns a user's interest weights for a channel, or nil if there
	// are none.
	UserWeights(ctx context.Context, user string, channel int32) ([]float64, error)
	// UserWeightsIn returns a user's interest weights for each of channels that
	// has them, in one round trip: ranking the all-channels feed needs the
	// weights of every candidate's own channel.
	UserWeightsIn(ctx context.Context, user string, channels []int32) (map[int32][]float64, error)
	// PutArticleVectors stores article feature vectors, keyed by article id.
	PutArticleVectors(ctx context.Context, vectors map[int64][]float64) error
	// ArticleVectors returns the feature vectors of ids that have one, in one round
	// trip; ids without features are absent from the map.
	ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error)
}

// SortedSets is the Redis role: sorted sets of article ids (tier 1 of the cache and
// the hot and new lists).
type SortedSets interface {
	// Add sets the scores of members in key. A ttl > 0 (re)sets the key's expiry in
	// the same round trip.
	Add(ctx context.Context, key string, members []Scored, ttl time.Duration) error
	// AddNew adds the members key does not hold yet, leaving existing members
	// alone, and returns the ids it added, in input order. It is atomic: of
	// concurrent calls offering one member, exactly one gets it back. A ttl > 0
	// (re)sets the key's expiry.
	AddNew(ctx context.Context, key string, members []Scored, ttl time.Duration) ([]int64, error)
	// PopMax atomically removes and returns up to n members with the highest
	// scores, highest first: concurrent poppers never get the same member. n <= 0
	// pops nothing.
	PopMax(ctx context.Context, key string, n int) ([]int64, error)
	// Top returns up to n members with the highest scores, highest first, without
	// removing them.
	Top(ctx context.Context, key string, n int) ([]Scored, error)
	// Delete removes keys.
	Delete(ctx context.Context, keys ...string) error
}

// CellValue is one encoded value to write at a cell version.
type CellValue struct {
	Cell
	// Timestamp is the version in milliseconds; 0 means the time of the write.
	Timestamp int64
	// Value is the encoded value (see the codec in this package).
	Value []byte
}

// Loader writes many cells in few round trips: the path of offline jobs (recall
// sets, similarity, features), which one put at a time would take hours.
type Loader interface {
	// PutCells writes every value as given. A value at the timestamp of an
	// existing version replaces it: offline jobs own their timestamps, so they need
	// no merge. On error, some cells may have been written.
	PutCells(ctx context.Context, cells []CellValue) error
}

// Tables is the HBase role of a backend.
type Tables interface {
	Lists
	Queue
	Similarity
	Features
	Loader
	// Bootstrap creates the tables of Schema; running it twice is harmless.
	Bootstrap(ctx context.Context) error
}
