package embedded

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// The peeks of `reco admin inspect` run in read transactions: bbolt refuses a
// write there, so an expired key is not deleted, a malformed member not
// dropped and an expiry not moved by looking.

// PeekQueue reads the queue in c.
func (t *tables) PeekQueue(ctx context.Context, c layout.Cell) ([]int64, error) {
	r, err := resolveCell(c)
	if err != nil {
		return nil, err
	}
	var queue []int64
	err = t.db.view(ctx, func(tx *bolt.Tx) error {
		queue = nil
		b, err := bucket(tx, r.table)
		if err != nil {
			return err
		}
		if k, v := latest(b, r, t.db.now()); v != nil {
			queue, _ = t.db.bad.IDs(c, keyTimestamp(k), v) // a malformed queue reads as empty
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return queue, nil
}

// PeekSet reads the highest n members of key, its size and its expiry.
func (s *sortedSets) PeekSet(ctx context.Context, key string, n int) (layout.SetPeek, error) {
	var p layout.SetPeek
	err := s.peek(ctx, key, func(b *bolt.Bucket, nowMs int64) {
		highest(b, n, func(k []byte) bool {
			if score, id, ok := s.entry(key, k); ok {
				p.Top = append(p.Top, storage.Scored{ID: id, Score: score})
			}
			return true // a malformed member counts toward n
		})
		eachMember(b, func([]byte) { p.Size++ })
		p.TTL = timeToLive(b, nowMs)
	})
	return p, err
}

// PeekSeen reads the members of the seen set key and its expiry.
func (s *sortedSets) PeekSeen(ctx context.Context, key string) (layout.SeenPeek, error) {
	var p layout.SeenPeek
	err := s.peek(ctx, key, func(b *bolt.Bucket, nowMs int64) {
		p.Seeded = b.Get(seenMarker) != nil
		eachMember(b, func(name []byte) {
			if string(name) == "0" {
				return // the marker
			}
			if id, ok := s.db.bad.Member(key, string(name)); ok {
				p.IDs = append(p.IDs, id)
			}
		})
		p.TTL = timeToLive(b, nowMs)
	})
	return p, err
}

// peek calls read with key's bucket in a read transaction, unless the key is
// absent or expired.
func (s *sortedSets) peek(ctx context.Context, key string, read func(b *bolt.Bucket, nowMs int64)) error {
	if err := checkSetKey(key); err != nil {
		return err
	}
	return s.db.view(ctx, func(tx *bolt.Tx) error {
		nowMs := s.db.now().UnixMilli()
		b, err := openSet(tx, key, nowMs)
		if b == nil || err != nil {
			return err
		}
		read(b, nowMs)
		return nil
	})
}

// eachMember calls fn with the name of each member of key's bucket, in byte
// order.
func eachMember(b *bolt.Bucket, fn func(name []byte)) {
	c := b.Cursor()
	for k, _ := c.Seek([]byte{tagMember}); k != nil && k[0] == tagMember; k, _ = c.Next() {
		fn(k[1:])
	}
}

// timeToLive is what key's bucket has left to live at nowMs: 0 without an
// expiry.
func timeToLive(b *bolt.Bucket, nowMs int64) time.Duration {
	exp, ok := expiry(b)
	if !ok {
		return 0
	}
	return time.Duration(max(exp-nowMs, 0)) * time.Millisecond
}
