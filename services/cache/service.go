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
	cfg    Config
	stores Stores
	log    *zap.Logger
	pops   *prometheus.CounterVec
}

// New returns a cache over stores, with its metrics registered in reg.
func New(cfg Config, stores Stores, log *zap.Logger, reg prometheus.Registerer) (*Cache, error) {
	pops := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: server.Namespace,
		Name:      "cache_pops_total",
		Help:      "Cache pops by outcome: hit (all from tier 1), refill (tier 2 moved up), partial (fewer than asked), empty, refill_failed (tier 2 unreachable: tier 1 alone answered).",
	}, []string{"outcome"})
	if err := reg.Register(pops); err != nil {
		return nil, fmt.Errorf("register cache metrics: %w", err)
	}
	return &Cache{cfg: cfg, stores: stores, log: log, pops: pops}, nil
}

// Pop takes up to n ids in ranked order. Tier 1 pops are atomic; when tier 1 is
// empty the head of tier 2 moves up. Two refreshes that both stored one ranking
// pop overlapping ids: reco-center's serve-time claim gives each to one of them.
func (c *Cache) Pop(ctx context.Context, user string, channel int32, n int) (out []int64, err error) {
	refilled, refillFailed := false, false
	defer func() {
		if n > 0 {
			c.pops.WithLabelValues(popOutcome(len(out), n, refilled, refillFailed)).Inc()
		}
	}()
	for len(out) < n {
		ids, err := c.stores.Tier1.Pop(ctx, user, channel, n-len(out))
		if err != nil {
			return out, fmt.Errorf("pop tier 1: %w", err)
		}
		if len(ids) == 0 {
			moved, err := c.refill(ctx, user, channel)
			if err != nil {
				// Tier 2 down is the cache running short, not failing: the
				// ids popped are served (an error would lose them) and an
				// empty answer sends the refresh to a fresh ranking. An
				// error here would also trip the callers' breaker on the
				// cache, and so skip the readers tier 1 can still serve.
				refillFailed = true
				c.log.Warn("tier 2 refill failed: answering from tier 1 alone", zap.String("user", user), zap.Int32("channel", channel), zap.Error(err))
				return out, nil
			}
			if !moved {
				return out, nil
			}
			refilled = true
			continue
		}
		out = append(out, ids...)
	}
	return out, nil
}

// refill moves the head of tier 2 into tier 1; moved is false when tier 2 is
// empty.
func (c *Cache) refill(ctx context.Context, user string, channel int32) (moved bool, err error) {
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
