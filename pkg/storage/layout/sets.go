package layout

import (
	"context"
	"fmt"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// ListKey is the sorted set of channel's list.
func ListKey(list storage.ChannelList, channel int32) (string, error) {
	switch list {
	case storage.NewList:
		return NewKey(channel), nil
	case storage.HotList:
		return HotKey(channel), nil
	}
	return "", fmt.Errorf("unknown channel list %d", list)
}

// NewSets returns the Redis role of the domain, laid out in the sorted sets of
// s.
func NewSets(s SortedSets) storage.Sets { return &sets{s: s} }

// sets is storage.Sets over an engine's sorted sets.
type sets struct{ s SortedSets }

var _ storage.Sets = (*sets)(nil)

func (s *sets) Top(ctx context.Context, list storage.ChannelList, channel int32, n int) ([]storage.Scored, error) {
	key, err := ListKey(list, channel)
	if err != nil {
		return nil, err
	}
	return s.s.Top(ctx, key, n)
}

// Replace adds articles over the old list, which readers see atomically. Only
// when the old list holds an article the new one does not is the key deleted
// first, leaving it briefly empty (the feed then falls back on its other
// sources).
func (s *sets) Replace(ctx context.Context, list storage.ChannelList, channel int32, articles []storage.Scored) error {
	key, err := ListKey(list, channel)
	if err != nil {
		return err
	}
	for _, a := range articles {
		if a.ID <= 0 {
			return fmt.Errorf("replace %s: article %d: an article id is positive", key, a.ID)
		}
	}
	old, err := s.s.Top(ctx, key, len(articles)+1)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	keep := make(map[int64]bool, len(articles))
	for _, a := range articles {
		keep[a.ID] = true
	}
	stale := false
	for _, m := range old {
		stale = stale || !keep[m.ID]
	}
	if stale || len(articles) == 0 {
		if err := s.s.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	if len(articles) == 0 {
		return nil
	}
	if err := s.s.Add(ctx, key, articles, 0); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (s *sets) Pop(ctx context.Context, user string, channel int32, n int) ([]int64, error) {
	return s.s.PopMax(ctx, CacheKey(user, channel), n)
}

// Store scores ids so that ZPOPMAX returns them in the given order: the first
// gets the highest score, len(ranked). (The original scored them so that the
// lowest-ranked came out first.)
func (s *sets) Store(ctx context.Context, user string, channel int32, ranked []int64, ttl time.Duration) error {
	if err := storage.CheckIDs(ranked); err != nil {
		return fmt.Errorf("cache for user %s channel %d: %w", user, channel, err)
	}
	members := make([]storage.Scored, len(ranked))
	for i, id := range ranked {
		members[i] = storage.Scored{ID: id, Score: float64(len(ranked) - i)}
	}
	return s.s.Add(ctx, CacheKey(user, channel), members, ttl)
}

// Boost scores ids above the tier's best in one engine call, so a Pop racing
// with it sees all of them ahead or none. A repeated id keeps its first place.
func (s *sets) Boost(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) error {
	if err := storage.CheckIDs(ids); err != nil {
		return fmt.Errorf("boost cache for user %s channel %d: %w", user, channel, err)
	}
	return s.s.AddAbove(ctx, CacheKey(user, channel), storage.MergeIDs(nil, ids), ttl)
}

// alsoSeen is the seen set a claim in channel checks besides channel's own:
// channel 0's, for any other channel.
func alsoSeen(user string, channel int32) string {
	if channel == feed.ChannelAll {
		return ""
	}
	return SeenKey(user, feed.ChannelAll)
}

// Claim claims ids in the reader's seen set of channel, checking channel 0's
// too for any other channel, in one atomic engine call.
func (s *sets) Claim(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) ([]int64, error) {
	claimed, seeded, err := s.s.ClaimUnseen(ctx, SeenKey(user, channel), alsoSeen(user, channel), ids, ttl, false)
	if err != nil {
		return nil, err
	}
	if !seeded {
		return nil, storage.ErrUnseeded
	}
	return claimed, nil
}

// ClaimProvisional claims ids in the reader's seen set of channel, against
// what it and channel 0's hold, seeded or not, in one atomic engine call.
func (s *sets) ClaimProvisional(ctx context.Context, user string, channel int32, ids []int64, ttl time.Duration) ([]int64, error) {
	claimed, _, err := s.s.ClaimUnseen(ctx, SeenKey(user, channel), alsoSeen(user, channel), ids, ttl, true)
	return claimed, err
}

// Seed adds seen to the reader's seen set of channel and marks it seeded.
func (s *sets) Seed(ctx context.Context, user string, channel int32, seen []int64, last int64, ttl time.Duration) error {
	if last < 0 {
		return fmt.Errorf("seed seen set of user %s channel %d: a time stamp is not negative, got %d", user, channel, last)
	}
	return s.s.SeedSeen(ctx, SeenKey(user, channel), seen, last, ttl)
}

// TakeUnseen pops and claims from the reader's tier 1 in one atomic engine call;
// the seen set of the channel keeps the stamp of its newest refresh.
func (s *sets) TakeUnseen(ctx context.Context, user string, channel int32, at int64, n int, ttl time.Duration) (storage.Taken, error) {
	if at < 0 || n < 0 {
		return storage.Taken{}, fmt.Errorf("take from cache of user %s channel %d: time stamp and count are not negative, got %d and %d", user, channel, at, n)
	}
	p, err := s.s.PopUnseen(ctx, CacheKey(user, channel), SeenKey(user, channel), alsoSeen(user, channel), at, n, ttl)
	if err != nil {
		return storage.Taken{}, err
	}
	if !p.Seeded {
		return storage.Taken{}, storage.ErrUnseeded
	}
	return storage.Taken{Older: p.Older, Last: p.Last, IDs: p.IDs, Dry: p.Dry}, nil
}
