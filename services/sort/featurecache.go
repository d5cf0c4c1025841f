package sort

import (
	"context"
	"sync"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// articleCache keeps article feature vectors in memory. The offline build writes
// them and every ranking reads hundreds of them: fetching each ranking's from
// HBase was most of a cache-miss refresh's cost, for values that change once a
// build. An article without features is remembered too (as nil), so candidates
// missing from the table do not cost a round trip each time.
type articleCache struct {
	features storage.Features
	ttl      time.Duration
	size     int
	now      func() time.Time

	mu      sync.RWMutex
	vectors map[int64]cachedVector
}

type cachedVector struct {
	v       []float64
	fetched time.Time
}

func newArticleCache(features storage.Features, ttl time.Duration, size int) *articleCache {
	return &articleCache{features: features, ttl: ttl, size: size, now: time.Now, vectors: map[int64]cachedVector{}}
}

// ArticleVectors returns the vectors of ids that have one, reading the ones not
// cached (or cached longer than the ttl ago) in one round trip.
func (c *articleCache) ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error) {
	out := make(map[int64][]float64, len(ids))
	var missing []int64
	now := c.now()
	c.mu.RLock()
	for _, id := range ids {
		cv, ok := c.vectors[id]
		switch {
		case !ok || now.Sub(cv.fetched) > c.ttl:
			missing = append(missing, id)
		case cv.v != nil:
			out[id] = cv.v
		}
	}
	c.mu.RUnlock()
	if len(missing) == 0 {
		return out, nil
	}
	fetched, err := c.features.ArticleVectors(ctx, missing)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.vectors)+len(missing) > c.size {
		// Past the bound, forget about half, at random (map order): hot articles
		// come back on their next ranking.
		drop := len(c.vectors) / 2
		for id := range c.vectors {
			if drop == 0 {
				break
			}
			delete(c.vectors, id)
			drop--
		}
	}
	for _, id := range missing {
		v := fetched[id]
		c.vectors[id] = cachedVector{v: v, fetched: now}
		if v != nil {
			out[id] = v
		}
	}
	return out, nil
}
