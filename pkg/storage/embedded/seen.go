package embedded

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// seenMarker is the member a seeded seen set holds: article ids are positive.
var seenMarker = memberKey(member(0))

// ClaimUnseen claims ids in key that neither key nor also holds, in one
// transaction; the members are sorted-set members with score 0.
func (s *sortedSets) ClaimUnseen(ctx context.Context, key, also string, ids []int64, ttl time.Duration) ([]int64, bool, error) {
	if err := checkSetKey(key); err != nil {
		return nil, false, err
	}
	var claimed []int64
	seeded := false
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		claimed, seeded = claimed[:0], false
		nowMs := s.db.now().UnixMilli()
		b, err := openSet(tx, key, nowMs)
		if err != nil || b == nil || b.Get(seenMarker) == nil {
			return err
		}
		other := b
		if also != "" && also != key {
			if other, err = openSet(tx, also, nowMs); err != nil || other == nil || other.Get(seenMarker) == nil {
				return err
			}
		}
		seeded = true
		for _, id := range ids {
			mk := memberKey(member(id))
			if b.Get(mk) != nil || other.Get(mk) != nil {
				continue
			}
			if err := putMember(b, storage.Scored{ID: id}); err != nil {
				return fmt.Errorf("claim in %s: %w", key, err)
			}
			claimed = append(claimed, id)
		}
		if err := setExpiry(tx, b, key, nowMs+ttlMillis(ttl)); err != nil {
			return fmt.Errorf("expire %s: %w", key, err)
		}
		return sweep(tx, nowMs)
	})
	if err != nil {
		return nil, false, err
	}
	return claimed, seeded, nil
}

// SeedSeen adds ids and the marker to key and sets its expiry, in one
// transaction.
func (s *sortedSets) SeedSeen(ctx context.Context, key string, ids []int64, ttl time.Duration) error {
	if err := checkSetKey(key); err != nil {
		return err
	}
	return s.db.update(ctx, func(tx *bolt.Tx) error {
		nowMs := s.db.now().UnixMilli()
		b, err := openSet(tx, key, nowMs)
		if err != nil {
			return err
		}
		if b == nil {
			if b, err = tx.Bucket(bucketSets).CreateBucket([]byte(key)); err != nil {
				return fmt.Errorf("seed %s: %w", key, err)
			}
		}
		for _, id := range append([]int64{0}, ids...) {
			if b.Get(memberKey(member(id))) == nil {
				if err := putMember(b, storage.Scored{ID: id}); err != nil {
					return fmt.Errorf("seed %s: %w", key, err)
				}
			}
		}
		if err := setExpiry(tx, b, key, nowMs+ttlMillis(ttl)); err != nil {
			return fmt.Errorf("expire %s: %w", key, err)
		}
		return sweep(tx, nowMs)
	})
}
