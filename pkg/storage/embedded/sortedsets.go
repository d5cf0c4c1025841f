package embedded

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// sortedSets is the Redis role of a DB: layout.SortedSets in bbolt buckets.
type sortedSets struct{ db *DB }

var _ layout.SortedSets = (*sortedSets)(nil)

// sweepBatch is how many expired keys one Add deletes at most besides its own:
// enough to keep up with keys expiring, small enough not to stall the writer.
const sweepBatch = 32

// ttlMillis is ttl in whole milliseconds, at least 1: the resolution of PEXPIRE,
// which the Redis backend uses for the same ttl.
func ttlMillis(ttl time.Duration) int64 { return max(ttl.Milliseconds(), 1) }

// openSet returns key's bucket if the key exists and has not expired. In a write
// transaction an expired key is deleted on the way.
func openSet(tx *bolt.Tx, key string, nowMs int64) (*bolt.Bucket, error) {
	sets := tx.Bucket(bucketSets)
	if sets == nil {
		return nil, fmt.Errorf("sorted sets: %w", ErrNotBootstrapped)
	}
	b := sets.Bucket([]byte(key))
	if b == nil {
		return nil, nil
	}
	exp, ok := expiry(b)
	if !ok || nowMs <= exp {
		return b, nil
	}
	if tx.Writable() {
		if err := deleteSet(tx, key); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// expiry is key's expiry in Unix ms, if it has one.
func expiry(b *bolt.Bucket) (int64, bool) {
	v := b.Get(expiryKey)
	if v == nil {
		return 0, false
	}
	return decodeInt64(v)
}

// deleteSet deletes key and its entry in the expiry index; an absent key is fine.
func deleteSet(tx *bolt.Tx, key string) error {
	sets := tx.Bucket(bucketSets)
	b := sets.Bucket([]byte(key))
	if b == nil {
		return nil
	}
	if exp, ok := expiry(b); ok {
		if err := tx.Bucket(bucketExpiry).Delete(expiryIndexKey(exp, key)); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	if err := sets.DeleteBucket([]byte(key)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// setExpiry (re)sets key's expiry at nowMs to exp and its entry in the
// expiry index. An expiry that would move later by less than 1/expirySlack
// of the key's remaining life stays as it is: a reader's sets are touched on
// every refresh, and rewriting their expiry each time costs two writes to
// the index, a tree every key shares, for a key that then lives a few
// seconds in half an hour less than asked.
func setExpiry(tx *bolt.Tx, b *bolt.Bucket, key string, nowMs, exp int64) error {
	index := tx.Bucket(bucketExpiry)
	if old, ok := expiry(b); ok {
		if old <= exp && exp-old <= (exp-nowMs)/expirySlack {
			return nil
		}
		if err := index.Delete(expiryIndexKey(old, key)); err != nil {
			return err
		}
	}
	if err := b.Put(expiryKey, encodeInt64(exp)); err != nil {
		return err
	}
	return index.Put(expiryIndexKey(exp, key), nil)
}

// expirySlack: see setExpiry.
const expirySlack = 64

// sweep deletes up to sweepBatch keys that expired before nowMs, soonest first.
func sweep(tx *bolt.Tx, nowMs int64) error {
	var doomed []string
	c := tx.Bucket(bucketExpiry).Cursor()
	for k, _ := c.First(); k != nil && len(doomed) < sweepBatch; k, _ = c.Next() {
		exp, key := parseExpiryIndexKey(k)
		if nowMs <= exp {
			break
		}
		doomed = append(doomed, key)
	}
	for _, key := range doomed {
		if err := deleteSet(tx, key); err != nil {
			return err
		}
	}
	return nil
}

func checkSetKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty sorted-set key", ErrInvalidKey)
	}
	return nil
}

// Add sets the scores of members in key and, for ttl > 0, its expiry, in one
// transaction.
func (s *sortedSets) Add(ctx context.Context, key string, members []storage.Scored, ttl time.Duration) error {
	for _, m := range members {
		if math.IsNaN(m.Score) {
			return fmt.Errorf("add to %s: member %d has score NaN", key, m.ID)
		}
	}
	return s.add(ctx, key, ttl, func(*bolt.Bucket) []storage.Scored { return members })
}

// AddAbove scores ids above every member of key, reading the highest score
// and adding in one transaction.
func (s *sortedSets) AddAbove(ctx context.Context, key string, ids []int64, ttl time.Duration) error {
	return s.add(ctx, key, ttl, func(b *bolt.Bucket) []storage.Scored {
		base := float64(len(ids))
		if b != nil {
			if k, _ := b.Cursor().Last(); k != nil {
				if top, _, ok := parseScoreKey(k); ok {
					base += top
				}
			}
		}
		members := make([]storage.Scored, len(ids))
		for i, id := range ids {
			members[i] = storage.Scored{ID: id, Score: base - float64(i)}
		}
		return members
	})
}

// add sets the scores members returns (given key's bucket, nil if absent) in
// key and, for ttl > 0, its expiry, in one transaction.
func (s *sortedSets) add(ctx context.Context, key string, ttl time.Duration, members func(*bolt.Bucket) []storage.Scored) error {
	if err := checkSetKey(key); err != nil {
		return err
	}
	return s.db.update(ctx, func(tx *bolt.Tx) error {
		nowMs := s.db.now().UnixMilli()
		b, err := openSet(tx, key, nowMs)
		if err != nil {
			return err
		}
		ms := members(b)
		if b == nil {
			if len(ms) == 0 {
				return sweep(tx, nowMs) // Redis keeps no empty sets, nor expiries of absent keys.
			}
			if b, err = tx.Bucket(bucketSets).CreateBucket([]byte(key)); err != nil {
				return fmt.Errorf("add to %s: %w", key, err)
			}
		}
		for _, m := range ms {
			if err := putMember(b, m); err != nil {
				return fmt.Errorf("add to %s: %w", key, err)
			}
		}
		if ttl > 0 {
			if err := setExpiry(tx, b, key, nowMs, nowMs+ttlMillis(ttl)); err != nil {
				return fmt.Errorf("expire %s: %w", key, err)
			}
		}
		return sweep(tx, nowMs)
	})
}

// putMember sets m's score, moving its entry in the score order.
func putMember(b *bolt.Bucket, m storage.Scored) error {
	return putName(b, member(m.ID), m.Score)
}

// putName sets the score of the member spelt name.
func putName(b *bolt.Bucket, name []byte, score float64) error {
	old, ok, err := scoreOf(b, name)
	if err != nil {
		return err
	}
	if ok {
		if err := b.Delete(scoreKey(old, name)); err != nil {
			return err
		}
	}
	if err := b.Put(memberKey(name), encodeInt64(int64(math.Float64bits(score)))); err != nil {
		return err
	}
	return b.Put(scoreKey(score, name), nil)
}

// scoreOf is the score of the member spelt name, if key holds it.
func scoreOf(b *bolt.Bucket, name []byte) (float64, bool, error) {
	v := b.Get(memberKey(name))
	if v == nil {
		return 0, false, nil
	}
	bits, ok := decodeInt64(v)
	if !ok {
		return 0, false, fmt.Errorf("member %s: %w: score is %d bytes", name, storage.ErrMalformed, len(v))
	}
	return math.Float64frombits(uint64(bits)), true, nil
}

// highest walks key's members from the highest score down, calling fn with
// each score key, until fn has counted n of them.
func highest(b *bolt.Bucket, n int, fn func(k []byte) (counted bool)) {
	c := b.Cursor()
	for k, _ := c.Last(); len(k) > 0 && k[0] == tagScore && n > 0; k, _ = c.Prev() {
		if fn(k) {
			n--
		}
	}
}

// entry reads the score key k of key. A member that is not an article id is
// reported and ok is false: the caller drops it.
func (s *sortedSets) entry(key string, k []byte) (score float64, id int64, ok bool) {
	score, name, ok := parseScoreKey(k)
	if !ok {
		s.db.bad.ReportMember(key, string(k), fmt.Errorf("%w: index entry of %d bytes", storage.ErrMalformed, len(k)))
		return 0, 0, false
	}
	id, ok = s.db.bad.Member(key, string(name))
	return score, id, ok
}

// dropEntries deletes the members of the score keys doomed from key's bucket,
// and key with its last member, as Redis does.
func dropEntries(tx *bolt.Tx, b *bolt.Bucket, key string, doomed [][]byte) error {
	for _, k := range doomed {
		err := b.Delete(k)
		if _, name, ok := parseScoreKey(k); ok {
			err = errors.Join(err, b.Delete(memberKey(name)))
		}
		if err != nil {
			return fmt.Errorf("remove from %s: %w", key, err)
		}
	}
	if k, _ := b.Cursor().Seek([]byte{tagMember}); k == nil || k[0] != tagMember {
		return deleteSet(tx, key) // Redis deletes a set with its last member.
	}
	return nil
}

// PopMax removes and returns up to n members with the highest scores, highest
// first, in one transaction: concurrent poppers never share a member.
func (s *sortedSets) PopMax(ctx context.Context, key string, n int) ([]int64, error) {
	if err := checkSetKey(key); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	var ids []int64
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		ids = nil
		b, err := openSet(tx, key, s.db.now().UnixMilli())
		if b == nil || err != nil {
			return err
		}
		// Malformed members are popped with the rest, without counting.
		var doomed [][]byte
		highest(b, n, func(k []byte) bool {
			doomed = append(doomed, clone(k))
			_, id, ok := s.entry(key, k)
			if ok {
				ids = append(ids, id)
			}
			return ok
		})
		return dropEntries(tx, b, key, doomed)
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Top returns up to n members with the highest scores, highest first.
func (s *sortedSets) Top(ctx context.Context, key string, n int) ([]storage.Scored, error) {
	if err := checkSetKey(key); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	var (
		top []storage.Scored
		bad [][]byte
	)
	err := s.db.view(ctx, func(tx *bolt.Tx) error {
		top, bad = nil, nil
		b, err := openSet(tx, key, s.db.now().UnixMilli())
		if b == nil || err != nil {
			return err
		}
		highest(b, n, func(k []byte) bool {
			score, id, ok := s.entry(key, k)
			if ok {
				top = append(top, storage.Scored{ID: id, Score: score})
			} else {
				bad = append(bad, clone(k))
			}
			return ok
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		// Dropping the malformed members is the reader's chore, not its
		// failure: the next read that finds one tries again.
		_ = s.db.update(ctx, func(tx *bolt.Tx) error {
			b, err := openSet(tx, key, s.db.now().UnixMilli())
			if b == nil || err != nil {
				return err
			}
			return dropEntries(tx, b, key, bad) // deleting an absent key is a no-op
		})
	}
	return top, nil
}

// Delete removes keys; absent ones are fine.
func (s *sortedSets) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := checkSetKey(key); err != nil {
			return err
		}
	}
	if len(keys) == 0 {
		return nil
	}
	return s.db.update(ctx, func(tx *bolt.Tx) error {
		for _, key := range keys {
			if err := deleteSet(tx, key); err != nil {
				return err
			}
		}
		return nil
	})
}
