package layout

import (
	"context"
	"slices"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// SetPeek is what SortedSets.PeekSet read of a key.
type SetPeek struct {
	// Top are the members with the highest scores, highest first.
	Top []storage.Scored
	// Size is how many members the key holds, malformed ones included.
	Size int
	// TTL is what the key has left to live: 0 when it is absent or never
	// expires.
	TTL time.Duration
}

// SeenPeek is what SortedSets.PeekSeen read of a seen set.
type SeenPeek struct {
	// Seeded says whether the set holds the marker SeedSeen puts.
	Seeded bool
	// IDs are the ids it holds besides the marker, in no particular order.
	IDs []int64
	// TTL is what the set has left to live: 0 when it is absent or never
	// expires.
	TTL time.Duration
}

// The inspection ports are the layout's own, so every backend offers them.
var (
	_ storage.WaitInspector  = (*tables)(nil)
	_ storage.CacheInspector = (*sets)(nil)
)

func (t *tables) PeekWait(ctx context.Context, user string, channel int32) ([]int64, error) {
	return t.c.PeekQueue(ctx, WaitCell(user, channel))
}

func (s *sets) PeekTier1(ctx context.Context, user string, channel int32, n int) (storage.Tier1Contents, error) {
	p, err := s.s.PeekSet(ctx, CacheKey(user, channel), n)
	if err != nil {
		return storage.Tier1Contents{}, err
	}
	c := storage.Tier1Contents{Count: p.Size, TTL: p.TTL}
	for _, m := range p.Top {
		c.IDs = append(c.IDs, m.ID)
	}
	return c, nil
}

// PeekSeen lists the lowest ids, so two reads of one set list the same ones
// whatever order the engine keeps them in.
func (s *sets) PeekSeen(ctx context.Context, user string, channel int32, n int) (storage.SeenContents, error) {
	p, err := s.s.PeekSeen(ctx, SeenKey(user, channel))
	if err != nil {
		return storage.SeenContents{}, err
	}
	ids := p.IDs
	slices.Sort(ids)
	c := storage.SeenContents{Seeded: p.Seeded, Count: len(ids), TTL: p.TTL}
	if n > 0 && len(ids) > 0 {
		c.IDs = ids[:min(n, len(ids))]
	}
	return c, nil
}
