package recocenter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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
	// PopularScan bounds how far down the channel's hot and new lists a page is
	// backfilled when the cache and the ranking run dry (DESIGN §4: never dark,
	// from the full lists, not only their top).
	PopularScan int `yaml:"popular_scan"`
	// SeenTTL is how long a reader's seen sets (the copy of their history the
	// serve-time claim checks) live after their last claim; then the next
	// refresh seeds them from history again.
	SeenTTL time.Duration `yaml:"seen_ttl"`
	// HistoryTimeout bounds each history read and write of a refresh (DESIGN
	// §6: a hung store costs a bounded, small part of the request, then the
	// refresh degrades), and is what a refresh keeps of its deadline for its
	// served-ids log append, which makes the ids durable.
	HistoryTimeout time.Duration `yaml:"history_timeout"`
}

// Validate checks the keys.
func (c Config) Validate() error {
	if c.FillTimeout <= 0 {
		return fmt.Errorf("recocenter.fill_timeout must be positive, got %v", c.FillTimeout)
	}
	if c.PopularNum < 1 || c.PopularNum > feed.MaxArticles {
		return fmt.Errorf("recocenter.popular_num must be 1..%d, got %d", feed.MaxArticles, c.PopularNum)
	}
	if c.PopularScan < c.PopularNum || c.PopularScan > maxPopular {
		return fmt.Errorf("recocenter.popular_scan must be recocenter.popular_num (%d)..%d, got %d", c.PopularNum, maxPopular, c.PopularScan)
	}
	if c.SeenTTL <= 0 || c.HistoryTimeout <= 0 {
		return fmt.Errorf("recocenter.seen_ttl and recocenter.history_timeout must be positive, got %v and %v", c.SeenTTL, c.HistoryTimeout)
	}
	return nil
}

// Cache is the reader's queue of ranked, not yet served articles. Take
// starts a refresh and claims what it returns (storage.Tier1.TakeUnseen), so
// concurrent refreshes never share an id.
type Cache interface {
	Take(ctx context.Context, user string, channel int32, at int64, n int) (storage.Taken, error)
	Store(ctx context.Context, user string, channel int32, ranked []int64) error
}

// Recaller offers the candidates of a strategy's sources and names the recall
// runs it read; Consume deletes those once the candidates are safely queued.
type Recaller interface {
	Recall(ctx context.Context, user string, channel int32, sources []feed.Source) ([]feed.Candidate, []feed.ReadRuns, error)
	Consume(ctx context.Context, user string, channel int32, read []feed.ReadRuns) error
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

// ServedLog is the durable log of served ids (DESIGN §8): an entry appended
// before a refresh answers becomes a history version even if history is down
// now or this process dies right after answering.
type ServedLog interface {
	// Append logs ids as the refresh at ts; claimed says they all passed
	// the seen sets' claim (none came from the fallback claim).
	Append(ctx context.Context, user string, channel int32, ts int64, ids []int64, claimed bool) error
}

// Ports are what reco-center reaches: its peers, the popular articles, the
// readers' history, the seen sets every served id is claimed in, and the log
// of served ids.
type Ports struct {
	Cache   Cache
	Recall  Recaller
	Sort    Ranker
	Popular Popular
	History storage.History
	Claims  storage.ServedClaims
	Served  ServedLog
}

// Center is the feed logic of DESIGN.md §4.
type Center struct {
	cfg     Config
	ports   Ports
	log     *zap.Logger
	metrics metrics
	fills   singleflight.Group
	recent  *recent
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
	return &Center{cfg: cfg, ports: ports, log: log, metrics: m, recent: newRecent(recentPeriod, recentReaders)}, nil
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
	// The cache decides, in the step that takes its ids: its seen sets keep
	// the stamp of the reader's newest refresh. A cache hit costs that step
	// and the served log's append, and no history round trip.
	// The cache's step gets half the time: a slow or reseeding cache must
	// leave the fallback, the record and the answer theirs.
	sctx, cancel := withShare(ctx, startShare)
	t, seen, err := c.start(sctx, r)
	cancel()
	if err != nil {
		c.degraded(r, "cache", err)
		return c.feedUncached(ctx, r)
	}
	if t.Older {
		return c.historyPage(ctx, r)
	}
	return c.refreshFrom(ctx, r, &page{c: c, r: r, ids: t.IDs, seen: seen}, t.Last, true)
}

// startShare is the part of a request's time left a step of the cache may
// take.
const startShare = 0.5

// start takes the refresh's ids from the cache, first seeding the reader's
// seen sets from history when they are not a copy of it; seen is what that
// seed read from history (nil when the sets needed none).
func (c *Center) start(ctx context.Context, r feed.Request) (t storage.Taken, seen map[int64]bool, err error) {
	if err := c.syncFallback(ctx, r); err != nil {
		return storage.Taken{}, nil, err
	}
	t, err = c.ports.Cache.Take(ctx, r.User, r.Channel, r.Timestamp, r.N)
	if errors.Is(err, storage.ErrUnseeded) {
		if seen, err = c.seed(ctx, r); err != nil {
			return storage.Taken{}, nil, err
		}
		t, err = c.ports.Cache.Take(ctx, r.User, r.Channel, r.Timestamp, r.N)
	}
	if err != nil {
		return storage.Taken{}, nil, err
	}
	c.recent.add(r.User, r.Channel, t.IDs)
	return t, seen, nil
}

// feedUncached serves the request with the cache unreachable: history tells
// a refresh from a history page, and the refresh is a fresh ranking or the
// popular articles, through the claims.
func (c *Center) feedUncached(ctx context.Context, r feed.Request) (feed.Page, error) {
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HistoryTimeout)
	last, err := c.ports.History.Newest(hctx, r.User, r.Channel)
	cancel()
	if err != nil {
		// Without history the request cannot be told from a history page; most
		// calls are refreshes, so serve one rather than nothing.
		c.degraded(r, "history", err)
		last = 0
	} else if r.Timestamp <= last {
		return c.historyPage(ctx, r)
	}
	return c.refreshFrom(ctx, r, &page{c: c, r: r}, last, err == nil)
}

// refreshFrom fills page p up and records it. The page is recorded before it
// is answered: what the refresh may take leaves the record's bound and the
// answer's way back (DESIGN §6: a hop's deadline leaves room).
func (c *Center) refreshFrom(ctx context.Context, r feed.Request, p *page, last int64, historyUp bool) (feed.Page, error) {
	if !p.full() {
		rctx, cancel := withReserve(ctx, c.cfg.HistoryTimeout+answerMargin)
		c.refresh(rctx, p, historyUp)
		cancel()
	}
	if err := c.record(ctx, r, p.ids, !p.fellBack); err != nil {
		return feed.Page{}, err
	}
	return feed.Page{IDs: p.ids, Timestamp: last}, nil
}

// answerMargin is the part of a refresh's deadline kept for its answer to
// reach the caller once recorded: scheduling and the hop back.
const answerMargin = 100 * time.Millisecond

// historyPage returns the newest refresh at or before the request's time stamp
// and the time stamp of the one before it (0 when there is none). History has
// a refresh once the served log's applier wrote it, milliseconds after it was
// served or seconds while the log's consumers rebalance; the refreshes this
// process recorded lately fill that gap (a reader's calls reach one replica,
// pkg/server). History unreadable in time answers an empty page, as for a
// reader with nothing older: the app shows no more to scroll back to, and the
// degradation is counted, rather than the call failing.
func (c *Center) historyPage(ctx context.Context, r feed.Request) (feed.Page, error) {
	hctx, cancel := withReserve(ctx, answerMargin)
	defer cancel()
	page := feed.Page{History: true}
	versions, err := c.ports.History.Page(hctx, r.User, r.Channel, r.Timestamp)
	if err != nil {
		c.degraded(r, "history", err)
		return page, nil
	}
	versions = newestTwo(append(versions, c.recent.pages(r.User, r.Channel, r.Timestamp)...))
	switch len(versions) {
	case 0:
	case 1:
		page.IDs = versions[0].IDs
	default:
		page.IDs, page.Timestamp = versions[0].IDs, versions[1].Timestamp
	}
	return page, nil
}

// newestTwo returns the two newest refreshes of vs, one per time stamp: two
// writes at one stamp are one refresh (history merges them), so a stamp both
// history and recent hold is the union of their ids, history's first.
func newestTwo(vs []storage.Version) []storage.Version {
	slices.SortStableFunc(vs, func(a, b storage.Version) int { return cmp.Compare(b.Timestamp, a.Timestamp) })
	var out []storage.Version
	for _, v := range vs {
		if n := len(out); n > 0 && out[n-1].Timestamp == v.Timestamp {
			out[n-1].IDs = union(out[n-1].IDs, v.IDs)
			continue
		}
		if len(out) == 2 {
			break
		}
		out = append(out, v)
	}
	return out
}

// union is a followed by the ids of b it lacks.
func union(a, b []int64) []int64 {
	out := slices.Clone(a)
	for _, id := range b {
		if !slices.Contains(a, id) {
			out = append(out, id)
		}
	}
	return out
}

// refresh fills p up to r.N ids the reader has not seen, after what the cache
// gave, in this order: the recall + sort pass that refills the cache (which, with the cache down,
// hands its ranking out directly); the channel's hot and new articles. Every
// id goes through the serve-time claim (page.add), so none is served twice
// whatever path it came by. historyUp says whether the reader's history is
// readable. Each failing dependency degrades the page rather than failing it.
func (c *Center) refresh(ctx context.Context, p *page, historyUp bool) {
	exclude := c.exclude(ctx, p, historyUp)
	p.fromFill(ctx, exclude)
	if !p.full() {
		p.fromPopular(ctx, exclude)
	}
}

// exclude is what the reader has seen in the channel and in channel 0, as far
// as history says (read for this refresh's seed already, or now), plus what p
// holds: what no ranking for them should hold.
func (c *Center) exclude(ctx context.Context, p *page, historyUp bool) map[int64]bool {
	seen := p.seen
	if seen == nil {
		seen = map[int64]bool{}
		if historyUp {
			var err error
			if seen, err = c.seenIn(ctx, p.r.User, seenChannels(p.r.Channel)); err != nil {
				c.degraded(p.r, "history", err)
				seen = map[int64]bool{}
			}
		}
	}
	for _, id := range p.ids {
		seen[id] = true
	}
	return seen
}

// seenIn reads what history says the reader has seen in channels, bounded by
// HistoryTimeout: a hung history costs a refresh that much, then it degrades.
func (c *Center) seenIn(ctx context.Context, user string, channels []int32) (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HistoryTimeout)
	defer cancel()
	return c.ports.History.Seen(ctx, user, channels)
}

// seenChannels are the channels whose history a refresh of channel must not
// repeat: its own and the all-channels feed.
func seenChannels(channel int32) []int32 {
	if channel == feed.ChannelAll {
		return []int32{feed.ChannelAll}
	}
	return []int32{channel, feed.ChannelAll}
}

// page is one refresh's page as it fills.
type page struct {
	c   *Center
	r   feed.Request
	ids []int64
	// seen is what history holds of the reader's channel and channel 0 when
	// this refresh read it already (to seed the seen sets); nil otherwise.
	seen map[int64]bool
	// fellBack says the fallback claim served some of ids: the seen sets
	// lack them until the served log's applier adds them.
	fellBack bool
}

func (p *page) full() bool { return len(p.ids) >= p.r.N }
func (p *page) want() int  { return p.r.N - len(p.ids) }

// add claims ids for the reader and keeps those the claim gives this page.
func (p *page) add(ctx context.Context, ids []int64) {
	claimed, fellBack := p.c.claim(ctx, p.r, ids)
	p.ids = append(p.ids, claimed...)
	p.fellBack = p.fellBack || fellBack && len(claimed) > 0
}

// maxPops bounds the pops of one page: each pop that loses ids to the claim
// asks again, and a queue full of seen ids must not keep a refresh looping.
const maxPops = 4

// fromCache takes what the cache holds for the page, for a refresh under way.
func (p *page) fromCache(ctx context.Context) error {
	t, err := p.c.ports.Cache.Take(ctx, p.r.User, p.r.Channel, 0, p.want())
	if err != nil {
		return err
	}
	p.c.recent.add(p.r.User, p.r.Channel, t.IDs)
	p.ids = append(p.ids, t.IDs...)
	return nil
}

// fromFill runs (or joins) the pass that refills the reader's cache, then takes
// this refresh's own ids from it.
func (p *page) fromFill(ctx context.Context, exclude map[int64]bool) {
	f, err := p.c.fill(ctx, p.r, exclude)
	if err != nil {
		// This caller stopped waiting; the pass goes on for the others.
		p.c.degraded(p.r, "deadline", err)
		return
	}
	if f.stored {
		// Half the time left at most: a cache that took the ranking but
		// hangs now leaves the ranking to be handed out below.
		cctx, cancel := withShare(ctx, startShare)
		err := p.fromCache(cctx)
		cancel()
		if err == nil {
			return
		}
		p.c.degraded(p.r, "cache", err)
	}
	// The cache refused the ranking or cannot give it back: each waiter takes
	// the next ids, so no two get the same ones; the claim still checks them,
	// as every served id, also against what the cache hands out later, and
	// what it refuses the waiter makes up from the next ids.
	size := int64(len(f.ranked))
	for i := 0; i < maxPops && !p.full(); i++ {
		n := int64(p.want())
		end := f.next.Add(n)
		if end-n >= size {
			return
		}
		p.add(ctx, f.ranked[end-n:min(end, size)])
	}
}

// fromPopular fills the page from the channel's hot and new articles the reader
// has not seen (DESIGN §4 "never dark": the full lists, for channel 0 those of
// every channel, which its own lists hold).
func (p *page) fromPopular(ctx context.Context, exclude map[int64]bool) {
	unseen := p.c.popularUnseen(ctx, p.r, p.c.cfg.PopularScan, exclude)
	// What history missed the claim refuses: offer the next ones, a page's
	// worth at a time.
	for i := 0; i < maxPops && len(unseen) > 0 && !p.full(); i++ {
		n := min(p.want(), len(unseen))
		p.add(ctx, unseen[:n])
		unseen = unseen[n:]
	}
}

// claim is the one atomic check every served id passes (DESIGN §4 "no
// repeats"): it returns the ids of ids the reader has not been served in the
// channel nor in channel 0, and records them as served. Seen sets lost with
// Redis or expired are seeded from history first. When the claims are down,
// history filters instead; when history is unreadable too, nothing is served:
// a short page is better than a repeat.
func (c *Center) claim(ctx context.Context, r feed.Request, ids []int64) (claimed []int64, fellBack bool) {
	if len(ids) == 0 {
		return nil, false
	}
	err := c.syncFallback(ctx, r)
	if err == nil {
		claimed, err = c.ports.Claims.Claim(ctx, r.User, r.Channel, ids, c.cfg.SeenTTL)
	}
	// unseeded: the sets answered, but are no copy of history yet.
	unseeded := errors.Is(err, storage.ErrUnseeded)
	if unseeded {
		if _, err = c.seed(ctx, r); err == nil {
			claimed, err = c.ports.Claims.Claim(ctx, r.User, r.Channel, ids, c.cfg.SeenTTL)
		}
	}
	if err == nil {
		c.recent.add(r.User, r.Channel, claimed)
		return claimed, false
	}
	c.degraded(r, "claims", err)
	seen, herr := c.seenIn(ctx, r.User, seenChannels(r.Channel))
	if herr != nil {
		// Nothing can tell what the reader has seen: serve nothing rather
		// than risk a repeat.
		c.degraded(r, "history", herr)
		return nil, true
	}
	if unseeded {
		// The sets answer but could not be seeded: history (read now) and
		// recent filter, and the sets still claim what is left, atomically
		// among all replicas, and keep it for the seed that comes later. A
		// claim this process alone remembered would be served again by a
		// replica the reader's next refresh reaches first.
		claimed, perr := c.ports.Claims.ClaimProvisional(ctx, r.User, r.Channel, c.recent.unseen(r.User, r.Channel, seen, ids), c.cfg.SeenTTL)
		if perr == nil {
			c.recent.add(r.User, r.Channel, claimed)
			return claimed, false
		}
		c.degraded(r, "claims", perr)
	}
	return c.recent.claim(r.User, r.Channel, seen, ids), true
}

// syncFallback adds to the reader's seen sets what the fallback claim served
// while they were unreachable: a set that outlived the outage would otherwise
// let those ids through.
func (c *Center) syncFallback(ctx context.Context, r feed.Request) error {
	for _, ch := range seenChannels(r.Channel) {
		if err := c.syncUnsynced(ctx, r.User, ch, c.recent.takeUnsynced(r.User, ch)); err != nil {
			return fmt.Errorf("add what was served while the seen sets were down: %w", err)
		}
	}
	return nil
}

// syncUnsynced adds ids, served by the fallback claim, to the reader's seen
// set, seeded or not (a seed adds history to them later); until that worked
// recent keeps them.
func (c *Center) syncUnsynced(ctx context.Context, user string, channel int32, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := c.ports.Claims.ClaimProvisional(ctx, user, channel, ids, c.cfg.SeenTTL); err != nil {
		c.recent.putBack(user, channel, ids)
		return err
	}
	return nil
}

// fallbackSyncEvery is how often SyncFallback retries: what the fallback
// claim served reaches the seen sets this soon after they answer again, not
// only at the reader's next request to this process. A reader whose next
// request reaches another replica (this one died, or the ring moved) would
// otherwise meet a seen set without those ids until the served log's seen
// applier brought them, which the log's own outage can delay.
const fallbackSyncEvery = 250 * time.Millisecond

// maxSyncsPerRound bounds the claims of one SyncFallback round, so that the
// many readers a long outage leaves unsynced cost the seen sets a bounded
// rate of calls.
const maxSyncsPerRound = 256

// SyncFallback adds what the fallback claim served to the readers' seen
// sets in the background until ctx ends, each round bounded by
// HistoryTimeout; what fails is kept for the next round.
func (c *Center) SyncFallback(ctx context.Context) error {
	tick := time.NewTicker(fallbackSyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		failed := false
		for rc, ids := range c.recent.takeSomeUnsynced(maxSyncsPerRound) {
			if failed {
				c.recent.putBack(rc.user, rc.channel, ids)
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, c.cfg.HistoryTimeout)
			// What fails is kept for the next round; the seen sets failing
			// end this one.
			failed = c.syncUnsynced(sctx, rc.user, rc.channel, ids) != nil
			cancel()
		}
	}
}

// seed copies the reader's history of each channel a claim checks into their
// seen sets, with what this process served them lately: history may lack it
// for as long as the served log's applier lags.
func (c *Center) seed(ctx context.Context, r feed.Request) (map[int64]bool, error) {
	all := map[int64]bool{}
	for _, ch := range seenChannels(r.Channel) {
		seen, err := c.seenIn(ctx, r.User, []int32{ch})
		if err != nil {
			return nil, fmt.Errorf("read history to seed seen set: %w", err)
		}
		hctx, cancel := context.WithTimeout(ctx, c.cfg.HistoryTimeout)
		last, err := c.ports.History.Newest(hctx, r.User, ch)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("read history to seed seen set: %w", err)
		}
		ids := c.recent.served(r.User, ch)
		for id := range seen {
			ids = append(ids, id)
			all[id] = true
		}
		if err := c.ports.Claims.Seed(ctx, r.User, ch, ids, last, c.cfg.SeenTTL); err != nil {
			return nil, fmt.Errorf("seed seen set: %w", err)
		}
	}
	return all, nil
}

// fill is the outcome of one shared recall + sort pass.
type fill struct {
	ranked []int64
	// stored is false when the cache refused the ranking: then the waiters
	// share ranked out directly, each taking the next ids (next).
	stored bool
	next   atomic.Int64
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
		ranked, read := c.ranking(pctx, r, exclude)
		f := &fill{ranked: ranked}
		if len(f.ranked) == 0 {
			return f, nil
		}
		if err := c.ports.Cache.Store(pctx, r.User, r.Channel, f.ranked); err != nil {
			// The recall runs stay: the next refresh is offered them again.
			c.degraded(r, "cache", err)
			return f, nil
		}
		f.stored = true
		if err := c.ports.Recall.Consume(pctx, r.User, r.Channel, read); err != nil {
			// Harmless: the runs are offered again and their served ids
			// refused by the claims.
			c.log.Warn("recall runs not consumed", zap.String("user", r.User), zap.Int32("channel", r.Channel), zap.Error(err))
		}
		return f, nil
	})
	// Waiting takes at most rankingShare of what the refresh has left: the
	// rest is the popular fallback's if the pass is late.
	wctx, cancel := withShare(ctx, rankingShare)
	defer cancel()
	select {
	case res := <-ch:
		return res.Val.(*fill), nil
	case <-wctx.Done():
		return nil, wctx.Err()
	}
}

// rankingShare is the part of the pass's deadline recall and sort may take: the
// rest is left for the popular fallback and the store (DESIGN §6: a hop's
// deadline leaves room for its fallback).
const rankingShare = 0.75

// ranking recalls, drops what the reader has seen, ranks and mixes, then tops
// the ranking up with popular articles the reader has not seen when recall
// fails or runs short (DESIGN §4: never dark). It also returns the recall runs
// it read.
func (c *Center) ranking(ctx context.Context, r feed.Request, exclude map[int64]bool) ([]int64, []feed.ReadRuns) {
	rctx, cancel := withShare(ctx, rankingShare)
	ranked, read := c.recallAndRank(rctx, r, exclude)
	cancel()
	if len(ranked) >= c.cfg.PopularNum {
		return ranked, read
	}
	unseen := make(map[int64]bool, len(exclude)+len(ranked))
	for id := range exclude {
		unseen[id] = true
	}
	for _, id := range ranked {
		unseen[id] = true
	}
	return append(ranked, c.popularUnseen(ctx, r, c.cfg.PopularNum-len(ranked), unseen)...), read
}

// recallAndRank recalls, drops what the reader has seen, ranks (recall order
// when sort fails) and mixes in new and hot articles at the strategy's ratios.
func (c *Center) recallAndRank(ctx context.Context, r feed.Request, exclude map[int64]bool) ([]int64, []feed.ReadRuns) {
	cands, read, err := c.ports.Recall.Recall(ctx, r.User, r.Channel, r.Strategy.Recall)
	if err != nil {
		c.degraded(r, "recall", err)
		return nil, nil
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
		return nil, read
	}
	c.metrics.ranked.WithLabelValues(r.Strategy.Name).Add(float64(len(ids)))
	ranked, err := c.ports.Sort.Rank(ctx, r.User, r.Channel, r.Strategy.Sort, ids)
	if err != nil {
		c.degraded(r, "sort", err)
		ranked = ids
	}
	return mix(ranked, fresh, hot, r.Strategy.NewRatio, r.Strategy.HotRatio), read
}

// popularUnseen is up to n of the channel's hot and new articles not in seen,
// read from at most scan of each list.
func (c *Center) popularUnseen(ctx context.Context, r feed.Request, n int, seen map[int64]bool) []int64 {
	if n <= 0 {
		return nil
	}
	// Enough to get past the seen ids: they are in the lists too.
	scan := min(n+len(seen), c.cfg.PopularScan)
	popular, err := c.ports.Popular.Popular(ctx, r.Channel, scan)
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

// record makes the served ids durable before the page is answered (DESIGN §8
// "served ids"): the served-log entry, which the history applier turns into a
// history version even if history is down now or this process dies right
// after answering. Only when the log fails is history written directly,
// bounded by HistoryTimeout; history merges writes at one stamp, so
// the applier's write of an entry that also reached the log changes nothing.
// Only when both fail is the refresh an error: nothing would remember the page
// (the claims still keep its ids from coming back).
func (c *Center) record(ctx context.Context, r feed.Request, ids []int64, claimed bool) error {
	if len(ids) == 0 {
		return nil
	}
	// The ids are claimed: unrecorded, they are lost to the reader. The log
	// (Kafka, or the local spill when Kafka is slow or down) gets all the
	// time left but the answer's.
	lctx, cancel := withReserve(ctx, answerMargin)
	lerr := c.ports.Served.Append(lctx, r.User, r.Channel, r.Timestamp, ids, claimed)
	cancel()
	if lerr == nil {
		c.recent.recorded(r.User, r.Channel, r.Timestamp, ids)
		return nil
	}
	c.degraded(r, "log", lerr)
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.HistoryTimeout)
	herr := c.ports.History.Record(hctx, r.User, r.Channel, r.Timestamp, ids)
	cancel()
	if herr == nil {
		return nil
	}
	c.metrics.historyFailed.Inc()
	c.log.Error("served ids not recorded: served log and history both failed", zap.String("user", r.User), zap.Int32("channel", r.Channel),
		zap.String("strategy", r.Strategy.Name), zap.Int64("time_stamp", r.Timestamp), zap.Int64s("ids", ids), zap.NamedError("log_error", lerr), zap.Error(herr))
	return fmt.Errorf("record served ids: %w", errors.Join(lerr, herr))
}

func (c *Center) degraded(r feed.Request, cause string, err error) {
	c.metrics.degradations.WithLabelValues(cause).Inc()
	c.log.Warn("feed degraded", zap.String("cause", cause), zap.String("user", r.User), zap.Int32("channel", r.Channel),
		zap.String("strategy", r.Strategy.Name), zap.Error(err))
}

// withShare bounds ctx to share of the time it has left; a ctx without a
// deadline is left as it is.
func withShare(ctx context.Context, share float64) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Duration(float64(time.Until(deadline))*share)))
}

// withReserve ends ctx reserve before its deadline, keeping that much for
// what comes after, but never more than half the time left: a reserve longer
// than the caller's deadline must not leave the refresh nothing. A ctx
// without a deadline is left as it is.
func withReserve(ctx context.Context, reserve time.Duration) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline.Add(-min(reserve, time.Until(deadline)/2)))
}
