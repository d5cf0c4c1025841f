package layout

import (
	"math"
	"strconv"
	"time"
)

// Cell addresses one column ("family:qualifier") of one row of one table.
type Cell struct {
	Table  string
	Row    string
	Column string
}

// CellValue is one encoded value to write at a cell version.
type CellValue struct {
	Cell
	// Timestamp is the version in milliseconds; 0 means the time of the write.
	Timestamp int64
	// Value is the encoded value (see the codec in package storage).
	Value []byte
}

// MaxTimestamp bounds a read of every version: HBase's LATEST_TIMESTAMP, the
// upper end of its time ranges.
const MaxTimestamp int64 = math.MaxInt64

// Table names, spelled once (the original mixed `reco:his`/`reco:hist` and
// `wait_recommmend` across modules).
const (
	TableHistoryRecommend = "history_recommend"
	TableWaitRecommend    = "wait_recommend"
	TableCBRecall         = "cb_recall"
	TableHistoryRecall    = "history_recall"
	TableArticleSimilar   = "article_similar"
	TableUserFeature      = "ctr_feature_user"
	TableArticleFeature   = "ctr_feature_article"
)

// FamilySeq is the family of the sequence cells that Cells backends without
// transactions (HBase) use to merge two writes at one timestamp: the version at
// ts of column c is guarded by the cell seq:{c}@{ts}, written at the same
// timestamp (so it expires with the version). Every Append reads both in one
// Get and writes back with check-and-put on the sequence, so of two racing
// merges one fails and retries instead of overwriting. It sits in its own family
// so readers of the data families never see it.
const FamilySeq = "seq"

// Family describes one column family.
type Family struct {
	Name        string
	MaxVersions int32
	// TTL is how long a cell lives past its timestamp; 0 means forever.
	TTL time.Duration
}

// TableSpec describes one table.
type TableSpec struct {
	Name     string
	Families []Family
}

const ninetyDays = 90 * 24 * time.Hour

// Schema is every table the suite uses (DESIGN.md §3), as Bootstrap creates it.
var Schema = []TableSpec{
	{TableHistoryRecommend, []Family{{"channel", 999999, ninetyDays}, {FamilySeq, 1, ninetyDays}}},
	{TableWaitRecommend, []Family{{"channel", 1, 0}}},
	{TableCBRecall, []Family{{"als", 999999, ninetyDays}, {"content", 999999, ninetyDays}, {"online", 999999, ninetyDays}, {FamilySeq, 1, ninetyDays}}},
	{TableHistoryRecall, []Family{{"channel", 999999, ninetyDays}, {FamilySeq, 1, ninetyDays}}},
	{TableArticleSimilar, []Family{{"similar", 1, 0}}},
	{TableUserFeature, []Family{{"channel", 1, 0}}},
	{TableArticleFeature, []Family{{"article", 1, 0}}},
}

// FamilyOf returns the spec of family in table, and whether it exists.
func FamilyOf(table, family string) (Family, bool) {
	for _, t := range Schema {
		if t.Name != table {
			continue
		}
		for _, f := range t.Families {
			if f.Name == family {
				return f, true
			}
		}
	}
	return Family{}, false
}

// HistoryCell is the cell of ids served to user in channel (history_recommend).
func HistoryCell(user string, channel int32) Cell {
	return Cell{TableHistoryRecommend, "reco:his:" + user, ChannelColumn(channel)}
}

// WaitCell is tier 2 of user's cache for channel (wait_recommend).
func WaitCell(user string, channel int32) Cell {
	return Cell{TableWaitRecommend, "reco:" + user, ChannelColumn(channel)}
}

// RecallRow is the row of user's recall candidates (cb_recall).
func RecallRow(user string) string { return "recall:user:" + user }

// RecallColumn is the cb_recall column of a source family (als, content, online)
// for channel.
func RecallColumn(source string, channel int32) string {
	return source + ":" + strconv.Itoa(int(channel))
}

// RecalledCell is the cell of ids already recalled for user in channel
// (history_recall), so recall does not offer them again.
func RecalledCell(user string, channel int32) Cell {
	return Cell{TableHistoryRecall, "reco:his:" + user, ChannelColumn(channel)}
}

// ChannelColumn is the `channel:{ch}` column.
func ChannelColumn(channel int32) string { return "channel:" + strconv.Itoa(int(channel)) }

// NewKey is the Redis sorted set of a channel's newest articles (recall source 103).
func NewKey(channel int32) string { return "ch:" + strconv.Itoa(int(channel)) + ":new" }

// HotKey is the Redis sorted set of a channel's hottest articles (recall source 104).
func HotKey(channel int32) string { return "ch:" + strconv.Itoa(int(channel)) + ":hot" }

// CacheKey is tier 1 of user's cache for channel: ranked, not yet served ids.
// The user id is a hash tag, as in SeenKey: a cache hit pops the queue and
// claims in the seen sets in one script, so they share a Redis Cluster slot.
func CacheKey(user string, channel int32) string {
	return "reco:{" + user + "}:" + strconv.Itoa(int(channel)) + ":art"
}

// SimilarRow is the article_similar row of article; its columns are
// `similar:{other_id}`, each holding a score.
func SimilarRow(article int64) string { return strconv.FormatInt(article, 10) }

// SimilarColumn is the article_similar column of neighbour other.
func SimilarColumn(other int64) string { return "similar:" + strconv.FormatInt(other, 10) }

// UserFeatureCell is the cell of user's interest weights for channel.
func UserFeatureCell(user string, channel int32) Cell {
	return Cell{TableUserFeature, user, ChannelColumn(channel)}
}

// ArticleFeatureCell is the cell of an article's feature vector.
func ArticleFeatureCell(article int64) Cell {
	id := strconv.FormatInt(article, 10)
	return Cell{TableArticleFeature, id, "article:" + id}
}

// SeenKey is the Redis set of every id served to user in channel: the copy of
// their history that the serve-time claim checks (DESIGN §4 "no repeats"). The
// user id is a hash tag ({…}) so that a channel's set and channel 0's, which one
// claim reads together, live in one Redis Cluster slot.
func SeenKey(user string, channel int32) string {
	return "reco:seen:{" + user + "}:" + strconv.Itoa(int(channel))
}

// Keys beside a Redis key that must change in one script with it live in its
// Redis Cluster slot: a key whose name holds a hash tag ({…}) is hashed by the
// tag's content only, so `{ch:3:hot}:applied` hashes as `ch:3:hot` does.

// HotAppliedKey is the Redis hash of what the hot list of channel has counted:
// per action-log partition (field, decimal), the newest offset applied (value,
// decimal). A redelivered action is at or below it and skipped.
func HotAppliedKey(channel int32) string { return "{" + HotKey(channel) + "}:applied" }

// HotCooledKey is the Redis string of when the hot list of channel was last
// cooled (Unix milliseconds): the next cooling decays by the time since.
func HotCooledKey(channel int32) string { return "{" + HotKey(channel) + "}:cooled" }

// StrategiesKey is the Redis set of every strategy name with counters, so the
// A/B readout finds them without a SCAN of the keyspace.
const StrategiesKey = "ab:strategies"

// CountersKey is the Redis hash of the per-reader counters of strategy: field
// FieldExposures+user and FieldClicks+user, each an integer. The hash tag
// starts with "ab:", so it is never empty, and the key and CountersAppliedKey
// share everything up to the first "}", so they share the tag (and the slot)
// even when the strategy itself holds braces.
func CountersKey(strategy string) string { return "{ab:" + strategy + "}:users" }

// CountersAppliedKey is the Redis hash of what CountersKey(strategy) has
// counted, laid out as HotAppliedKey.
func CountersAppliedKey(strategy string) string { return "{ab:" + strategy + "}:applied" }

// Prefixes of the fields of CountersKey, before the user id.
const (
	FieldExposures = "e:"
	FieldClicks    = "c:"
)
