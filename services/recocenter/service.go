package recocenter

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Config bounds the shared recall + sort pass of a refresh.
type Config struct {
	// FillTimeout bounds one recall + sort + store pass. The pass is shared by
	// every refresh of the reader's channel that arrives meanwhile, so it runs
	// on its own deadline rather than the first caller's: one cancelled client
	// must not fail the others.
	FillTimeout time.Duration `yaml:"fill_timeout"`
	// PopularNum is the shortest ranking a pass queues: when recall is down or
	// offers fewer unseen articles, the channel's hot and new ones the reader
	// has not seen fill it up to this many, enough for the refreshes that share
	// the pass to each get a page (DESIGN §4: never dark).
	PopularNum int `yaml:"popular_num"`
}

// Validate checks the keys.
func (c Config) Validate() error {
	if c.FillTimeout <= 0 {
		return fmt.Errorf("recocenter.fill_timeout must be positive, got %v", c.FillTimeout)
	}
	if c.PopularNum < 1 || c.PopularNum > feed.MaxArticles {
		return fmt.Errorf("recocenter.popular_num must be 1..%d, got %d", feed.MaxArticles, c.PopularNum)
	}
	return nil
}

// Cache is the reader's queue of ranked, not yet served articles. Pop claims
// what it returns, so concurrent refreshes never share an id.
type Cache interface {
	Pop(ctx context.Context, user string, channel int32, n int) ([]int64, error)
	Store(ctx context.Context, user string, channel int32, ranked []int64) error
}

// Recaller offers the candidates of a strategy's sources.
type Recaller interface {
	Recall(ctx context.Context, user string, channel int32, sources []feed.Source) ([]feed.Candidate, error)
}

// Popular is a channel's hot and new articles, alternating: the feed of
// anonymous readers and the answer when recall or the cache is down. It is a
// port of its own, read in reco-center's process, so that the fallback for a
// dead recall service does not go through it.
type Popular interface {
	Popular(ctx context.Context, channel int32, n int) ([]int64, error)
}

// Ranker orders candidates by a model's predicted click-through rate.
type Ranker interface {
	Rank(ctx context.Context, user string, channel int32, model feed.Model, ids []int64) ([]int64, error)
}

// Ports are what reco-center reaches: its peers, the popular articles and the
// readers' history.
type Ports struct {
	Cache   Cache
	Recall  Recaller
	Sort    Ranker
	Popular Popular
	History storage.History
}

// Center is the feed logic of DESIGN.md §4.
type Center struct {
	cfg     Config
	ports   Ports
	log     *zap.Logger
	metrics metrics
	fills   singleflight.Group
}

type metrics struct {
	degradations  *prometheus.CounterVec
	historyFailed prometheus.Counter
	ranked        *prometheus.CounterVec
}

// New returns the feed logic over ports, with its metrics registered in reg.
func New(cfg Config, ports Ports, log *zap.Logger, reg prometheus.Registerer) (*Center, error) {
	m := metrics{
		degradations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "feed_degradations_total",
			Help:      "Refreshes served in a degraded way, by the dependency that failed (cache, recall, sort, history).",
		}, []string{"cause"}),
		historyFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "history_write_failures_total",
			Help:      "Refreshes whose served ids could not be recorded in history.",
		}),
		ranked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "ranked_articles_total",
			Help:      "Candidates sent to ranking after history filtering, by strategy.",
		}, []string{"strategy"}),
	}
	for _, c := range []prometheus.Collector{m.degradations, m.historyFailed, m.ranked} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register reco-center metrics: %w", err)
		}
	}
	return &Center{cfg: cfg, ports: ports, log: log, metrics: m}, nil
}

// Feed serves a refresh when the request's time stamp is newer than the
// reader's last refresh of the channel, and a history page otherwise.
func (c *Center) Feed(ctx context.Context, r feed.Request) (feed.Page, error) {
	if err := r.Validate(); err != nil {
		return feed.Page{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if r.Anonymous {
		// No history for anonymous ids: they are shared by many readers.
		ids, err := c.ports.Popular.Popular(ctx, r.Channel, r.N)
		if err != nil {
			return feed.Page{}, fmt.Errorf("popular articles: %w", err)
		}
		return feed.Page{IDs: ids}, nil
	}
	last, err := c.ports.History.Newest(ctx, r.User, r.Channel)
	if err != nil {
		// Without history the request cannot be told from a history page; most
		// calls are refreshes, so serve one rather than nothing.
		c.degraded(r, "history", err)
		ids := c.refresh(ctx, r, nil)
		c.record(ctx, r, ids)
		return feed.Page{IDs: ids}, nil
	}
	if r.Timestamp <= last {
		return c.historyPage(ctx, r)
	}
	seen := func() (map[int64]bool, error) { return c.seen(ctx, r) }
	ids := c.refresh(ctx, r, seen)
	c.record(ctx, r, ids)
	return feed.Page{IDs: ids, Timestamp: last}, nil
}

// historyPage returns the newest refresh at or before the request's time stamp
// and the time stamp of the one before it (0 when there is none).
func (c *Center) historyPage(ctx context.Context, r feed.Request) (feed.Page, error) {
	versions, err := c.ports.History.Page(ctx, r.User, r.Channel, r.Timestamp)
	if err != nil {
		return feed.Page{}, fmt.Errorf("read history: %w", err)
	}
	page := feed.Page{History: true}
	switch len(versions) {
	case 0:
	case 1:
		page.IDs = versions[0].IDs
	default:
		page.IDs, page.Timestamp = versions[0].IDs, versions[1].Timestamp
	}
	return page, nil
}

// refresh serves up to r.N ids the reader has not seen: first from the cache,
// then from a recall + sort pass whose ranking goes to the cache and is popped
// from there. seen reads the reader's history; nil means history is down.
// Each failing dependency degrades the page rather than failing it.
func (c *Center) refresh(ctx context.Context, r feed.Request, seen func() (map[int64]bool, error)) []int64 {
	popped, err := c.ports.Cache.Pop(ctx, r.User, r.Channel, r.N)
	if err != nil {
		c.degraded(r, "cache", err)
		return c.popularUnseen(ctx, r, r.N, c.seenOrNone(r, seen))
	}
	if len(popped) >= r.N {
		return popped
	}
	exclude := c.seenOrNone(r, seen)
	for _, id := range popped {
		exclude[id] = true
	}
	return append(popped, c.fillAndPop(ctx, r, exclude, r.N-len(popped))...)
}

// seenOrNone is what the reader has seen, or nothing when history is down.
func (c *Center) seenOrNone(r feed.Request, seen func() (map[int64]bool, error)) map[int64]bool {
	if seen == nil {
		return map[int64]bool{}
	}
	s, err := seen()
	if err != nil {
		c.degraded(r, "history", err)
		return map[int64]bool{}
	}
	return s
}

// seen is every id in the reader's history of the channel and of channel 0 (the
// all-channels feed), read in one round trip.
func (c *Center) seen(ctx context.Context, r feed.Request) (map[int64]bool, error) {
	channels := []int32{r.Channel}
	if r.Channel != feed.ChannelAll {
		channels = append(channels, feed.ChannelAll)
	}
	seen, err := c.ports.History.Seen(ctx, r.User, channels)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return seen, nil
}

// fill is the outcome of one shared recall + sort pass.
type fill struct {
	ranked []int64
	// stored is false when the cache refused the ranking: then the waiters
	// share ranked out directly, each taking the next ids (next), so no two get
	// the same one.
	stored bool
	next   atomic.Int64
}

// fillAndPop runs (or joins) the pass that refills the reader's cache, then pops
// this refresh's own n ids from it.
func (c *Center) fillAndPop(ctx context.Context, r feed.Request, exclude map[int64]bool, n int) []int64 {
	f, err := c.fill(ctx, r, exclude)
	if err != nil {
		// This caller stopped waiting; the pass goes on for the others.
		c.degraded(r, "deadline", err)
		return nil
	}
	if !f.stored {
		end := f.next.Add(int64(n))
		size := int64(len(f.ranked))
		return f.ranked[min(end-int64(n), size):min(end, size)]
	}
	more, err := c.ports.Cache.Pop(ctx, r.User, r.Channel, n)
	if err != nil {
		c.degraded(r, "cache", err)
		return c.popularUnseen(ctx, r, n, exclude)
	}
	return more
}

// fill shares one recall + sort + store pass among the concurrent refreshes of a
// reader's channel (a cold cache would otherwise start one per refresh). The
// pass runs on a context detached from any one caller, with its own deadline;
// a caller whose context ends stops waiting without cancelling it.
func (c *Center) fill(ctx context.Context, r feed.Request, exclude map[int64]bool) (*fill, error) {
	key := r.User + "\x00" + strconv.Itoa(int(r.Channel))
	ch := c.fills.DoChan(key, func() (any, error) {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FillTimeout)
		defer cancel()
		f := &fill{ranked: c.ranking(pctx, r, exclude)}
		if len(f.ranked) == 0 {
			return f, nil
		}
		if err := c.ports.Cache.Store(pctx, r.User, r.Channel, f.ranked); err != nil {
			c.degraded(r, "cache", err)
			return f, nil
		}
		f.stored = true
		return f, nil
	})
	select {
	case res := <-ch:
		return res.Val.(*fill), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// rankingShare is the part of the pass's deadline recall and sort may take: the
// rest is left for the popular fallback and the store (DESIGN §6: a hop's
// deadline leaves room for its fallback).
const rankingShare = 0.75

// ranking recalls, drops what the reader has seen, ranks and mixes, then tops
// the ranking up with popular articles the reader has not seen when recall
// fails or runs short (DESIGN §4: never dark).
func (c *Center) ranking(ctx context.Context, r feed.Request, exclude map[int64]bool) []int64 {
	deadline, _ := ctx.Deadline()
	rctx, cancel := context.WithDeadline(ctx, time.Now().Add(time.Duration(float64(time.Until(deadline))*rankingShare)))
	ranked := c.recallAndRank(rctx, r, exclude)
	cancel()
	if len(ranked) >= c.cfg.PopularNum {
		return ranked
	}
	unseen := make(map[int64]bool, len(exclude)+len(ranked))
	for id := range exclude {
		unseen[id] = true
	}
	for _, id := range ranked {
		unseen[id] = true
	}
	return append(ranked, c.popularUnseen(ctx, r, c.cfg.PopularNum-len(ranked), unseen)...)
}

// recallAndRank recalls, drops what the reader has seen, ranks (recall order
// when sort fails) and mixes in new and hot articles at the strategy's ratios.
func (c *Center) recallAndRank(ctx context.Context, r feed.Request, exclude map[int64]bool) []int64 {
	cands, err := c.ports.Recall.Recall(ctx, r.User, r.Channel, r.Strategy.Recall)
	if err != nil {
		c.degraded(r, "recall", err)
		return nil
	}
	var ids, fresh, hot []int64
	for _, cand := range cands {
		if exclude[cand.ID] {
			continue
		}
		ids = append(ids, cand.ID)
		switch cand.Source {
		case feed.SourceNew:
			fresh = append(fresh, cand.ID)
		case feed.SourceHot:
			hot = append(hot, cand.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	c.metrics.ranked.WithLabelValues(r.Strategy.Name).Add(float64(len(ids)))
	ranked, err := c.ports.Sort.Rank(ctx, r.User, r.Channel, r.Strategy.Sort, ids)
	if err != nil {
		c.degraded(r, "sort", err)
		ranked = ids
	}
	return mix(ranked, fresh, hot, r.Strategy.NewRatio, r.Strategy.HotRatio)
}

// popularUnseen is up to n of the channel's hot and new articles the reader has
// not seen: the answer when recall or the cache is down.
func (c *Center) popularUnseen(ctx context.Context, r feed.Request, n int, seen map[int64]bool) []int64 {
	// Enough to fill the page past seen ids; seen can be a long history.
	want := min(2*(n+min(len(seen), 1000)), maxPopular)
	popular, err := c.ports.Popular.Popular(ctx, r.Channel, want)
	if err != nil {
		c.degraded(r, "popular", err)
		return nil
	}
	out := make([]int64, 0, n)
	for _, id := range popular {
		if len(out) == n {
			break
		}
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out
}

// maxPopular bounds what one fallback reads.
const maxPopular = 10000

// mix interleaves new and hot ids into ranked so that the first k positions hold
// about k·newRatio new and k·hotRatio hot ones, keeping every list's own order and
// each id once.
func mix(ranked, fresh, hot []int64, newRatio, hotRatio float64) []int64 {
	out := make([]int64, 0, len(ranked))
	used := make(map[int64]bool, len(ranked))
	var nNew, nHot, iNew, iHot, iRanked int
	next := func(list []int64, i *int) (int64, bool) {
		for *i < len(list) {
			id := list[*i]
			*i++
			if !used[id] {
				return id, true
			}
		}
		return 0, false
	}
	for len(out) < len(ranked) {
		pos := float64(len(out) + 1)
		var id int64
		var ok bool
		if float64(nNew) < pos*newRatio {
			if id, ok = next(fresh, &iNew); ok {
				nNew++
			}
		}
		if !ok && float64(nHot) < pos*hotRatio {
			if id, ok = next(hot, &iHot); ok {
				nHot++
			}
		}
		if !ok {
			if id, ok = next(ranked, &iRanked); !ok {
				break
			}
		}
		used[id] = true
		out = append(out, id)
	}
	return out
}

// record writes the served ids as the history version at the request's time
// stamp. History merges with a concurrent refresh that carries the same stamp,
// so both lists land. A failed write is retried once, then reported loudly: the
// ids were served, and without history they may be served again.
func (c *Center) record(ctx context.Context, r feed.Request, ids []int64) {
	if len(ids) == 0 {
		return
	}
	err := c.ports.History.Record(ctx, r.User, r.Channel, r.Timestamp, ids)
	if err != nil && ctx.Err() == nil {
		err = c.ports.History.Record(ctx, r.User, r.Channel, r.Timestamp, ids)
	}
	if err != nil {
		c.metrics.historyFailed.Inc()
		c.log.Error("served ids not recorded in history", zap.String("user", r.User), zap.Int32("channel", r.Channel),
			zap.String("strategy", r.Strategy.Name), zap.Int64("time_stamp", r.Timestamp), zap.Int64s("ids", ids), zap.Error(err))
	}
}

func (c *Center) degraded(r feed.Request, cause string, err error) {
	c.metrics.degradations.WithLabelValues(cause).Inc()
	c.log.Warn("feed degraded", zap.String("cause", cause), zap.String("user", r.User), zap.Int32("channel", r.Channel),
		zap.String("strategy", r.Strategy.Name), zap.Error(err))
}
