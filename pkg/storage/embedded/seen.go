package embedded

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// seenMarker is the member a seeded seen set holds: article ids are positive.
var seenMarker = memberKey(member(0))

// openSeen opens the seen set key and the one also (when not empty), both
// seeded; seeded is false when either is absent or lacks the marker.
func openSeen(tx *bolt.Tx, key, also string, nowMs int64) (b, other *bolt.Bucket, seeded bool, err error) {
	b, err = openSet(tx, key, nowMs)
	if err != nil || b == nil || b.Get(seenMarker) == nil {
		return nil, nil, false, err
	}
	other = b
	if also != "" && also != key {
		if other, err = openSet(tx, also, nowMs); err != nil || other == nil || other.Get(seenMarker) == nil {
			return nil, nil, false, err
		}
	}
	return b, other, true, nil
}

// openAnySeen opens the seen set key, created if absent, and the one also
// (when not empty), seeded or not; an absent also is key's own bucket, which
// holds nothing of it.
func openAnySeen(tx *bolt.Tx, key, also string, nowMs int64) (b, other *bolt.Bucket, err error) {
	if b, err = openSet(tx, key, nowMs); err != nil {
		return nil, nil, err
	}
	if b == nil {
		if b, err = tx.Bucket(bucketSets).CreateBucket([]byte(key)); err != nil {
			return nil, nil, fmt.Errorf("claim in %s: %w", key, err)
		}
	}
	other = b
	if also != "" && also != key {
		o, err := openSet(tx, also, nowMs)
		if err != nil {
			return nil, nil, err
		}
		if o != nil {
			other = o
		}
	}
	return b, other, nil
}

// claimIn adds id to b unless b or other holds it, and says whether it did.
func claimIn(b, other *bolt.Bucket, id int64) (bool, error) {
	mk := memberKey(member(id))
	if b.Get(mk) != nil || other.Get(mk) != nil {
		return false, nil
	}
	return true, putMember(b, storage.Scored{ID: id})
}

// ClaimUnseen claims ids in key that neither key nor also holds, in one
// transaction; the members are sorted-set members with score 0.
func (s *sortedSets) ClaimUnseen(ctx context.Context, key, also string, ids []int64, ttl time.Duration, anySet bool) ([]int64, bool, error) {
	if err := checkSetKey(key); err != nil {
		return nil, false, err
	}
	var claimed []int64
	seeded := false
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		claimed = claimed[:0]
		nowMs := s.db.now().UnixMilli()
		var b, other *bolt.Bucket
		var err error
		if anySet {
			b, other, err = openAnySeen(tx, key, also, nowMs)
			seeded = true
		} else {
			b, other, seeded, err = openSeen(tx, key, also, nowMs)
		}
		if err != nil || !seeded {
			return err
		}
		for _, id := range ids {
			fresh, err := claimIn(b, other, id)
			if err != nil {
				return fmt.Errorf("claim in %s: %w", key, err)
			}
			if fresh {
				claimed = append(claimed, id)
			}
		}
		if err := setExpiry(tx, b, key, nowMs, nowMs+ttlMillis(ttl)); err != nil {
			return fmt.Errorf("expire %s: %w", key, err)
		}
		return sweep(tx, nowMs)
	})
	if err != nil {
		return nil, false, err
	}
	return claimed, seeded, nil
}

// stampKey holds a seen set's stamp in its bucket: below the score entries,
// which are read from the end.
var stampKey = []byte{'l'}

// SeedSeen adds ids and the marker to key, raises its stamp to last and sets
// its expiry, in one transaction.
func (s *sortedSets) SeedSeen(ctx context.Context, key string, ids []int64, last int64, ttl time.Duration) error {
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
		if old, ok := decodeInt64(b.Get(stampKey)); !ok || old < last {
			if err := b.Put(stampKey, encodeInt64(last)); err != nil {
				return fmt.Errorf("seed %s: %w", key, err)
			}
		}
		if err := setExpiry(tx, b, key, nowMs, nowMs+ttlMillis(ttl)); err != nil {
			return fmt.Errorf("expire %s: %w", key, err)
		}
		return sweep(tx, nowMs)
	})
}

// PopUnseen starts the refresh, pops and claims in one transaction.
func (s *sortedSets) PopUnseen(ctx context.Context, queue, seen, also string, at int64, n int, ttl time.Duration) (layout.Popped, error) {
	for _, k := range []string{queue, seen} {
		if err := checkSetKey(k); err != nil {
			return layout.Popped{}, err
		}
	}
	var p layout.Popped
	err := s.db.update(ctx, func(tx *bolt.Tx) error {
		p = layout.Popped{}
		nowMs := s.db.now().UnixMilli()
		b, other, ok, err := openSeen(tx, seen, also, nowMs)
		if err != nil || !ok {
			return err
		}
		if at > 0 {
			last, ok := decodeInt64(b.Get(stampKey))
			if !ok {
				return nil // a set seeded before stamps: seed it again
			}
			p.Seeded, p.Last = true, last
			if at <= last {
				p.Older = true
				return nil
			}
			if err := b.Put(stampKey, encodeInt64(at)); err != nil {
				return fmt.Errorf("stamp %s: %w", seen, err)
			}
		}
		p.Seeded = true
		q, err := openSet(tx, queue, nowMs)
		if err != nil {
			return err
		}
		p.Dry = q == nil
		for q != nil && len(p.IDs) < n {
			want := n - len(p.IDs)
			var doomed [][]byte
			highest(q, want, func(k []byte) bool {
				doomed = append(doomed, clone(k))
				return true
			})
			for _, k := range doomed {
				_, id, ok := s.entry(queue, k)
				if !ok {
					continue
				}
				fresh, err := claimIn(b, other, id)
				if err != nil {
					return fmt.Errorf("claim in %s: %w", seen, err)
				}
				if fresh {
					p.IDs = append(p.IDs, id)
				}
			}
			if err := dropEntries(tx, q, queue, doomed); err != nil {
				return err
			}
			if len(doomed) < want {
				p.Dry = true
				break
			}
			if q, err = openSet(tx, queue, nowMs); err != nil {
				return err
			}
			p.Dry = q == nil
		}
		if err := setExpiry(tx, b, seen, nowMs, nowMs+ttlMillis(ttl)); err != nil {
			return fmt.Errorf("expire %s: %w", seen, err)
		}
		return sweep(tx, nowMs)
	})
	if err != nil {
		return layout.Popped{}, err
	}
	return p, nil
}
