package offline

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/train"
	sortsvc "github.com/toutiao-reco/toutiao-reco/services/sort"
)

// TestReportMeasuresWhatTheSortServiceServes: the sort service, reading the
// build's stores and model files, scores every hold-out impression (as the
// all-channels feed, so each article with its own channel) exactly as the
// build scored it for the report: the models' offline metrics are those of
// the online ranker, the channel's one-hot included.
func TestReportMeasuresWhatTheSortServiceServes(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	r, err := sortsvc.New(sortsvc.Config{ModelDir: b.opts.ModelDir, ReloadInterval: time.Hour, FeatureCacheTTL: time.Hour, FeatureCacheSize: 100000},
		b.stores.Tables, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The build's hold-out order: users by id, each one's impressions by time.
	cutoff := b.ds.Behaviors[len(b.ds.Behaviors)-1].Time.UTC().Truncate(24 * time.Hour)
	var rows []int
	for i, bh := range b.ds.Behaviors {
		if !bh.Time.Before(cutoff) {
			rows = append(rows, i)
		}
	}
	slices.SortStableFunc(rows, func(x, y int) int {
		bx, by := &b.ds.Behaviors[x], &b.ds.Behaviors[y]
		if c := strings.Compare(bx.User, by.User); c != 0 {
			return c
		}
		if c := bx.Time.Compare(by.Time); c != 0 {
			return c
		}
		return int(bx.ID - by.ID)
	})
	var files [2]*model.Model
	for i, id := range []int32{200, 201} {
		if files[i], err = model.Load(model.Path(b.opts.ModelDir, id)); err != nil {
			t.Fatal(err)
		}
	}
	scored := 0
	for i, m := range []feed.Model{200, 201} {
		var scores []float64
		var labels []bool
		var groups []int32
		for _, row := range rows {
			bh := &b.ds.Behaviors[row]
			ids := make([]int64, len(bh.Impressions))
			for j, im := range bh.Impressions {
				ids[j] = im.Article
			}
			ranked, rs, err := r.Rank(ctx, bh.User, feed.ChannelAll, m, ids)
			if err != nil {
				t.Fatal(err)
			}
			if rs != nil {
				scored += len(rs)
			}
			score := map[int64]float64{}
			for j, id := range ranked {
				if rs == nil {
					// A reader without weights keeps the recall order online
					// (an article-only score is popularity by another name);
					// the build scores them with zero weights, from what the
					// service would read.
					vecs, err := b.stores.Tables.ArticleVectors(ctx, []int64{id})
					if err != nil {
						t.Fatal(err)
					}
					v := vecs[id]
					score[id] = files[i].Predict(model.Features(nil, int32(v[0]), v, nil))
					continue
				}
				score[id] = rs[j]
			}
			for _, im := range bh.Impressions {
				scores = append(scores, score[im.Article])
				labels = append(labels, im.Clicked)
				groups = append(groups, int32(row))
			}
		}
		if scored < len(scores)*3/4 {
			t.Errorf("the sort service scored %d of %d hold-out samples; want most", scored, len(scores))
		}
		scored = 0
		online := train.PerImpression(scores, labels, groups)
		report := b.res.Report.Rankers[i]
		for _, c := range []struct {
			name            string
			online, offline float64
		}{
			{"AUC", online.AUC, report.AUC}, {"MRR", online.MRR, report.MRR},
			{"nDCG@5", online.NDCG5, report.NDCG5}, {"nDCG@10", online.NDCG10, report.NDCG10},
			{"pooled AUC", train.AUC(scores, labels), report.PooledAUC}, {"log-loss", train.LogLoss(scores, labels), report.LogLoss},
		} {
			if math.Abs(c.online-c.offline) > 1e-12 {
				t.Errorf("model %d: %s of the sort service's scores %.15f, the report's %.15f", m, c.name, c.online, c.offline)
			}
		}
	}
}
