package sort

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
)

var testConfig = Config{ModelDir: "unused", ReloadInterval: time.Second, FeatureCacheTTL: time.Minute, FeatureCacheSize: 1000}

// countingFeatures counts the round trips of the ranker.
type countingFeatures struct {
	storage.Features
	articleCalls int
}

func (c *countingFeatures) ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error) {
	c.articleCalls++
	return c.Features.ArticleVectors(ctx, ids)
}

func writeModel(t *testing.T, dir string, version string, w1 float64) {
	t.Helper()
	m := &model.Model{ID: 200, Kind: model.KindLogistic, Version: version, Features: model.NumFeatures, Weights: make([]float64, model.NumFeatures)}
	m.Weights[1] = w1 // the first element of the article vector
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(model.Path(dir, 200), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRanker(t *testing.T, dir string, features storage.Features) *Ranker {
	t.Helper()
	cfg := testConfig
	cfg.ModelDir = dir
	r, err := New(cfg, features, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func setup(t *testing.T) (*Ranker, *countingFeatures, string) {
	t.Helper()
	db, cleanup, err := embedded.Open(embedded.Config{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	ctx := context.Background()
	if err := db.Tables().Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	var records []storage.Record
	for id := int64(1); id <= 500; id++ {
		v := make([]float64, model.ArticleFeatureLen)
		v[1+model.KeywordWeightsLen] = float64(id%97) / 97
		records = append(records, storage.ArticleVector{Article: id, Vector: v})
	}
	records = append(records, storage.UserWeights{User: "known", Channel: 1, Weights: make([]float64, 10)})
	if err := db.Tables().Load(ctx, records); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeModel(t, dir, "v1", 3)
	f := &countingFeatures{Features: db.Tables()}
	return newRanker(t, dir, f), f, dir
}

func TestRankOrdersByModelInOneArticleRoundTrip(t *testing.T) {
	r, f, _ := setup(t)
	ids := make([]int64, 0, 501)
	for id := int64(1); id <= 500; id++ {
		ids = append(ids, id)
	}
	ids = append(ids, 9999) // no features: zeros
	got, scores, err := r.Rank(context.Background(), "known", 1, 200, ids)
	if err != nil {
		t.Fatal(err)
	}
	if f.articleCalls != 1 {
		t.Errorf("%d article feature round trips for 501 candidates, want 1", f.articleCalls)
	}
	// A second ranking of the same candidates reads them from memory.
	if _, _, err := r.Rank(context.Background(), "known", 1, 200, ids); err != nil || f.articleCalls != 1 {
		t.Errorf("second ranking: %d article feature round trips in all, %v; want still 1", f.articleCalls, err)
	}
	if len(got) != 501 || !slices.IsSortedFunc(scores, func(a, b float64) int { return -compare(a, b) }) {
		t.Fatalf("scores not descending")
	}
	if got[0]%97 != 96 || got[len(got)-1] != 9999 && got[len(got)-1]%97 != 0 {
		t.Errorf("first %d last %d: want the highest vector element first, zeros last", got[0], got[len(got)-1])
	}
	if scores[len(scores)-1] != model.Sigmoid(0) {
		t.Errorf("lowest score %v, want σ(0) for a zero vector", scores[len(scores)-1])
	}
}

func compare(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestUnknownUserKeepsRecallOrder(t *testing.T) {
	r, _, _ := setup(t)
	ids := []int64{5, 300, 7, 42}
	got, scores, err := r.Rank(context.Background(), "stranger", 1, 200, ids)
	if err != nil || !slices.Equal(got, ids) || scores != nil {
		t.Errorf("Rank for a user without features = %v, %v, %v; want the input order, no scores", got, scores, err)
	}
	if _, _, err := r.Rank(context.Background(), "known", 1, 777, ids); err == nil {
		t.Error("Rank with model 777 succeeded, want ErrUnknownModel")
	}
}

func TestModelsReloadWithoutRestart(t *testing.T) {
	r, _, dir := setup(t)
	if v := r.models.Get(200).Version; v != "v1" {
		t.Fatalf("version %s, want v1", v)
	}
	// A newer file (later mtime) replaces the model.
	writeModel(t, dir, "v2", -3)
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(model.Path(dir, 200), later, later)
	r.models.Reload()
	if v := r.models.Get(200).Version; v != "v2" {
		t.Errorf("after reload version %s, want v2", v)
	}
	// A broken file keeps the model in force.
	_ = os.WriteFile(model.Path(dir, 200), []byte(`{"id": 200, "kind": "logistic"`), 0o644)
	even := later.Add(time.Second)
	_ = os.Chtimes(model.Path(dir, 200), even, even)
	r.models.Reload()
	if m := r.models.Get(200); m == nil || m.Version != "v2" {
		t.Errorf("after a broken file the model is %v, want v2 kept", m)
	}
}

func TestAllChannelsFeedUsesEachArticlesChannel(t *testing.T) {
	db, cleanup, err := embedded.Open(embedded.Config{Path: filepath.Join(t.TempDir(), "s.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	ctx := context.Background()
	tables := db.Tables()
	if err := tables.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	vec := func(channel float64) []float64 {
		v := make([]float64, model.ArticleFeatureLen)
		v[0] = channel
		return v
	}
	// The user cares for channel 7, not 3: their first weight there is high.
	if err := tables.Load(ctx, []storage.Record{
		storage.ArticleVector{Article: 1, Vector: vec(3)},
		storage.ArticleVector{Article: 2, Vector: vec(7)},
		storage.UserWeights{User: "u", Channel: 3, Weights: make([]float64, 10)},
		storage.UserWeights{User: "u", Channel: 7, Weights: []float64{4, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m := &model.Model{ID: 200, Kind: model.KindLogistic, Features: model.NumFeatures, Weights: make([]float64, model.NumFeatures)}
	m.Weights[1+model.ArticleVectorLen] = 1 // the user's first weight
	b, _ := m.Encode()
	_ = os.WriteFile(model.Path(dir, 200), b, 0o644)
	r := newRanker(t, dir, tables)

	got, scores, err := r.Rank(ctx, "u", 0, 200, []int64{1, 2})
	if err != nil || !slices.Equal(got, []int64{2, 1}) || scores[0] != model.Sigmoid(4) {
		t.Errorf("channel-0 ranking = %v %v, %v; want article 2 (the user's channel 7) first, scored σ(4)", got, scores, err)
	}
}
