package recall

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/server"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Config bounds what each source contributes.
type Config struct {
	// HotNum is how many of the channel's hottest articles source 104 offers.
	HotNum int `yaml:"hot_num"`
	// NewNum is how many of the channel's newest articles source 103 offers.
	NewNum int `yaml:"new_num"`
	// SourceLimit caps the candidates of each cb_recall source (100–102).
	SourceLimit int `yaml:"source_limit"`
}

// Validate checks the limits.
func (c Config) Validate() error {
	if c.HotNum < 1 || c.NewNum < 1 || c.SourceLimit < 1 {
		return fmt.Errorf("recall.hot_num, recall.new_num and recall.source_limit must be at least 1, got %d, %d, %d", c.HotNum, c.NewNum, c.SourceLimit)
	}
	return nil
}

// ErrUnknownSource is returned for a source recall cannot read.
var ErrUnknownSource = errors.New("unknown recall source")

// cbFamily is the cb_recall family of each offline/online source.
var cbFamily = map[recallv1.Source]string{
	recallv1.Source_SOURCE_ALS:     "als",
	recallv1.Source_SOURCE_CONTENT: "content",
	recallv1.Source_SOURCE_ONLINE:  "online",
}

// Candidate is a recalled id and the source that offered it first.
type Candidate struct {
	ID     int64
	Source recallv1.Source
}

// Recall reads the recall sources.
type Recall struct {
	cfg        Config
	stores     Stores
	candidates *prometheus.HistogramVec
}

// New returns a recall over stores, with its metrics registered in reg.
func New(cfg Config, stores Stores, reg prometheus.Registerer) (*Recall, error) {
	candidates := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: server.Namespace,
		Name:      "recall_candidates",
		Help:      "Candidates one recall call got from each source, before merging.",
		Buckets:   []float64{0, 1, 5, 10, 25, 50, 100, 200, 500, 1000},
	}, []string{"source"})
	if err := reg.Register(candidates); err != nil {
		return nil, fmt.Errorf("register recall metrics: %w", err)
	}
	return &Recall{cfg: cfg, stores: stores, candidates: candidates}, nil
}

// Recall merges the candidates of sources for user in channel, in source order,
// without duplicates. cb_recall versions are consumed: after reading them it
// deletes the versions it read, up to the newest timestamp it saw, so versions an
// offline or online job writes meanwhile survive for the next refresh (the
// original deleted everything after reading, losing those). A failing source is
// skipped and reported in the error; the error is nil only if all sources were
// read.
func (r *Recall) Recall(ctx context.Context, user string, channel int32, sources []recallv1.Source) ([]Candidate, error) {
	lists := make([][]int64, len(sources))
	errs := make([]error, len(sources))
	var columns []string
	for _, s := range sources {
		if _, ok := cbFamily[s]; !ok && s != recallv1.Source_SOURCE_NEW && s != recallv1.Source_SOURCE_HOT {
			return nil, fmt.Errorf("%w: %v", ErrUnknownSource, s)
		}
		if f, ok := cbFamily[s]; ok {
			columns = append(columns, storage.RecallColumn(f, channel))
		}
	}

	var g errgroup.Group
	var cb map[string][]storage.Version
	var cbErr error
	if len(columns) > 0 {
		g.Go(func() error {
			cb, cbErr = r.stores.Lists.Versions(ctx, storage.TableCBRecall, storage.RecallRow(user), columns, maxTimestamp, 0)
			return nil
		})
	}
	for i, s := range sources {
		key, n := "", 0
		switch s {
		case recallv1.Source_SOURCE_NEW:
			key, n = storage.NewKey(channel), r.cfg.NewNum
		case recallv1.Source_SOURCE_HOT:
			key, n = storage.HotKey(channel), r.cfg.HotNum
		default:
			continue
		}
		g.Go(func() error {
			top, err := r.stores.Sets.Top(ctx, key, n)
			lists[i], errs[i] = ids(top), err
			return nil
		})
	}
	_ = g.Wait()

	for i, s := range sources {
		f, ok := cbFamily[s]
		if !ok {
			continue
		}
		if cbErr != nil {
			errs[i] = cbErr
			continue
		}
		column := storage.RecallColumn(f, channel)
		versions := cb[column]
		lists[i] = union(versions, r.cfg.SourceLimit)
		if len(versions) > 0 {
			cell := storage.Cell{Table: storage.TableCBRecall, Row: storage.RecallRow(user), Column: column}
			errs[i] = r.stores.Lists.DeleteThrough(ctx, cell, versions[0].Timestamp)
		}
	}

	var out []Candidate
	seen := map[int64]bool{}
	for i, s := range sources {
		if errs[i] == nil {
			r.candidates.WithLabelValues(strconv.Itoa(int(s))).Observe(float64(len(lists[i])))
		}
		for _, id := range lists[i] {
			if !seen[id] {
				seen[id] = true
				out = append(out, Candidate{ID: id, Source: s})
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("source %d: %w", int32(sources[i]), err)
		}
	}
	return out, errors.Join(errs...)
}

const maxTimestamp = 1<<63 - 1

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

// Similar returns the n highest-scored neighbours of article.
func (r *Recall) Similar(ctx context.Context, article int64, n int) ([]int64, error) {
	similar, err := r.stores.Similarity.Similar(ctx, article, n)
	if err != nil {
		return nil, err
	}
	return ids(similar), nil
}
