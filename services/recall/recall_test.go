package recall

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
)

func open(t *testing.T) (storage.Tables, storage.Sets) {
	t.Helper()
	db, cleanup, err := embedded.Open(embedded.Config{Path: filepath.Join(t.TempDir(), "r.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	if err := db.Tables().Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db.Tables(), db.Sets()
}

func load(t *testing.T, tables storage.Tables, runs ...storage.RecallRun) {
	t.Helper()
	records := make([]storage.Record, len(runs))
	for i, r := range runs {
		records[i] = r
	}
	if err := tables.Load(context.Background(), records); err != nil {
		t.Fatal(err)
	}
}

func stores(tables storage.Tables, sets storage.Sets) Stores {
	return Stores{Sets: tables, Lists: sets, Similarity: tables}
}

func TestMergeKeepsSourcePriorityWithoutDuplicates(t *testing.T) {
	t.Parallel()
	tables, sets := open(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	load(t, tables,
		storage.RecallRun{User: "u", Channel: 5, Source: feed.SourceALS, Timestamp: now - 2, IDs: []int64{1, 2}},
		storage.RecallRun{User: "u", Channel: 5, Source: feed.SourceALS, Timestamp: now - 1, IDs: []int64{3, 1}}, // a newer run comes first
		storage.RecallRun{User: "u", Channel: 5, Source: feed.SourceContent, Timestamp: now - 1, IDs: []int64{3, 4}},
	)
	_ = sets.Replace(ctx, storage.HotList, 5, []storage.Scored{{ID: 4, Score: 9}, {ID: 5, Score: 8}})
	_ = sets.Replace(ctx, storage.NewList, 5, []storage.Scored{{ID: 6, Score: 1}})

	r := newRecall(t, Config{HotNum: 10, NewNum: 10, SourceLimit: 100}, stores(tables, sets))
	got, read, err := r.Recall(ctx, "u", 5, []feed.Source{100, 101, 104, 103, 102})
	if err != nil {
		t.Fatal(err)
	}
	want := []feed.Candidate{{ID: 3, Source: 100}, {ID: 1, Source: 100}, {ID: 2, Source: 100}, {ID: 4, Source: 101}, {ID: 5, Source: 104}, {ID: 6, Source: 103}}
	if !slices.Equal(got, want) {
		t.Errorf("Recall = %v, want %v", got, want)
	}
	// Reading consumes nothing: the runs go once the caller has queued the
	// candidates and consumes what it read.
	wantRead := []feed.ReadRuns{{Source: 100, Through: now - 1}, {Source: 101, Through: now - 1}}
	if !slices.Equal(read, wantRead) {
		t.Errorf("read = %v, want %v", read, wantRead)
	}
	if again, _, err := r.Recall(ctx, "u", 5, []feed.Source{100, 101}); err != nil || len(again) != 4 {
		t.Errorf("second Recall before Consume = %v, %v; want the 4 candidates again", again, err)
	}
	if err := r.Consume(ctx, "u", 5, read); err != nil {
		t.Fatal(err)
	}
	if again, _, err := r.Recall(ctx, "u", 5, []feed.Source{100, 101}); err != nil || len(again) != 0 {
		t.Errorf("Recall after Consume = %v, %v; want nothing: the runs are consumed", again, err)
	}
}

// racingSets writes a new recall run right after every read, as an online job
// might between recall's read and the consume of what it read.
type racingSets struct {
	storage.Tables
	run storage.RecallRun
}

func (s racingSets) Read(ctx context.Context, user string, channel int32, sources []feed.Source) (map[feed.Source][]storage.Version, error) {
	got, err := s.Tables.Read(ctx, user, channel, sources)
	if err == nil {
		err = s.Load(ctx, []storage.Record{s.run})
	}
	return got, err
}

func TestRunsWrittenDuringRecallSurvive(t *testing.T) {
	t.Parallel()
	tables, sets := open(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	load(t, tables, storage.RecallRun{User: "u", Channel: 2, Source: feed.SourceOnline, Timestamp: now, IDs: []int64{7}})
	racing := racingSets{tables, storage.RecallRun{User: "u", Channel: 2, Source: feed.SourceOnline, Timestamp: now + 100, IDs: []int64{99}}}
	r := newRecall(t, Config{HotNum: 1, NewNum: 1, SourceLimit: 10}, Stores{Sets: racing, Lists: sets, Similarity: tables})
	got, read, err := r.Recall(ctx, "u", 2, []feed.Source{102})
	if err != nil || !slices.Equal(got, []feed.Candidate{{ID: 7, Source: 102}}) {
		t.Fatalf("Recall = %v, %v; want [7]", got, err)
	}
	if err := r.Consume(ctx, "u", 2, read); err != nil {
		t.Fatal(err)
	}
	left, _ := tables.Read(ctx, "u", 2, []feed.Source{feed.SourceOnline})
	if v := left[feed.SourceOnline]; len(v) != 1 || !slices.Equal(v[0].IDs, []int64{99}) {
		t.Errorf("after recall the source holds %+v, want only the run written meanwhile", v)
	}
}

func TestLimitsAndUnknownSources(t *testing.T) {
	t.Parallel()
	tables, sets := open(t)
	ctx := context.Background()
	var hot []storage.Scored
	for i := range int64(30) {
		hot = append(hot, storage.Scored{ID: i + 1, Score: float64(i)})
	}
	_ = sets.Replace(ctx, storage.HotList, 1, hot)
	r := newRecall(t, Config{HotNum: 10, NewNum: 10, SourceLimit: 100}, stores(tables, sets))
	got, _, err := r.Recall(ctx, "u", 1, []feed.Source{104})
	if err != nil || len(got) != 10 || got[0].ID != 30 {
		t.Errorf("hot recall = %v, %v; want the top 10 from 30", got, err)
	}
	if _, _, err := r.Recall(ctx, "u", 1, []feed.Source{105}); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("source 105 in a feed: err = %v, want ErrUnknownSource", err)
	}
}

func TestPopularAlternatesHotAndNewOnce(t *testing.T) {
	t.Parallel()
	_, sets := open(t)
	ctx := context.Background()
	_ = sets.Replace(ctx, storage.HotList, 4, []storage.Scored{{ID: 1, Score: 3}, {ID: 2, Score: 2}, {ID: 3, Score: 1}})
	_ = sets.Replace(ctx, storage.NewList, 4, []storage.Scored{{ID: 2, Score: 30}, {ID: 5, Score: 20}})
	for _, tt := range []struct {
		n    int
		want []int64
	}{{1, []int64{1}}, {3, []int64{1, 2, 5}}, {10, []int64{1, 2, 5, 3}}} {
		got, err := NewPopular(sets).Popular(ctx, 4, tt.n)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Popular(%d) = %v, %v; want %v", tt.n, got, err, tt.want)
		}
	}
}

func newRecall(t *testing.T, cfg Config, stores Stores) *Recall {
	t.Helper()
	r, err := New(cfg, stores, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSimilarTellsUnknownArticlesFromLonelyOnes: an article no build wrote is
// NOT_FOUND; one a build wrote without neighbours (its features say it is
// known) is an empty list.
func TestSimilarTellsUnknownArticlesFromLonelyOnes(t *testing.T) {
	t.Parallel()
	tables, sets := open(t)
	ctx := context.Background()
	if err := tables.Load(ctx, []storage.Record{
		storage.Neighbours{Article: 1, Similar: []storage.Scored{{ID: 2, Score: 0.5}, {ID: 3, Score: 0.9}}},
		storage.ArticleVector{Article: 4, Vector: []float64{1, 0}},
	}); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(newRecall(t, Config{HotNum: 1, NewNum: 1, SourceLimit: 10}, stores(tables, sets)))
	for _, tt := range []struct {
		article int64
		want    []int64
		code    codes.Code
	}{
		{article: 1, want: []int64{3, 2}, code: codes.OK},
		{article: 4, code: codes.OK},
		{article: 5, code: codes.NotFound},
	} {
		resp, err := srv.Similar(ctx, &recallv1.SimilarRequest{ArticleId: tt.article, N: 5})
		if status.Code(err) != tt.code || !slices.Equal(resp.GetArticleIds(), tt.want) {
			t.Errorf("Similar(%d) = %v, %v; want %v, %v", tt.article, resp.GetArticleIds(), err, tt.want, tt.code)
		}
	}
}

// countingSimilarity counts the store's similar-article reads.
type countingSimilarity struct {
	storage.Similarity
	reads atomic.Int64
}

func (c *countingSimilarity) Similar(ctx context.Context, article int64, n int) ([]storage.Scored, error) {
	c.reads.Add(1)
	return c.Similarity.Similar(ctx, article, n)
}

// article_recommend is answered from memory once read: lists change with a
// build, and a popular article must not cost a store round trip per call.
// An unknown article is remembered as unknown.
func TestSimilarIsKeptInMemory(t *testing.T) {
	t.Parallel()
	tables, sets := open(t)
	ctx := context.Background()
	if err := tables.Load(ctx, []storage.Record{storage.Neighbours{Article: 1, Similar: []storage.Scored{{ID: 2, Score: 0.5}}}}); err != nil {
		t.Fatal(err)
	}
	counted := &countingSimilarity{Similarity: tables}
	st := stores(tables, sets)
	st.Similarity = counted
	r := newRecall(t, Config{HotNum: 1, NewNum: 1, SourceLimit: 10, SimilarCacheTTL: time.Hour, SimilarCacheSize: 10}, st)
	for range 3 {
		if got, err := r.Similar(ctx, 1, 5); err != nil || !slices.Equal(got, []int64{2}) {
			t.Fatalf("Similar(1) = %v, %v; want [2]", got, err)
		}
		if _, err := r.Similar(ctx, 9, 5); !errors.Is(err, storage.ErrUnknownArticle) {
			t.Fatalf("Similar(9): err = %v, want ErrUnknownArticle", err)
		}
	}
	if n := counted.reads.Load(); n != 2 {
		t.Errorf("store reads = %d for 6 calls on 2 articles, want 2", n)
	}
}
