package sort

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Config locates the models.
type Config struct {
	// ModelDir holds one file per model (200.json, 201.json, …: model.Path), as
	// `reco admin build` writes them.
	ModelDir string `yaml:"model_dir"`
	// ReloadInterval is how often changed model files are picked up.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// FeatureCacheTTL is how long an article's features are kept in memory
	// before they are read again (a new build shows after at most this long).
	FeatureCacheTTL time.Duration `yaml:"feature_cache_ttl"`
	// FeatureCacheSize bounds the articles kept in memory.
	FeatureCacheSize int `yaml:"feature_cache_size"`
}

// Validate checks the keys.
func (c Config) Validate() error {
	if c.ModelDir == "" {
		return errors.New("sort.model_dir must be set")
	}
	if c.ReloadInterval <= 0 || c.FeatureCacheTTL <= 0 {
		return fmt.Errorf("sort.reload_interval and sort.feature_cache_ttl must be positive, got %v and %v", c.ReloadInterval, c.FeatureCacheTTL)
	}
	if c.FeatureCacheSize < 1 {
		return fmt.Errorf("sort.feature_cache_size must be at least 1, got %d", c.FeatureCacheSize)
	}
	return nil
}

// ErrUnknownModel is returned when no model has the requested id.
var ErrUnknownModel = errors.New("unknown sort model")

// Ranker scores candidates with a CTR model.
type Ranker struct {
	cfg      Config
	models   *Models
	features storage.Features
	articles *articleCache
}

// New returns a ranker with the models of cfg.ModelDir, reading features
// (article features through an in-memory cache configured by cfg). Watch keeps
// the models current.
func New(cfg Config, features storage.Features, log *zap.Logger, _ prometheus.Registerer) (*Ranker, error) {
	return &Ranker{
		cfg:      cfg,
		models:   LoadModels(cfg.ModelDir, log),
		features: features,
		articles: newArticleCache(features, cfg.FeatureCacheTTL, cfg.FeatureCacheSize),
	}, nil
}

// Watch reloads changed model files every cfg.ReloadInterval until ctx ends.
func (r *Ranker) Watch(ctx context.Context) error { return r.models.Watch(ctx, r.cfg.ReloadInterval) }

// Rank orders ids by predicted click-through rate, highest first, and returns
// the scores in the same order. Features come in two round trips whatever the
// number of candidates: every article's vector, then the user's weights.
// A user without features keeps the given (recall) order and gets no scores:
// the model would rank on article features alone, which is popularity by
// another name.
func (r *Ranker) Rank(ctx context.Context, user string, channel int32, modelID feed.Model, ids []int64) ([]int64, []float64, error) {
	m := r.models.Get(int32(modelID))
	if m == nil {
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownModel, modelID)
	}
	vectors, err := r.articles.ArticleVectors(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("article features: %w", err)
	}
	// The models learned each article with its own channel and the user's
	// weights for that channel; in a channel feed that is the feed's channel,
	// in the all-channels feed (0) each candidate's own.
	channelOf := func(id int64) int32 {
		if v := vectors[id]; channel == 0 && len(v) == model.ArticleFeatureLen {
			return int32(v[0])
		}
		return channel
	}
	var channels []int32
	for _, id := range ids {
		if ch := channelOf(id); !slices.Contains(channels, ch) {
			channels = append(channels, ch)
		}
	}
	weights, err := r.features.UserWeights(ctx, user, channels)
	if err != nil {
		return nil, nil, fmt.Errorf("user features: %w", err)
	}
	if len(weights) == 0 {
		return ids, nil, nil
	}
	type scored struct {
		id    int64
		score float64
	}
	out := make([]scored, len(ids))
	x := make([]float64, model.NumFeatures)
	for i, id := range ids {
		ch := channelOf(id)
		x = model.Features(x, ch, vectors[id], weights[ch])
		out[i] = scored{id, m.Predict(x)}
	}
	slices.SortStableFunc(out, func(a, b scored) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	ranked, scores := make([]int64, len(out)), make([]float64, len(out))
	for i, s := range out {
		ranked[i], scores[i] = s.id, s.score
	}
	return ranked, scores, nil
}
