// Package nearline closes the loop of DESIGN.md §8: it consumes the action log
// (track.topic, click-trace by default) and turns what readers did into what
// the feed reads next:
//
//   - the hot lists ch:{ch}:hot of the article's channel and of channel 0,
//     +1 per click, collect or share, decayed with a half-life (Cool), so hot
//     means recent;
//   - online recall (source 102): the similar articles of what a reader
//     clicked, collected or shared, minus their history, as a cb_recall
//     online:{ch} run, and the best few of them put at the head of the
//     reader's cached queue, so the very next page shows them;
//   - the reader's interest weights (ctr_feature_user), by the build's own
//     definition (model.Profile), so ranking reacts to the click;
//   - per-strategy, per-reader counters of exposures and clicks for the A/B
//     readout (§9), and reco_actions_total{action,strategy}.
//
// Delivery is at least once. The hot lists and the counters are exact under
// redelivery: each write carries the action's log position and the store
// skips what it applied before (storage.Mark). Online recall is idempotent by
// construction (a run's stamp is the action's time, so a redelivered action
// rewrites the same run). A reader's weights are the one approximate part: a
// batch redelivered after a crash counts its clicks into the profile again.
//
// The log is keyed by reader, so adding consumers to the group spreads readers
// over them, and one reader's actions are applied in order by one consumer.
package nearline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/toutiao-reco/toutiao-reco/pkg/actions"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/memo"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/services/track"
)

// The consumer groups of the action log are nearline.group (the counts: hot
// lists, A/B counters; Redis only, exact) and that name + readersSuffix (the
// readers' updates: online recall, the boosted queue, weights; a few HBase
// round trips per reader). Each keeps its own position, so a burst that the
// readers' updates take a while to catch up with never holds the hot lists
// and the counters back.
const readersSuffix = "-readers"

// Config tunes the loop.
type Config struct {
	// Group is the consumer group of the counts; the readers' updates use
	// Group + "-readers". Deployments sharing a Kafka cluster and topic use
	// groups of their own.
	Group string `yaml:"group"`
	// HotHalfLife is the half-life of a hot list's scores: an interaction
	// counts half as much after it.
	HotHalfLife time.Duration `yaml:"hot_half_life"`
	// CoolInterval is how often the hot lists are decayed.
	CoolInterval time.Duration `yaml:"cool_interval"`
	// OnlineSimilar is how many similar articles of an engaged article
	// online recall considers.
	OnlineSimilar int `yaml:"online_similar"`
	// Boost is how many of them go to the head of the reader's cached queue
	// (0: none; they then wait for the next ranking).
	Boost int `yaml:"boost"`
	// BoostTTL is the expiry the boosted queue gets, as a cache store gives.
	BoostTTL time.Duration `yaml:"boost_ttl"`
	// Parallel bounds the readers of one batch processed at once.
	Parallel int `yaml:"parallel"`
	// Counts and Readers say which parts this process runs: a deployment
	// can run the counts (cheap, Redis only) and the readers' updates (HBase
	// round trips) in processes of their own, each scaled to its load.
	Counts  bool `yaml:"counts"`
	Readers bool `yaml:"readers"`
	// ReadersRate caps the engaged actions per second the readers' part
	// applies (0: no cap), so that a burst of clicks cannot take the HBase
	// the feed reads from; the part then lags and catches up after it.
	ReadersRate int `yaml:"readers_rate"`
}

// Validate checks the durations and sizes.
func (c Config) Validate() error {
	if c.Group == "" {
		return errors.New("nearline.group is required")
	}
	if c.HotHalfLife <= 0 || c.CoolInterval <= 0 || c.BoostTTL <= 0 {
		return fmt.Errorf("nearline.hot_half_life, cool_interval and boost_ttl must be positive, got %v, %v and %v", c.HotHalfLife, c.CoolInterval, c.BoostTTL)
	}
	if c.OnlineSimilar < 1 || c.OnlineSimilar > 1000 {
		return fmt.Errorf("nearline.online_similar must be 1..1000, got %d", c.OnlineSimilar)
	}
	if c.Boost < 0 || c.Boost > c.OnlineSimilar {
		return fmt.Errorf("nearline.boost must be 0..online_similar (%d), got %d", c.OnlineSimilar, c.Boost)
	}
	if c.Parallel < 1 || c.Parallel > 1024 {
		return fmt.Errorf("nearline.parallel must be 1..1024, got %d", c.Parallel)
	}
	if !c.Counts && !c.Readers {
		return errors.New("nearline.counts and nearline.readers are both false: the process would apply nothing")
	}
	if c.ReadersRate < 0 {
		return fmt.Errorf("nearline.readers_rate must be 0 (no cap) or positive, got %d", c.ReadersRate)
	}
	return nil
}

// Stores are what nearline reads and writes.
type Stores struct {
	Log eventlog.Log
	// Sets holds the hot lists, the counters and tier 1 of the cache.
	Sets storage.Sets
	// Tables holds similarity, history, features and the recall sets.
	Tables storage.Tables
}

// Nearline applies the action log.
type Nearline struct {
	cfg    Config
	track  track.Config
	loc    *time.Location
	st     Stores
	log    *zap.Logger
	now    func() time.Time
	m      metrics
	labels *strategyLabels
	// similar and profiles spare the tables a read per action (memo.go).
	similar  *memo.Memo[int64, []storage.Scored]
	features *memo.Memo[int64, []float64]
	profiles *memo.Memo[string, model.Profile]
}

// How long memos trust what they read: similar articles change with a build
// or a publish; a profile is this process's own writing, unless another
// consumer (a stream not keyed by reader) or a build wrote it meanwhile.
const (
	similarTTL = time.Minute
	profileTTL = 10 * time.Minute
	memoSize   = 200000
	// featuresSize bounds the memo of article features, 111 floats each.
	featuresSize = 50000
)

type metrics struct {
	actions *prometheus.CounterVec
	bad     prometheus.Counter
	lines   *prometheus.CounterVec
	lag     *prometheus.HistogramVec
}

// New returns the nearline job over st, its metrics registered in reg. trk
// says how action lines are read (the same as at the door).
func New(cfg Config, trk track.Config, st Stores, log *zap.Logger, reg prometheus.Registerer) (*Nearline, error) {
	loc, err := trk.Location()
	if err != nil {
		return nil, err
	}
	m := metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "actions_total",
			Help:      "Readers' actions nearline applied, by action and strategy (an exposure counts the articles shown, so clicks/exposures is the CTR; a batch delivered again after a crash counts again here, not in the A/B counters); strategies past the first 100 seen are counted as \"other\".",
		}, []string{"action", "strategy"}),
		bad: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "nearline_bad_lines_total",
			Help:      "Lines of the action log nearline skipped as malformed (produced to click-trace without passing TrackService).",
		}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: server.Namespace,
			Name:      "nearline_lines_total",
			Help:      "Action lines nearline applied, by part (counts: every well-formed line, to the hot lists and A/B counters; readers: clicks, collects and shares, to online recall, queues and weights); a batch delivered again counts again.",
		}, []string{"part"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: server.Namespace,
			Name:      "nearline_action_age_seconds",
			Help:      "Age of an applied action, from its actionTime to the end of the batch that applied it, by part (counts: hot lists and A/B counters; readers: online recall, queues, weights).",
			Buckets:   []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600},
		}, []string{"part"}),
	}
	for _, c := range []prometheus.Collector{m.actions, m.bad, m.lines, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register nearline metrics: %w", err)
		}
	}
	return &Nearline{cfg: cfg, track: trk, loc: loc, st: st, log: log, now: time.Now, m: m, labels: newStrategyLabels(100),
		similar: memo.New[int64, []storage.Scored](similarTTL, memoSize), features: memo.New[int64, []float64](similarTTL, featuresSize),
		profiles: memo.New[string, model.Profile](profileTTL, memoSize)}, nil
}

// Run applies the action log until ctx ends, as the groups of the parts this
// process runs.
func (n *Nearline) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if n.cfg.Counts {
		g.Go(func() error { return n.st.Log.Consume(gctx, n.track.Topic, n.cfg.Group, n.ApplyCounts) })
	}
	if n.cfg.Readers {
		g.Go(func() error {
			return n.st.Log.Consume(gctx, n.track.Topic, n.cfg.Group+readersSuffix, func(ctx context.Context, batch []eventlog.Entry) error {
				start := time.Now()
				applied, err := n.applyReaders(ctx, batch)
				if err == nil {
					err = n.pace(ctx, applied, time.Since(start))
				}
				return err
			})
		})
	}
	return g.Wait()
}

// pace waits out what applying n engaged actions should have taken at
// nearline.readers_rate. The batch is committed after the wait, so a
// process stopped meanwhile applies it again, to the same values.
func (n *Nearline) pace(ctx context.Context, applied int, took time.Duration) error {
	if n.cfg.ReadersRate == 0 || applied == 0 {
		return nil
	}
	due := time.Duration(float64(applied) / float64(n.cfg.ReadersRate) * float64(time.Second))
	if due <= took {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(due - took):
		return nil
	}
}

// Cool decays every channel's hot list each CoolInterval until ctx ends. Every
// nearline process runs it: the store decays a list once per elapsed time
// however many call.
func (n *Nearline) Cool(ctx context.Context) error {
	t := time.NewTicker(n.cfg.CoolInterval)
	defer t.Stop()
	for {
		for ch := range feed.NumChannels {
			cctx, cancel := context.WithTimeout(ctx, n.cfg.CoolInterval)
			err := n.st.Sets.Cool(cctx, ch, n.now(), n.cfg.HotHalfLife)
			cancel()
			if err != nil && ctx.Err() == nil {
				n.log.Warn("cooling a hot list failed; next round retries", zap.Int32("channel", ch), zap.Error(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// action is one decoded line with its log position.
type action struct {
	actions.Action
	mark storage.Mark
}

// Apply applies one batch of the action log as both groups do.
func (n *Nearline) Apply(ctx context.Context, batch []eventlog.Entry) error {
	if err := n.ApplyCounts(ctx, batch); err != nil {
		return err
	}
	return n.ApplyReaders(ctx, batch)
}

// ApplyCounts adds a batch to the hot lists and the A/B counters. A store
// error fails the batch, which the log delivers again: what was applied of it
// is skipped then.
func (n *Nearline) ApplyCounts(ctx context.Context, batch []eventlog.Entry) error {
	all := n.decode(batch, false)
	if len(all) == 0 {
		return nil
	}
	features, err := n.articleFeatures(ctx, all)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.heat(gctx, all, features) })
	g.Go(func() error { return n.count(gctx, all) })
	if err := g.Wait(); err != nil {
		return err
	}
	for _, a := range all {
		k := float64(1)
		if a.Kind == actions.Exposure {
			k = float64(len(a.Articles))
		}
		n.m.actions.WithLabelValues(string(a.Kind), n.labels.of(a.Strategy)).Add(k)
	}
	n.observe("counts", all)
	return nil
}

// ApplyReaders updates, for the engaged actions of a batch, the readers'
// online recall, cached queues and weights. A store error fails the batch,
// which the log delivers again: online recall is rewritten to the same runs.
func (n *Nearline) ApplyReaders(ctx context.Context, batch []eventlog.Entry) error {
	_, err := n.applyReaders(ctx, batch)
	return err
}

// applyReaders is ApplyReaders, saying how many engaged actions it applied.
func (n *Nearline) applyReaders(ctx context.Context, batch []eventlog.Entry) (int, error) {
	all := n.decode(batch, true)
	if len(all) == 0 {
		return 0, nil
	}
	features, err := n.articleFeatures(ctx, all)
	if err != nil {
		return 0, err
	}
	if err := n.readers(ctx, all, features); err != nil {
		return 0, err
	}
	n.observe("readers", all)
	return len(all), nil
}

// decode parses a batch; engaged keeps only clicks, collects and shares. A
// malformed line is counted and logged by the counting group only, so each
// is reported once. Decoding is most of what the counts cost, so a large
// batch is decoded in chunks on every core, in order.
func (n *Nearline) decode(batch []eventlog.Entry, engaged bool) []action {
	now := n.now()
	chunks := min(runtime.GOMAXPROCS(0), max(1, len(batch)/decodeChunk))
	parts := make([][]action, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		lo, hi := c*len(batch)/chunks, (c+1)*len(batch)/chunks
		wg.Go(func() {
			for _, e := range batch[lo:hi] {
				a, err := actions.Parse(e.Value, n.loc, now)
				if err != nil {
					if !engaged {
						n.m.bad.Inc()
						n.log.Warn("malformed action line skipped", zap.Int32("partition", e.Partition), zap.Int64("offset", e.Offset), zap.Error(err))
					}
					continue
				}
				if !engaged || a.Kind.Engaged() {
					parts[c] = append(parts[c], action{Action: a, mark: storage.Mark{Log: e.Topic, Partition: e.Partition, Offset: e.Offset}})
				}
			}
		})
	}
	wg.Wait()
	return slices.Concat(parts...)
}

// decodeChunk is the fewest lines worth a goroutine of their own.
const decodeChunk = 100

// observe counts the actions part applied and records how old they are.
func (n *Nearline) observe(part string, all []action) {
	n.m.lines.WithLabelValues(part).Add(float64(len(all)))
	end := n.now()
	h := n.m.lag.WithLabelValues(part)
	for _, a := range all {
		if !a.Time.IsZero() {
			h.Observe(end.Sub(a.Time).Seconds())
		}
	}
}

// articleFeatures reads the features of every engaged article: their channel
// (feature 0) places them in a hot list, their topic feeds the profile.
func (n *Nearline) articleFeatures(ctx context.Context, all []action) (map[int64][]float64, error) {
	var ids []int64
	out := map[int64][]float64{}
	for _, a := range all {
		id := a.Articles[0]
		if _, done := out[id]; done || !a.Kind.Engaged() {
			continue
		}
		if f, ok := n.features.Get(id); ok {
			out[id] = f
			continue
		}
		out[id] = nil
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return out, nil
	}
	f, err := n.st.Tables.ArticleVectors(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read features of %d engaged articles: %w", len(ids), err)
	}
	for _, id := range ids {
		out[id] = f[id] // nil for an article without features: remembered too
		n.features.Put(id, f[id])
	}
	return out, nil
}

// channelOf is the article's own channel, from its features; when they are
// unknown (an article no build or publish described), the channel the reader
// was in, or -1.
func channelOf(features map[int64][]float64, a action) int32 {
	if f := features[a.Articles[0]]; len(f) > 0 && feed.ValidChannel(int32(f[0])) {
		return int32(f[0])
	}
	return a.Channel
}

// heat adds the engaged actions to the hot lists.
func (n *Nearline) heat(ctx context.Context, all []action, features map[int64][]float64) error {
	var heats []storage.Heat
	for _, a := range all {
		if !a.Kind.Engaged() {
			continue
		}
		heats = append(heats, storage.Heat{Mark: a.mark, Channel: feed.ChannelAll, Article: a.Articles[0], Weight: 1})
		if ch := channelOf(features, a); ch > feed.ChannelAll {
			heats = append(heats, storage.Heat{Mark: a.mark, Channel: ch, Article: a.Articles[0], Weight: 1})
		}
	}
	if len(heats) == 0 {
		return nil
	}
	if _, err := n.st.Sets.AddHeat(ctx, heats); err != nil {
		return fmt.Errorf("heat the hot lists: %w", err)
	}
	return nil
}

// count adds exposures and clicks to the A/B counters.
func (n *Nearline) count(ctx context.Context, all []action) error {
	var exps []storage.Exposure
	for _, a := range all {
		switch a.Kind {
		case actions.Exposure:
			exps = append(exps, storage.Exposure{Mark: a.mark, Strategy: a.Strategy, User: a.User, Exposures: int64(len(a.Articles))})
		case actions.Click:
			exps = append(exps, storage.Exposure{Mark: a.mark, Strategy: a.Strategy, User: a.User, Clicks: 1})
		}
	}
	if len(exps) > 0 {
		if _, err := n.st.Sets.AddExposures(ctx, exps); err != nil {
			return fmt.Errorf("count exposures and clicks: %w", err)
		}
	}
	return nil
}

// readers updates, per reader with engaged actions, their online recall,
// cached queue and weights, Parallel readers at a time; the recall runs and
// weights of the whole batch are written in one Load.
func (n *Nearline) readers(ctx context.Context, all []action, features map[int64][]float64) error {
	byUser := map[string][]action{}
	var users []string
	for _, a := range all {
		if !a.Kind.Engaged() {
			continue
		}
		if byUser[a.User] == nil {
			users = append(users, a.User)
		}
		byUser[a.User] = append(byUser[a.User], a)
	}
	var (
		mu       sync.Mutex
		records  []storage.Record
		profiles = map[string]model.Profile{}
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n.cfg.Parallel)
	for _, u := range users {
		g.Go(func() error {
			runs, err := n.onlineRecall(gctx, u, byUser[u], features)
			if err != nil {
				return err
			}
			weights, p, err := n.profile(gctx, u, byUser[u], features)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			records = append(append(records, runs...), weights...)
			if weights != nil {
				profiles[u] = p
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(records) == 0 {
		return nil
	}
	if err := n.st.Tables.Load(ctx, records); err != nil {
		for u := range profiles {
			n.profiles.Forget(u) // what the store holds is unknown now
		}
		return fmt.Errorf("write online recall and weights of %d readers: %w", len(users), err)
	}
	for u, p := range profiles {
		n.profiles.Put(u, p)
	}
	return nil
}

// onlineRecall returns, per channel the reader engaged in, the similar
// articles of what they engaged with that they have not seen, as one run
// stamped with the newest action's time, and boosts the best few.
func (n *Nearline) onlineRecall(ctx context.Context, user string, acts []action, features map[int64][]float64) ([]storage.Record, error) {
	type run struct {
		stamp int64
		ids   []int64
		dedup map[int64]bool
	}
	runs := map[int32]*run{}
	var order []int32
	for _, a := range acts {
		ch := a.Channel
		if ch < 0 {
			ch = channelOf(features, a)
		}
		if ch < 0 {
			continue // an unknown article in an unknown channel: nothing to recall
		}
		similar, err := n.similarOf(ctx, a.Articles[0])
		if err != nil {
			return nil, err
		}
		if len(similar) == 0 {
			continue
		}
		r := runs[ch]
		if r == nil {
			r = &run{dedup: map[int64]bool{a.Articles[0]: true}}
			runs[ch] = r
			order = append(order, ch)
		}
		r.dedup[a.Articles[0]] = true
		r.stamp = max(r.stamp, stampOf(a, n.now()))
		for _, s := range similar {
			if !r.dedup[s.ID] {
				r.dedup[s.ID] = true
				r.ids = append(r.ids, s.ID)
			}
		}
	}
	var records []storage.Record
	for _, ch := range order {
		r := runs[ch]
		seen, err := n.st.Tables.Seen(ctx, user, seenChannels(ch))
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", user, err)
		}
		ids := r.ids[:0]
		for _, id := range r.ids {
			if !seen[id] {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		records = append(records, storage.RecallRun{User: user, Channel: ch, Source: feed.SourceOnline, Timestamp: r.stamp, IDs: ids})
		if n.cfg.Boost > 0 {
			if err := n.st.Sets.Boost(ctx, user, ch, ids[:min(len(ids), n.cfg.Boost)], n.cfg.BoostTTL); err != nil {
				return nil, fmt.Errorf("boost %s's queue of channel %d: %w", user, ch, err)
			}
		}
	}
	return records, nil
}

// similarOf is article's similar articles (none for an article the store
// does not know), through the memo.
func (n *Nearline) similarOf(ctx context.Context, article int64) ([]storage.Scored, error) {
	if s, ok := n.similar.Get(article); ok {
		return s, nil
	}
	s, err := n.st.Tables.Similar(ctx, article, n.cfg.OnlineSimilar)
	if errors.Is(err, storage.ErrUnknownArticle) {
		s, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("similar articles of %d: %w", article, err)
	}
	n.similar.Put(article, s)
	return s, nil
}

// stampOf is the action's time in milliseconds: a bare track string has none,
// and its run is stamped when applied.
func stampOf(a action, now time.Time) int64 {
	if a.Time.IsZero() {
		return now.UnixMilli()
	}
	return a.Time.UnixMilli()
}

// seenChannels is what the feed of ch never repeats: ch and channel 0.
func seenChannels(ch int32) []int32 {
	if ch == feed.ChannelAll {
		return []int32{feed.ChannelAll}
	}
	return []int32{ch, feed.ChannelAll}
}

// profile returns the reader's weights with their clicks added, as the build
// would have computed them, and the profile they come from; none when the
// actions hold no click on an article with features.
func (n *Nearline) profile(ctx context.Context, user string, acts []action, features map[int64][]float64) ([]storage.Record, model.Profile, error) {
	var clicks []action
	for _, a := range acts {
		if f := features[a.Articles[0]]; a.Kind == actions.Click && len(f) == model.ArticleFeatureLen && feed.ValidChannel(int32(f[0])) && f[0] != float64(feed.ChannelAll) {
			clicks = append(clicks, a)
		}
	}
	if len(clicks) == 0 {
		return nil, model.Profile{}, nil
	}
	p, ok := n.profiles.Get(user)
	if !ok {
		stored, err := n.st.Tables.UserWeights(ctx, user, allChannels)
		if err != nil {
			return nil, model.Profile{}, fmt.Errorf("weights of %s: %w", user, err)
		}
		p = model.ProfileOf(stored)
	}
	p = p.Clone()
	for _, a := range clicks {
		f := features[a.Articles[0]]
		p.Click(int32(f[0]), model.TopicOf(f))
	}
	var records []storage.Record
	for _, ch := range allChannels {
		w := make([]float64, model.UserWeightsLen)
		if p.Weights(ch, w) {
			records = append(records, storage.UserWeights{User: user, Channel: ch, Weights: w})
		}
	}
	return records, p, nil
}

// allChannels is every channel id: a click moves the interest weight of
// every channel the reader has.
var allChannels = func() []int32 {
	all := make([]int32, feed.NumChannels)
	for i := range all {
		all[i] = int32(i)
	}
	return all
}()

// strategyLabels bounds the strategy label of reco_actions_total: strategy
// names come from the lines, and a label per arbitrary string would grow the
// metrics without bound.
type strategyLabels struct {
	max  int
	mu   sync.Mutex
	seen map[string]bool
}

func newStrategyLabels(max int) *strategyLabels {
	return &strategyLabels{max: max, seen: map[string]bool{}}
}

func (l *strategyLabels) of(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[s] {
		return s
	}
	if len(l.seen) >= l.max {
		return "other"
	}
	l.seen[s] = true
	return s
}
