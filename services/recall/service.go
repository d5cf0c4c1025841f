package recall

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/memo"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Config bounds what each source contributes.
type Config struct {
	// HotNum is how many of the channel's hottest articles source 104 offers.
	HotNum int `yaml:"hot_num"`
	// NewNum is how many of the channel's newest articles source 103 offers.
	NewNum int `yaml:"new_num"`
	// SourceLimit caps the candidates of each recall set source (100–102).
	SourceLimit int `yaml:"source_limit"`
	// SimilarCacheTTL is how long article_recommend's answers are kept in
	// memory: similar articles change with a build or a publish, and an
	// in-process hit costs no store round trip. SimilarCacheSize bounds the
	// answers kept.
	SimilarCacheTTL  time.Duration `yaml:"similar_cache_ttl"`
	SimilarCacheSize int           `yaml:"similar_cache_size"`
}

// Validate checks the limits.
func (c Config) Validate() error {
	if c.HotNum < 1 || c.NewNum < 1 || c.SourceLimit < 1 || c.SimilarCacheSize < 1 {
		return fmt.Errorf("recall.hot_num, recall.new_num, recall.source_limit and recall.similar_cache_size must be at least 1, got %d, %d, %d, %d", c.HotNum, c.NewNum, c.SourceLimit, c.SimilarCacheSize)
	}
	if c.SimilarCacheTTL <= 0 {
		return fmt.Errorf("recall.similar_cache_ttl must be positive, got %v", c.SimilarCacheTTL)
	}
	return nil
}

// ErrUnknownSource is returned for a source recall cannot read.
var ErrUnknownSource = errors.New("unknown recall source")

// Stores are the ports recall reads.
type Stores struct {
	Sets       storage.RecallSets
	Lists      storage.ChannelLists
	Similarity storage.Similarity
}

// Recall reads the recall sources.
type Recall struct {
	cfg        Config
	stores     Stores
	log        *zap.Logger
	candidates *prometheus.HistogramVec
	similar    *memo.Memo[similarKey, similarAnswer]
}

// similarKey is one article_recommend question; similarAnswer its answer,
// an unknown article included.
type similarKey struct {
	article int64
	n       int
}

type similarAnswer struct {
	ids     []int64
	unknown bool
}

// New returns a recall over stores, with its metrics registered in reg.
func New(cfg Config, stores Stores, log *zap.Logger, reg prometheus.Registerer) (*Recall, error) {
	candidates := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: server.Namespace,
		Name:      "recall_candidates",
		Help:      "Candidates one recall call got from each source, before merging.",
		Buckets:   []float64{0, 1, 5, 10, 25, 50, 100, 200, 500, 1000},
	}, []string{"source"})
	if err := reg.Register(candidates); err != nil {
		return nil, fmt.Errorf("register recall metrics: %w", err)
	}
	return &Recall{cfg: cfg, stores: stores, log: log, candidates: candidates, similar: memo.New[similarKey, similarAnswer](cfg.SimilarCacheTTL, cfg.SimilarCacheSize)}, nil
}

// channelList is the channel list behind sources 103 and 104.
func channelList(s feed.Source) (storage.ChannelList, bool) {
	switch s {
	case feed.SourceNew:
		return storage.NewList, true
	case feed.SourceHot:
		return storage.HotList, true
	}
	return 0, false
}

// Recall merges the candidates of sources for user in channel, in source order,
// without duplicates, and names the recall runs it read: the caller consumes
// them (Consume) once the candidates are safely queued, so candidates of a
// refresh whose queueing failed are offered again. A failing source is skipped
// and reported in the error; the error is nil only if all sources were read.
func (r *Recall) Recall(ctx context.Context, user string, channel int32, sources []feed.Source) ([]feed.Candidate, []feed.ReadRuns, error) {
	var sets []feed.Source
	for _, s := range sources {
		if !s.FeedSource() {
			return nil, nil, fmt.Errorf("%w: %d", ErrUnknownSource, s)
		}
		if _, ok := channelList(s); !ok {
			sets = append(sets, s)
		}
	}

	lists := make([][]int64, len(sources))
	errs := make([]error, len(sources))
	var runs map[feed.Source][]storage.Version
	var runsErr error
	var g errgroup.Group
	if len(sets) > 0 {
		g.Go(func() error {
			runs, runsErr = r.stores.Sets.Read(ctx, user, channel, sets)
			return nil
		})
	}
	for i, s := range sources {
		list, ok := channelList(s)
		if !ok {
			continue
		}
		n := r.cfg.NewNum
		if list == storage.HotList {
			n = r.cfg.HotNum
		}
		g.Go(func() error {
			top, err := r.stores.Lists.Top(ctx, list, channel, n)
			lists[i], errs[i] = ids(top), err
			return nil
		})
	}
	_ = g.Wait()

	var read []feed.ReadRuns
	for i, s := range sources {
		if _, ok := channelList(s); ok {
			continue
		}
		if runsErr != nil {
			errs[i] = runsErr
			continue
		}
		versions := runs[s]
		lists[i] = union(versions, r.cfg.SourceLimit)
		if len(versions) > 0 {
			read = append(read, feed.ReadRuns{Source: s, Through: versions[0].Timestamp})
		}
	}
	cands, err := r.merge(sources, lists, errs)
	return cands, read, err
}

// Consume deletes the recall runs read names, each up to its timestamp: runs
// an offline or online job wrote since survive for the next refresh (the
// original deleted everything after reading, losing those).
func (r *Recall) Consume(ctx context.Context, user string, channel int32, read []feed.ReadRuns) error {
	var errs []error
	for _, rr := range read {
		if err := r.stores.Sets.Consume(ctx, user, channel, rr.Source, rr.Through); err != nil {
			errs = append(errs, fmt.Errorf("consume source %d: %w", rr.Source, err))
		}
	}
	return errors.Join(errs...)
}

// merge joins the sources' lists in priority order, each id once with the first
// source that offered it.
func (r *Recall) merge(sources []feed.Source, lists [][]int64, errs []error) ([]feed.Candidate, error) {
	var out []feed.Candidate
	seen := map[int64]bool{}
	for i, s := range sources {
		if errs[i] == nil {
			r.candidates.WithLabelValues(strconv.Itoa(int(s))).Observe(float64(len(lists[i])))
		}
		for _, id := range lists[i] {
			if !seen[id] {
				seen[id] = true
				out = append(out, feed.Candidate{ID: id, Source: s})
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("source %d: %w", sources[i], err)
		}
	}
	return out, errors.Join(errs...)
}

// union flattens versions (newest first) into distinct ids, at most limit.
func union(versions []storage.Version, limit int) []int64 {
	var out []int64
	seen := map[int64]bool{}
	for _, v := range versions {
		for _, id := range v.IDs {
			if len(out) == limit {
				return out
			}
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

func ids(s []storage.Scored) []int64 {
	out := make([]int64, len(s))
	for i, x := range s {
		out[i] = x.ID
	}
	return out
}

// Popular is a channel's hottest and newest articles, alternating: the feed of
// anonymous readers, and reco-center's answer when recall or the cache is down.
// Reco-center reads it in its own process (DESIGN §6: no recall → hot/new), so the
// fallback does not depend on the service whose failure it covers; this is the
// one piece of code that reads the lists for it.
type Popular struct{ lists storage.ChannelLists }

// NewPopular returns the popular articles of lists.
func NewPopular(lists storage.ChannelLists) *Popular { return &Popular{lists: lists} }

// Popular returns up to n of the channel's hottest and newest articles,
// alternating, each once. It fails only when both lists are unreadable.
func (p *Popular) Popular(ctx context.Context, channel int32, n int) ([]int64, error) {
	var hot, fresh []storage.Scored
	var errHot, errNew error
	var g errgroup.Group
	g.Go(func() error { hot, errHot = p.lists.Top(ctx, storage.HotList, channel, n); return nil })
	g.Go(func() error { fresh, errNew = p.lists.Top(ctx, storage.NewList, channel, n); return nil })
	_ = g.Wait()
	if errHot != nil && errNew != nil {
		return nil, fmt.Errorf("read hot and new articles: %w", errors.Join(errHot, errNew))
	}
	out := make([]int64, 0, n)
	used := make(map[int64]bool, n)
	for i := 0; len(out) < n && (i < len(hot) || i < len(fresh)); i++ {
		for _, list := range [][]storage.Scored{hot, fresh} {
			if i < len(list) && len(out) < n && !used[list[i].ID] {
				used[list[i].ID] = true
				out = append(out, list[i].ID)
			}
		}
	}
	return out, nil
}

// Similar returns the n highest-scored neighbours of article; an article the
// store holds nothing of is storage.ErrUnknownArticle.
func (r *Recall) Similar(ctx context.Context, article int64, n int) ([]int64, error) {
	k := similarKey{article, n}
	a, ok := r.similar.Get(k)
	if !ok {
		similar, err := r.stores.Similarity.Similar(ctx, article, n)
		if err != nil && !errors.Is(err, storage.ErrUnknownArticle) {
			return nil, err
		}
		a = similarAnswer{ids: ids(similar), unknown: err != nil}
		r.similar.Put(k, a)
	}
	if a.unknown {
		return nil, storage.ErrUnknownArticle
	}
	return a.ids, nil
}
