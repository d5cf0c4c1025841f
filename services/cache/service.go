package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Config sizes the two tiers.
type Config struct {
	// Tier1Size is how many ranked ids a store puts in Redis; the rest go to
	// the wait queue (tier 2).
	Tier1Size int `yaml:"tier1_size"`
	// RefillSize is how many ids move from the wait queue to tier 1 when it is
	// empty (the head of the queue; the rest stays).
	RefillSize int `yaml:"refill_size"`
	// TTL is how long a user's tier 1 lives after its last store, plus a random
	// TTLJitter so that the queues of users who arrived together do not all expire
	// (and all recompute) together.
	TTL       time.Duration `yaml:"ttl"`
	TTLJitter time.Duration `yaml:"ttl_jitter"`
}

// Validate checks the sizes and durations.
func (c Config) Validate() error {
	if c.Tier1Size < 1 || c.RefillSize < 1 {
		return fmt.Errorf("cache.tier1_size and cache.refill_size must be at least 1, got %d and %d", c.Tier1Size, c.RefillSize)
	}
	if c.TTL <= 0 || c.TTLJitter < 0 {
		return fmt.Errorf("cache.ttl must be positive and cache.ttl_jitter not negative, got %v and %v", c.TTL, c.TTLJitter)
	}

	return nil
}

// Stores are the ports the cache keeps its tiers in.
type Stores struct {
	Tier1 storage.Tier1
	Tier2 storage.WaitQueue
}

// Cache is the per-user queue of ranked, not yet served articles.
type Cache struct {
	cfg     Config
	seenTTL time.Duration
	stores  Stores
	log     *zap.Logger
	pops    *prometheus.CounterVec
}

// New returns a cache over stores, with its metrics registered in reg.
// seenTTL is how long the seen sets a take claims in live after it: not a
// key of the cache's own, but recocenter.seen_ttl, the one lifetime of a
// reader's seen sets.
func New(cfg Config, seenTTL time.Duration, stores Stores, log *zap.Logger, reg prometheus.Registerer) (*Cache, error) {
	if seenTTL <= 0 {
		return nil, fmt.Errorf("cache: the seen sets' ttl (recocenter.seen_ttl) must be positive, got %v", seenTTL)
	}
	pops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: server.Namespace,
		Name:      "cache_pops_total",
		Help:      "Cache pops by outcome: hit (all from tier 1), refill (tier 2 moved up), partial (fewer than asked), empty, refill_failed (tier 2 unreachable: tier 1 alone answered).",
	}, []string{"outcome"})
	if err := reg.Register(pops); err != nil {
		return nil, fmt.Errorf("register cache metrics: %w", err)
	}
	return &Cache{cfg: cfg, seenTTL: seenTTL, stores: stores, log: log, pops: pops}, nil
}

// Take pops and claims up to n ids in ranked order in one atomic step per
// tier-1 pop, starting the refresh at at (0: one under way), and refills
// tier 1 from the head of tier 2 when it runs dry. ErrUnseeded and an Older
// answer come from the first step, before anything is taken.
func (c *Cache) Take(ctx context.Context, user string, channel int32, at int64, n int) (storage.Taken, error) {
	var out storage.Taken
	refilled, refillFailed, taken := false, false, false
	defer func() {
		if taken && n > 0 && !out.Older {
			c.pops.WithLabelValues(popOutcome(len(out.IDs), n, refilled, refillFailed)).Inc()
		}
	}()
	for {
		t, err := c.stores.Tier1.TakeUnseen(ctx, user, channel, at, n-len(out.IDs), c.seenTTL)
		if err != nil {
			if at > 0 {
				return storage.Taken{}, fmt.Errorf("take from tier 1: %w", err)
			}
			// The refresh started: what it took is claimed, and an
			// error would lose it.
			c.log.Warn("tier 1 failed after the refresh took ids: answering with them", zap.String("user", user), zap.Int32("channel", channel), zap.Error(err))
			out.Dry = true
			return out, nil
		}
		taken = true
		if at > 0 {
			out.Older, out.Last = t.Older, t.Last
			at = 0
		}
		out.IDs = append(out.IDs, t.IDs...)
		if out.Older || len(out.IDs) >= n || !t.Dry {
			return out, nil
		}
		moved, err := c.refill(ctx, user, channel)
		if err != nil {
			// Tier 2 down is the cache running short, not failing: the
			// ids taken are served (an error would lose them) and a short
			// answer sends the refresh to a fresh ranking. An error here
			// would also trip the callers' breaker on the cache, and so
			// skip the readers tier 1 can still serve.
			refillFailed = true
			c.log.Warn("tier 2 refill failed: answering from tier 1 alone", zap.String("user", user), zap.Int32("channel", channel), zap.Error(err))
			out.Dry = true
			return out, nil
		}
		if !moved {
			out.Dry = true
			return out, nil
		}
		refilled = true
	}
}

// refill moves the head of tier 2 into tier 1; moved is false when tier 2 is
// empty. Once started, the move runs to its end on its own deadline
// (refillTimeout) whatever the caller does: a take from tier 2 whose caller
// left before the ids reached tier 1 would lose them, and the reader's feed
// with them (the chaos test's dark pages after each HBase hiccup). The
// caller waits no longer than its own context allows.
func (c *Cache) refill(ctx context.Context, user string, channel int32) (moved bool, err error) {
	type result struct {
		moved bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refillTimeout)
		defer cancel()
		moved, err := c.move(mctx, user, channel)
		done <- result{moved, err}
	}()
	select {
	case r := <-done:
		return r.moved, r.err
	case <-ctx.Done():
		return false, fmt.Errorf("refill from tier 2: %w", ctx.Err())
	}
}

// refillTimeout bounds a move from tier 2 to tier 1 that its caller left.
const refillTimeout = 5 * time.Second

// move is refill's work.
func (c *Cache) move(ctx context.Context, user string, channel int32) (moved bool, err error) {
	head, err := c.stores.Tier2.Take(ctx, user, channel, c.cfg.RefillSize)
	if err != nil {
		return false, fmt.Errorf("refill from tier 2: %w", err)
	}
	if len(head) == 0 {
		return false, nil
	}
	if err := c.stores.Tier1.Store(ctx, user, channel, head, c.ttl()); err != nil {
		// The moved ids are lost to the cache; the next refresh recomputes.
		return false, fmt.Errorf("refill tier 1: %w", err)
	}
	return true, nil
}

func popOutcome(got, asked int, refilled, refillFailed bool) string {
	switch {
	case refillFailed:
		return "refill_failed"
	case got == 0:
		return "empty"
	case refilled:
		return "refill"
	case got < asked:
		return "partial"
	}
	return "hit"
}

// Store keeps ranked ids (best first): the first Tier1Size in tier 1, the rest
// appended to tier 2.
func (c *Cache) Store(ctx context.Context, user string, channel int32, ids []int64) error {
	head, rest := ids[:min(len(ids), c.cfg.Tier1Size)], ids[min(len(ids), c.cfg.Tier1Size):]
	if len(head) > 0 {
		if err := c.stores.Tier1.Store(ctx, user, channel, head, c.ttl()); err != nil {
			return fmt.Errorf("store tier 1: %w", err)
		}
	}
	if len(rest) > 0 {
		if err := c.stores.Tier2.Push(ctx, user, channel, rest); err != nil {
			return fmt.Errorf("store tier 2: %w", err)
		}
	}
	return nil
}

func (c *Cache) ttl() time.Duration {
	if c.cfg.TTLJitter <= 0 {
		return c.cfg.TTL
	}
	return c.cfg.TTL + rand.N(c.cfg.TTLJitter)
}
