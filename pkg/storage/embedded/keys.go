package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The sorted sets live outside the table namespace: no table of the schema can
// start with a NUL byte.
var (
	bucketSets   = []byte("\x00zsets")
	bucketExpiry = []byte("\x00zexpiry")
	// bucketHashes holds a nested bucket per Redis hash (field → value) and
	// per set of names (name → nothing); bucketStrings a value per key.
	bucketHashes  = []byte("\x00hashes")
	bucketStrings = []byte("\x00strings")
)

const tsLen = 8

// cellPrefix is the key prefix of every version of (row, column).
func cellPrefix(row, column string) []byte {
	p := make([]byte, 0, len(row)+len(column)+2+tsLen)
	p = append(p, row...)
	p = append(p, 0)
	p = append(p, column...)
	return append(p, 0)
}

// rowPrefix is the key prefix of every cell of row.
func rowPrefix(row string) []byte { return append([]byte(row), 0) }

// versionKey is the key of the version at ts of the cell with prefix. The
// timestamp is stored so that bytes order newest first: the sign bit flipped makes
// signed order unsigned, the complement reverses it.
func versionKey(prefix []byte, ts int64) []byte {
	k := make([]byte, len(prefix), len(prefix)+tsLen)
	copy(k, prefix)
	return binary.BigEndian.AppendUint64(k, ^(uint64(ts) ^ 1<<63))
}

// keyTimestamp is the timestamp of a version key.
func keyTimestamp(k []byte) int64 {
	return int64(^binary.BigEndian.Uint64(k[len(k)-tsLen:]) ^ 1<<63)
}

// keyColumn is the column of a version key that starts with rowPrefix.
func keyColumn(rowPrefix, k []byte) (string, bool) {
	if len(k) < len(rowPrefix)+1+tsLen || k[len(k)-tsLen-1] != 0 {
		return "", false
	}
	return string(k[len(rowPrefix) : len(k)-tsLen-1]), true
}

// checkKeyPart refuses what the key layout cannot hold unambiguously.
func checkKeyPart(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidKey, what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s %q holds a NUL byte", ErrInvalidKey, what, s)
	}
	return nil
}

// Sorted-set entries inside a key's bucket.
const (
	tagExpiry = 'e'
	tagMember = 'm'
	tagScore  = 's'
)

var expiryKey = []byte{tagExpiry}

// member is the Redis spelling of an id: its decimal string.
func member(id int64) []byte { return strconv.AppendInt(nil, id, 10) }

func memberKey(m []byte) []byte { return append([]byte{tagMember}, m...) }

// scoreKey orders members by score, then by member bytes, as a Redis sorted set
// does.
func scoreKey(score float64, m []byte) []byte {
	k := make([]byte, 0, 1+8+len(m))
	k = append(k, tagScore)
	k = binary.BigEndian.AppendUint64(k, sortableScore(score))
	return append(k, m...)
}

// sortableScore maps a float64 to a uint64 whose order is the float's: positive
// numbers get the sign bit set, negative ones are complemented. -0 is 0, as in
// Redis.
func sortableScore(f float64) uint64 {
	if f == 0 {
		f = 0
	}
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

func unsortableScore(u uint64) float64 {
	if u>>63 == 1 {
		return math.Float64frombits(u &^ (1 << 63))
	}
	return math.Float64frombits(^u)
}

// parseScoreKey splits a scoreKey into score and member.
func parseScoreKey(k []byte) (float64, []byte, bool) {
	if len(k) < 1+8+1 || k[0] != tagScore {
		return 0, nil, false
	}
	return unsortableScore(binary.BigEndian.Uint64(k[1:9])), k[9:], true
}

// expiryIndexKey is the key of a sorted set in the expiry index: soonest first.
func expiryIndexKey(expiryMs int64, key string) []byte {
	k := make([]byte, 0, 8+len(key))
	k = binary.BigEndian.AppendUint64(k, uint64(expiryMs)^1<<63)
	return append(k, key...)
}

func parseExpiryIndexKey(k []byte) (int64, string) {
	return int64(binary.BigEndian.Uint64(k[:8]) ^ 1<<63), string(k[8:])
}

func encodeInt64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

func decodeInt64(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// clone copies a key or value out of the transaction's memory.
func clone(b []byte) []byte { return bytes.Clone(b) }
