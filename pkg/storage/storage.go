// Package storage declares the stores the services read and write, in the words
// of the feed (DESIGN.md §3): a reader's history, their wait queue, recall sets,
// the channels' hot and new lists, served claims, features, similarity and the
// bulk loader; and the codec of the values they hold.
//
// How one engine lays these out — tables, families, qualifiers, row keys, Redis
// keys, the sequence cells that merge same-stamp writes — lives in
// storage/layout, shared by the HBase, embedded and Redis adapters and by
// nothing else: no service and no offline job names a table.
//
// Each port is implemented by every backend: HBase (through its Thrift2
// gateway) and Redis in production, and the embedded engine for development. The
// contract suite in storagetest pins the behaviour they share.
package storage

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
)

// Version is one timestamped id list: one refresh's served ids, one recall run.
type Version struct {
	// Timestamp is in milliseconds (for history, the request's time_stamp).
	Timestamp int64
	IDs       []int64
}

// Scored is an article id with a score: a similarity, a publish time, a click count
// or a rank.
type Scored struct {
	ID    int64
	Score float64
}

// History is what each reader was served, per channel (history_recommend): the
// source of truth for paging back and for never serving an article twice.
type History interface {
	// Newest is the time stamp of the reader's newest refresh of channel, 0 if
	// there is none.
	Newest(ctx context.Context, user string, channel int32) (int64, error)
	// Page returns up to two refreshes with time stamp <= at, newest first: the
	// page to show and the stamp to page back with.
	Page(ctx context.Context, user string, channel int32, at int64) ([]Version, error)
	// Seen is every id served to the reader in any of channels.
	Seen(ctx context.Context, user string, channels []int32) (map[int64]bool, error)
	// Record stores ids as the refresh at ts. A refresh already recorded at ts is
	// merged with (its ids first, duplicates dropped), so two refreshes that
	// share a time stamp both land: a plain put would keep only the last.
	Record(ctx context.Context, user string, channel int32, ts int64, ids []int64) error
}

// WaitQueue is tier 2 of a reader's cache for a channel (wait_recommend): ranked
// ids not yet served, in order.
type WaitQueue interface {
	// Push appends ids to the tail, skipping ids already queued.
	Push(ctx context.Context, user string, channel int32, ids []int64) error
	// Take atomically removes and returns up to n ids from the head: concurrent
	// takers never get the same id. n <= 0 takes nothing (the original's
	// article_num = 0 emptied the cache).
	Take(ctx context.Context, user string, channel int32, n int) ([]int64, error)
}

// RecallSets are the candidates offline and online jobs leave for a reader
// (cb_recall, sources 100–102); each run adds a version.
type RecallSets interface {
	// Read returns, for each of sources that has any, its runs for the reader's
	// channel, newest first.
	Read(ctx context.Context, user string, channel int32, sources []feed.Source) (map[feed.Source][]Version, error)
	// Consume deletes the runs of source with timestamp <= through. Runs written
	// later survive, which is what makes read-then-consume safe (the original
	// deleted everything after reading, losing runs written in between).
	Consume(ctx context.Context, user string, channel int32, source feed.Source, through int64) error
}

// Recalled is what recall already offered each reader (history_recall), so a
// build does not offer it again.
type Recalled interface {
	// Recalled returns the runs recorded for the reader in each of channels that
	// has any, newest first.
	Recalled(ctx context.Context, user string, channels []int32) (map[int32][]Version, error)
}

// Similarity holds each article's similar articles with their scores.
type Similarity interface {
	// Similar returns the n highest-scored neighbours of article, highest
	// first. A known article without neighbours (alone in its channel) has
	// none; an article the store holds nothing of (no build wrote its
	// features or neighbours: a typo, or an article newer than the build) is
	// ErrUnknownArticle, so that a caller can tell the two apart.
	Similar(ctx context.Context, article int64, n int) ([]Scored, error)
}

// ErrUnknownArticle is returned for an article the store holds nothing of.
var ErrUnknownArticle = errors.New("unknown article")

// Features holds the CTR features of readers and articles.
type Features interface {
	// UserWeights returns a reader's interest weights for each of channels that
	// has them, in one round trip: ranking the all-channels feed needs the
	// weights of every candidate's own channel.
	UserWeights(ctx context.Context, user string, channels []int32) (map[int32][]float64, error)
	// ArticleVectors returns the feature vectors of ids that have one, in one
	// round trip; ids without features are absent from the map.
	ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error)
}

// Record is one value the bulk Loader writes: an ArticleVector, Neighbours,
// UserWeights, a RecallRun or a RecalledRun.
type Record interface{ record() }

// ArticleVector is an article's 111 CTR features.
type ArticleVector struct {
	Article int64
	Vector  []float64
}

// Neighbours are an article's similar articles with their scores.
type Neighbours struct {
	Article int64
	Similar []Scored
}

// UserWeights are a reader's interest weights in a channel.
type UserWeights struct {
	User    string
	Channel int32
	Weights []float64
}

// RecallRun is one run of an offline or online recall source for a reader.
type RecallRun struct {
	User      string
	Channel   int32
	Source    feed.Source
	Timestamp int64
	IDs       []int64
}

// RecalledRun records what a recall run offered a reader (history_recall).
type RecalledRun struct {
	User      string
	Channel   int32
	Timestamp int64
	IDs       []int64
}

func (ArticleVector) record() {}
func (Neighbours) record()    {}
func (UserWeights) record()   {}
func (RecallRun) record()     {}
func (RecalledRun) record()   {}

// Loader writes many records in few round trips: the path of offline jobs, which
// one put at a time would take hours.
type Loader interface {
	// Load writes every record as given. A run at the timestamp of an existing
	// one replaces it: offline jobs own their timestamps, so they need no merge.
	// A malformed record fails the call before anything is written; on a store
	// error, some records may have been written.
	Load(ctx context.Context, records []Record) error
}

// Tables is the HBase role of a backend.
type Tables interface {
	History
	WaitQueue
	RecallSets
	Recalled
	Similarity
	Features
	Loader
	// Bootstrap creates what the tables need; running it twice is harmless.
	Bootstrap(ctx context.Context) error
}

// ChannelList names one of a channel's article lists.
type ChannelList int

// A channel's lists.
const (
	// NewList is the channel's newest articles, scored by publish time (recall
	// source 103).
	NewList ChannelList = iota
	// HotList is the channel's hottest articles, scored by interactions (recall
	// source 104).
	HotList
)

// ChannelLists are the channels' new and hot lists.
type ChannelLists interface {
	// Top returns up to n articles of channel's list, highest score first.
	Top(ctx context.Context, list ChannelList, channel int32, n int) ([]Scored, error)
	// Replace makes channel's list hold exactly articles.
	Replace(ctx context.Context, list ChannelList, channel int32, articles []Scored) error
}

// Tier1 is tier 1 of a reader's cache for a channel: ranked, not yet served ids.
type Tier1 interface {
	// Pop atomically removes and returns up to n ids, best first: concurrent
	// poppers never get the same id. n <= 0 pops nothing.
	Pop(ctx context.Context, user string, channel int32, n int) ([]int64, error)
	// Store ranks ids (best first) in the tier, re-ranking any it already holds,
	// and (re)sets the tier's expiry to ttl in the same round trip.
	Store(ctx context.Context, user string, channel int32, ranked []int64, ttl time.Duration) error
	// Boost puts ids ahead of every id the tier holds, in the given order,
	// and (re)sets the tier's expiry to ttl, atomically: what a reader just
	// clicked makes their next page without waiting for the queue to drain
	// (DESIGN §8). Ids the tier holds move ahead; a repeated id keeps its
	// first place; ids must be positive.
	Boost(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) error
	// TakeUnseen is a refresh's cache hit in one atomic step (DESIGN §4): when at
	// is after the reader's newest refresh of channel it starts the refresh
	// at at, then pops up to n ids from their tier 1, best first, claims
	// them as Claim does and returns those it claimed; ids popped that the
	// claim refuses are dropped from the tier (another path served them).
	// When at is not after the newest refresh it changes nothing and the
	// answer is Older: a history page. at = 0 pops and claims for a
	// refresh already started. ErrUnseeded means nothing changed: Seed both
	// channels' sets first. The reader's set expires ttl after the call.
	TakeUnseen(ctx context.Context, user string, channel int32, at int64, n int, ttl time.Duration) (Taken, error)
}

// ErrUnseeded is returned by a claim when the reader's seen sets are not a copy
// of their history (never seeded, expired, or lost with a Redis restart): the
// caller seeds them from History and claims again.
var ErrUnseeded = errors.New("seen set not seeded from history")

// ServedClaims hold what each reader was served, per channel, where one atomic
// claim can check and record it: the serve-time guard of DESIGN §4 "no
// repeats". History is the source of truth; the sets are a copy seeded from it,
// so losing them costs a history read, never a repeat.
type ServedClaims interface {
	// Claim records ids as served to the reader in channel and returns those
	// not served before in channel nor, for a channel other than 0, in channel
	// 0, in input order. It is atomic: of concurrent claims of one id, exactly
	// one gets it back. The reader's set expires ttl after the last claim.
	// ErrUnseeded means nothing was claimed: Seed both channels' sets first.
	Claim(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) ([]int64, error)
	// ClaimProvisional is Claim for sets that may not be seeded (history
	// could not be read to seed them): it claims against what the sets hold,
	// atomically as Claim, and leaves them as seeded or not as they were; a
	// later Seed adds history to what it claimed. The caller has filtered ids
	// by history, or is adding what was served already (the served log's
	// entries, a fallback's ids once the sets answer again).
	ClaimProvisional(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) ([]int64, error)
	// Seed adds seen (the reader's history of channel) to their set for channel
	// and marks it seeded, with last, the time stamp of their newest refresh
	// of channel (0: none), unless the set knows a later one.
	Seed(ctx context.Context, user string, channel int32, seen []int64, last int64, ttl time.Duration) error
}

// Taken is what TakeUnseen did for one refresh.
type Taken struct {
	// Older says the request's time stamp is not after Last: a history page,
	// nothing taken.
	Older bool
	// Last is the time stamp of the reader's newest refresh of the channel
	// before this one, 0 when there is none (for at > 0).
	Last int64
	// IDs are the ids claimed for the refresh, best first.
	IDs []int64
	// Dry says tier 1 ran out before n ids were claimed.
	Dry bool
}

// Sets is the Redis role of a backend.
type Sets interface {
	ChannelLists
	Tier1
	ServedClaims
	Interactions
}

// Mark is where a counted action sits in the action log: its log (topic),
// partition and offset. Offsets grow within a partition, so a store that
// remembers, per key and partition, the newest offset it applied can skip an
// action delivered again (a nearline consumer restarted mid-batch): counts
// stay exact under at-least-once delivery. Logs count apart: the offsets of
// two topics feeding one hot list say nothing about each other.
type Mark struct {
	Log       string
	Partition int32
	Offset    int64
}

// Stream names the partition of m's log, as stores key what they applied of
// it: "topic/partition", or the partition alone for an unnamed log.
func (m Mark) Stream() string {
	p := strconv.FormatInt(int64(m.Partition), 10)
	if m.Log == "" {
		return p
	}
	return m.Log + "/" + p
}

// Heat is one interaction adding to an article's place in a channel's hot
// list.
type Heat struct {
	Mark
	Channel int32
	Article int64
	// Weight is what the interaction adds (1 for a click, collect or share).
	Weight float64
}

// Exposure is one action line's contribution to a reader's A/B counters
// under the strategy named in its track string.
type Exposure struct {
	Mark
	Strategy string
	User     string
	// Exposures is the number of articles the line says were shown; Clicks
	// the number of clicks it reports (0 or 1).
	Exposures int64
	Clicks    int64
}

// UserCounts are one reader's counters under one strategy.
type UserCounts struct {
	Exposures int64
	Clicks    int64
}

// Interactions are readers' actions counted where the feed and the A/B
// readout read them (DESIGN §8, §9). Every write carries the Mark of its
// action and applies only actions newer than what the key has applied for
// that partition, atomically with that record: a batch applied twice counts
// once.
type Interactions interface {
	// AddHeat adds each heat's weight to its channel's hot list and returns
	// how many were new (not skipped as applied before). Heats of one
	// partition come in offset order; heats sharing a Mark come in one call.
	// An article id or weight that is not positive (or a weight not finite),
	// or a negative partition or offset, fails the call before anything is
	// written. On a store error some channels may be written: applying the
	// batch again is safe.
	AddHeat(ctx context.Context, heats []Heat) (applied int, err error)
	// Cool multiplies channel's hot list scores by 2^(-elapsed/halfLife),
	// elapsed being the time since the list was last cooled (a list never
	// cooled is only stamped): scores stay decayed interaction counts, and
	// callers that race, or cool again after a restart, decay the list once
	// per elapsed time (a now not after the last cooling changes nothing).
	// Articles whose score falls below 0.001 leave the list. halfLife must be
	// positive.
	Cool(ctx context.Context, channel int32, now time.Time, halfLife time.Duration) error
	// AddExposures adds to the readers' counters and returns how many were
	// new. Exposures of one partition come in offset order; exposures sharing
	// a Mark come in one call. A strategy name empty or longer than 200
	// bytes, an empty user, negative counts, or a negative partition or
	// offset fails the call before anything is written. On a store error
	// some strategies may be written: applying the batch again is safe.
	AddExposures(ctx context.Context, exposures []Exposure) (applied int, err error)
	// Counters returns every reader's counters, per strategy; a strategy
	// without readers is absent. It reads every reader of every strategy:
	// the A/B readout's scan, not a per-request read.
	Counters(ctx context.Context) (map[string]map[string]UserCounts, error)
}
