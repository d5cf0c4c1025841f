package recocenter

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	cachev1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/cache/v1"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	sortv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/sort/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Strategy is what A/B bucketing chose for a user (DESIGN.md §5).
type Strategy struct {
	Name     string
	Sources  []recallv1.Source
	Model    int32
	NewRatio float64
	HotRatio float64
}

// Request is one user_recommend call, validated by routing.
type Request struct {
	User      string
	Channel   int32
	N         int
	Timestamp int64
	Strategy  Strategy
	Anonymous bool
}

// Page is what the user sees.
type Page struct {
	IDs []int64
	// Timestamp is the stamp to page back with; 0 when there is nothing older.
	Timestamp int64
	// History is true for a history page, which is not a new exposure.
	History bool
}

// Peers are the services reco-center calls.
type Peers struct {
	Cache  cachev1.CacheServiceClient
	Recall recallv1.RecallServiceClient
	Sort   sortv1.SortServiceClient
}

// Metrics counts what operators watch on the feed path.
type Metrics struct {
	degradations  *prometheus.CounterVec
	historyFailed prometheus.Counter
	ranked        *prometheus.CounterVec
}

// NewMetrics registers reco-center's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		degradations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "feed_degradations_total",
			Help:      "Refreshes served in a degraded way, by the dependency that failed (cache, recall, sort, history).",
		}, []string{"cause"}),
		historyFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "history_write_failures_total",
			Help:      "Refreshes whose served ids could not be recorded in history_recommend.",
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
	return m, nil
}

// fill is the outcome of one recall + sort pass stored into the cache.
type fill struct {
	ranked   []int64
	storeErr error
}

// Center is the feed logic of DESIGN.md §4.
type Center struct {
	fills   singleflight.Group
	history storage.Lists
	// sets serves the channel's hot and new articles when recall or the cache is
	// down, and to anonymous users.
	sets    storage.SortedSets
	peers   Peers
	metrics *Metrics
	log     *zap.Logger
}

// New returns the feed logic.
func New(history storage.Lists, sets storage.SortedSets, peers Peers, metrics *Metrics, log *zap.Logger) *Center {
	return &Center{history: history, sets: sets, peers: peers, metrics: metrics, log: log}
}

// Feed serves a refresh when the request's time stamp is newer than the user's
// last refresh of the channel, and a history page otherwise.
func (c *Center) Feed(ctx context.Context, r Request) (Page, error) {
	if r.Anonymous {
		// No history for anonymous ids: they are shared by many readers.
		ids, err := c.hotAndNew(ctx, r.Channel, r.N, nil)
		return Page{IDs: ids}, err
	}
	cell := storage.HistoryCell(r.User, r.Channel)
	newest, err := c.history.Versions(ctx, cell.Table, cell.Row, []string{cell.Column}, math.MaxInt64, 1)
	if err != nil {
		// Without history the request cannot be told from a history page; most
		// calls are refreshes, so serve one rather than nothing.
		c.degraded(r, "history", err)
		ids := c.refresh(ctx, r, false)
		c.record(ctx, r, ids)
		return Page{IDs: ids}, nil
	}
	var last int64
	if v := newest[cell.Column]; len(v) > 0 {
		last = v[0].Timestamp
	}
	if r.Timestamp <= last {
		return c.historyPage(ctx, r)
	}
	ids := c.refresh(ctx, r, true)
	c.record(ctx, r, ids)
	return Page{IDs: ids, Timestamp: last}, nil
}

// historyPage returns the newest version at or before the request's time stamp
// and the time stamp of the one before it (0 when there is none).
func (c *Center) historyPage(ctx context.Context, r Request) (Page, error) {
	cell := storage.HistoryCell(r.User, r.Channel)
	got, err := c.history.Versions(ctx, cell.Table, cell.Row, []string{cell.Column}, r.Timestamp, 2)
	if err != nil {
		return Page{}, fmt.Errorf("read history: %w", err)
	}
	page := Page{History: true}
	switch v := got[cell.Column]; len(v) {
	case 0:
	case 1:
		page.IDs = v[0].IDs
	default:
		page.IDs, page.Timestamp = v[0].IDs, v[1].Timestamp
	}
	return page, nil
}

// refresh serves up to r.N ids the user has not seen: first from the cache, then
// from a recall + sort pass whose leftovers go to the cache. Every id is served
// through the cache's claiming pop, so concurrent refreshes never share an id.
// Each failing dependency degrades the page rather than failing it.
func (c *Center) refresh(ctx context.Context, r Request, historyUp bool) []int64 {
	popped, err := c.pop(ctx, r, r.N)
	if err != nil {
		c.degraded(r, "cache", err)
		seen, _ := c.seen(ctx, r)
		ids, _ := c.hotAndNew(ctx, r.Channel, r.N, seen)
		return ids
	}
	if len(popped) >= r.N {
		return popped
	}

	var seen map[int64]bool
	if historyUp {
		if seen, err = c.seen(ctx, r); err != nil {
			c.degraded(r, "history", err)
		}
	}
	for _, id := range popped {
		seen = setAdd(seen, id)
	}
	// Concurrent refreshes of one user and channel share one recall + sort pass
	// (a cold cache would otherwise start one per refresh); each then pops its
	// own ids from what it stored.
	key := r.User + "\x00" + strconv.Itoa(int(r.Channel))
	v, _, _ := c.fills.Do(key, func() (any, error) {
		ranked, err := c.candidates(ctx, r, seen)
		if err != nil {
			c.degraded(r, "recall", err)
			// Still through the cache below: its claiming pop is what keeps
			// concurrent refreshes from serving one article twice.
			ranked, _ = c.hotAndNew(ctx, r.Channel, r.N-len(popped), seen)
		}
		if len(ranked) == 0 {
			return fill{}, nil
		}
		_, err = c.peers.Cache.Store(ctx, &cachev1.StoreRequest{UserId: r.User, ChannelId: r.Channel, ArticleIds: ranked})
		return fill{ranked: ranked, storeErr: err}, nil
	})
	f := v.(fill)
	if len(f.ranked) == 0 {
		return popped
	}
	if f.storeErr != nil {
		c.degraded(r, "cache", f.storeErr)
		return append(popped, f.ranked[:min(len(f.ranked), r.N-len(popped))]...)
	}
	more, err := c.pop(ctx, r, r.N-len(popped))
	if err != nil {
		c.degraded(r, "cache", err)
	}
	return append(popped, more...)
}

func (c *Center) pop(ctx context.Context, r Request, n int) ([]int64, error) {
	resp, err := c.peers.Cache.Pop(ctx, &cachev1.PopRequest{UserId: r.User, ChannelId: r.Channel, N: int32(n)})
	if err != nil {
		return nil, err
	}
	return resp.GetArticleIds(), nil
}

// seen is every id in the user's history of the channel and of channel 0 (the
// all-channels feed), read in one round trip.
func (c *Center) seen(ctx context.Context, r Request) (map[int64]bool, error) {
	row := storage.HistoryCell(r.User, r.Channel).Row
	columns := []string{storage.ChannelColumn(r.Channel)}
	if r.Channel != 0 {
		columns = append(columns, storage.ChannelColumn(0))
	}
	got, err := c.history.Versions(ctx, storage.TableHistoryRecommend, row, columns, math.MaxInt64, 0)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	seen := map[int64]bool{}
	for _, versions := range got {
		for _, v := range versions {
			for _, id := range v.IDs {
				seen[id] = true
			}
		}
	}
	return seen, nil
}

// candidates recalls, drops what the user has seen, ranks (recall order when
// sort fails) and mixes in new and hot articles at the strategy's ratios.
func (c *Center) candidates(ctx context.Context, r Request, seen map[int64]bool) ([]int64, error) {
	resp, err := c.peers.Recall.Recall(ctx, &recallv1.RecallRequest{UserId: r.User, ChannelId: r.Channel, Sources: r.Strategy.Sources})
	if err != nil {
		return nil, err
	}
	var ids, fresh, hot []int64
	for _, cand := range resp.GetCandidates() {
		if seen[cand.GetArticleId()] {
			continue
		}
		ids = append(ids, cand.GetArticleId())
		switch cand.GetSource() {
		case recallv1.Source_SOURCE_NEW:
			fresh = append(fresh, cand.GetArticleId())
		case recallv1.Source_SOURCE_HOT:
			hot = append(hot, cand.GetArticleId())
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	c.metrics.ranked.WithLabelValues(r.Strategy.Name).Add(float64(len(ids)))
	ranked, err := c.peers.Sort.Rank(ctx, &sortv1.RankRequest{UserId: r.User, ChannelId: r.Channel, Model: r.Strategy.Model, ArticleIds: ids})
	if err != nil {
		c.degraded(r, "sort", err)
	} else {
		ids = ranked.GetArticleIds()
	}
	return mix(ids, fresh, hot, r.Strategy.NewRatio, r.Strategy.HotRatio), nil
}

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

// hotAndNew serves the channel's hottest and newest articles, alternating,
// skipping seen ones: the fallback when recall or the cache is down, and the
// feed of anonymous users.
func (c *Center) hotAndNew(ctx context.Context, channel int32, n int, seen map[int64]bool) ([]int64, error) {
	// Enough to fill the page past seen ids; seen can be a long history.
	want := n + min(len(seen), 1000)
	hot, errHot := c.sets.Top(ctx, storage.HotKey(channel), want)
	fresh, errNew := c.sets.Top(ctx, storage.NewKey(channel), want)
	if errHot != nil && errNew != nil {
		return nil, fmt.Errorf("read hot and new articles: %w", errHot)
	}
	var out []int64
	used := map[int64]bool{}
	for i := 0; len(out) < n && (i < len(hot) || i < len(fresh)); i++ {
		for _, list := range [][]storage.Scored{hot, fresh} {
			if i < len(list) && len(out) < n {
				if id := list[i].ID; !seen[id] && !used[id] {
					used[id] = true
					out = append(out, id)
				}
			}
		}
	}
	return out, nil
}

// record writes the served ids as the history version at the request's time
// stamp. Append merges with a concurrent refresh that carries the same stamp, so
// both lists land. A failed write is retried once, then reported loudly: the ids
// were served, and without history they may be served again.
func (c *Center) record(ctx context.Context, r Request, ids []int64) {
	if len(ids) == 0 {
		return
	}
	cell := storage.HistoryCell(r.User, r.Channel)
	err := c.history.Append(ctx, cell, r.Timestamp, ids)
	if err != nil && ctx.Err() == nil {
		err = c.history.Append(ctx, cell, r.Timestamp, ids)
	}
	if err != nil {
		c.metrics.historyFailed.Inc()
		c.log.Error("served ids not recorded in history", zap.String("user", r.User), zap.Int32("channel", r.Channel),
			zap.String("strategy", r.Strategy.Name), zap.Int64("time_stamp", r.Timestamp), zap.Int64s("ids", ids), zap.Error(err))
	}
}

func (c *Center) degraded(r Request, cause string, err error) {
	c.metrics.degradations.WithLabelValues(cause).Inc()
	c.log.Warn("feed degraded", zap.String("cause", cause), zap.String("user", r.User), zap.Int32("channel", r.Channel),
		zap.String("strategy", r.Strategy.Name), zap.Error(err))
}

func setAdd(s map[int64]bool, id int64) map[int64]bool {
	if s == nil {
		s = map[int64]bool{}
	}
	s[id] = true
	return s
}
