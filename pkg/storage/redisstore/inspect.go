package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// The peeks of `reco admin inspect` send only reads (ZREVRANGE, ZCARD,
// SMEMBERS, PTTL), in one MULTI/EXEC so that the members, the count and the
// expiry are of one moment: a malformed member is reported but not removed,
// unlike Top's ZREM, and no expiry is touched.

// PeekSet reads the highest n members of key, its size and its expiry.
func (s *sortedSets) PeekSet(ctx context.Context, key string, n int) (layout.SetPeek, error) {
	var (
		top  *redis.ZSliceCmd
		size *redis.IntCmd
		ttl  *redis.DurationCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if n > 0 {
			top = p.ZRevRangeWithScores(ctx, key, 0, int64(n)-1)
		}
		size = p.ZCard(ctx, key)
		ttl = p.PTTL(ctx, key)
		return nil
	})
	if err != nil {
		return layout.SetPeek{}, fmt.Errorf("peek at %s: %w", key, err)
	}
	peek := layout.SetPeek{Size: int(size.Val()), TTL: timeToLive(ttl.Val())}
	if top != nil {
		for _, z := range top.Val() {
			if id, ok := s.member(key, z.Member); ok {
				peek.Top = append(peek.Top, storage.Scored{ID: id, Score: z.Score})
			}
		}
	}
	return peek, nil
}

// PeekSeen reads the members of the seen set key and its expiry.
func (s *sortedSets) PeekSeen(ctx context.Context, key string) (layout.SeenPeek, error) {
	var (
		members *redis.StringSliceCmd
		ttl     *redis.DurationCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		members = p.SMembers(ctx, key)
		ttl = p.PTTL(ctx, key)
		return nil
	})
	if err != nil {
		return layout.SeenPeek{}, fmt.Errorf("peek at %s: %w", key, err)
	}
	peek := layout.SeenPeek{TTL: timeToLive(ttl.Val())}
	for _, m := range members.Val() {
		if m == "0" {
			peek.Seeded = true // the marker
			continue
		}
		if id, ok := s.bad.Member(key, m); ok {
			peek.IDs = append(peek.IDs, id)
		}
	}
	return peek, nil
}

// timeToLive is PTTL's answer as a time left: its -1 (no expiry) and -2 (no
// key) are 0.
func timeToLive(pttl time.Duration) time.Duration { return max(pttl, 0) }
