package offline

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/train"
)

// ReportFile is the report's name in the model directory.
const ReportFile = "report.json"

// recallAt is the list depth of the recall metric.
const recallAt = 50

// Report is the offline report of a build: how the models rank and how the
// recall sources reach the held-out clicks. It holds no timings, so the same
// input gives the same file.
type Report struct {
	Version string   `json:"version"`
	Data    DataInfo `json:"data"`
	// Rankers are models 200 and 201 and the popularity baseline on the
	// hold-out impressions (empty when nothing is held out).
	Rankers []RankerMetrics `json:"rankers"`
	// Recall is each recall source against the hold-out clicks.
	Recall []RecallMetrics `json:"recall"`
}

// DataInfo describes the input and the split.
type DataInfo struct {
	Articles        int    `json:"articles"`
	Users           int    `json:"users"`
	Impressions     int    `json:"impressions"`
	Shown           int    `json:"shown"`
	Clicks          int    `json:"clicks"`
	Cutoff          string `json:"cutoff"`
	TrainSamples    int    `json:"train_samples"`
	HoldoutRows     int    `json:"holdout_impressions"`
	HoldoutSamples  int    `json:"holdout_samples"`
	HoldoutClicks   int    `json:"holdout_clicks"`
	FreshArticles   int    `json:"fresh_articles"`
	UnknownArticles int    `json:"holdout_clicks_on_unknown_articles"`
	// RankedImpressions is the hold-out impressions with a click and a
	// non-click: those the per-impression metrics average.
	RankedImpressions int `json:"holdout_ranked_impressions"`
	// Skipped is what Options.SkipUnknown dropped from behaviors.tsv (nil
	// without it: then such a reference fails the build).
	Skipped *dataset.Skipped `json:"skipped_unknown,omitempty"`
}

// RankerMetrics are one ranker's hold-out scores. AUC, MRR, NDCG5 and
// NDCG10 are MIND's leaderboard metrics (train.ImpressionMetrics): computed
// within each hold-out impression and averaged over those with a click and a
// non-click (DataInfo.RankedImpressions). PooledAUC and LogLoss are over
// every hold-out sample at once, so they also reward telling apart readers
// who click much from readers who click little, which ordering a feed does
// not need.
type RankerMetrics struct {
	Name      string  `json:"name"`
	AUC       float64 `json:"auc"`
	MRR       float64 `json:"mrr"`
	NDCG5     float64 `json:"ndcg_5"`
	NDCG10    float64 `json:"ndcg_10"`
	PooledAUC float64 `json:"pooled_auc"`
	LogLoss   float64 `json:"log_loss"`
}

// RecallMetrics are one recall source's scores.
type RecallMetrics struct {
	Source string `json:"source"`
	// RecallAt50 is the mean, over hold-out users with a click, of the share of
	// their clicked articles in the source's first 50 for channel 0.
	RecallAt50 float64 `json:"recall_at_50"`
	// Coverage is the share of the fresh catalogue (articles a build may
	// recall) that the source offers to at least one user.
	Coverage float64 `json:"coverage"`
}

// evaluate scores the rankers and recall sources on the hold-out.
func (b *build) evaluate() *Report {
	r := &Report{Version: b.opts.Version.UTC().Format(time.RFC3339)}
	d := &r.Data
	d.Articles, d.Users, d.Impressions = len(b.c.ids), len(b.u.names), len(b.ds.Behaviors)
	for _, bh := range b.ds.Behaviors {
		d.Shown += len(bh.Impressions)
		for _, im := range bh.Impressions {
			if im.Clicked {
				d.Clicks++
			}
		}
	}
	d.Cutoff = b.cutoff.UTC().Format(time.RFC3339)
	if b.opts.SkipUnknown {
		d.Skipped = &b.skipped
	}
	d.TrainSamples, d.HoldoutSamples = b.train.Len(), b.holdout.Len()
	for _, f := range b.c.fresh {
		if f {
			d.FreshArticles++
		}
	}
	for _, rows := range b.u.holdoutRows {
		d.HoldoutRows += len(rows)
	}
	if b.holdout.Len() == 0 {
		return r
	}

	// Rankers.
	n := b.holdout.Len()
	labels := make([]bool, n)
	groups := make([]int32, n)
	preds := [3][]float64{make([]float64, n), make([]float64, n), make([]float64, n)}
	x := make([]float64, model.NumFeatures)
	for i, sm := range b.holdout.s {
		b.holdout.Features(i, x)
		labels[i], groups[i] = sm.label, sm.group
		preds[0][i] = b.models[0].Predict(x)
		preds[1][i] = b.models[1].Predict(x)
		preds[2][i] = model.Sigmoid(b.platt[0] + b.platt[1]*math.Log1p(b.clicksBefore(sm.art, b.days)))
		if sm.label {
			d.HoldoutClicks++
			if !b.c.known[sm.art] {
				d.UnknownArticles++
			}
		}
	}
	for i, name := range []string{"200 logistic", "201 fm", "popularity"} {
		m := train.PerImpression(preds[i], labels, groups)
		d.RankedImpressions = m.Impressions
		r.Rankers = append(r.Rankers, RankerMetrics{
			Name: name, AUC: m.AUC, MRR: m.MRR, NDCG5: m.NDCG5, NDCG10: m.NDCG10,
			PooledAUC: train.AUC(preds[i], labels), LogLoss: train.LogLoss(preds[i], labels),
		})
	}

	// Recall sources: each user's channel-0 list against their hold-out clicks.
	newTop, hotTop := b.newList(feed.ChannelAll), b.hotList(feed.ChannelAll)
	sources := []struct {
		name string
		list func(ui int) []int32
		all  func(yield func(int32))
	}{
		{"100 als", func(ui int) []int32 { return b.alsLists[ui] }, b.eachListed(b.alsLists)},
		{"101 content", func(ui int) []int32 { return b.contentList[ui] }, b.eachListed(b.contentList)},
		{"103 new", func(int) []int32 { return newTop }, b.eachInSets(b.newList)},
		{"104 hot", func(int) []int32 { return hotTop }, b.eachInSets(b.hotList)},
	}
	for _, s := range sources {
		var sum float64
		users := 0
		for ui, rows := range b.u.holdoutRows {
			clicked := map[int32]bool{}
			for _, row := range rows {
				for _, im := range b.ds.Behaviors[row].Impressions {
					if im.Clicked {
						clicked[b.c.index[im.Article]] = true
					}
				}
			}
			if len(clicked) == 0 {
				continue
			}
			users++
			list := s.list(ui)
			hits := 0
			for _, a := range list[:min(recallAt, len(list))] {
				if clicked[a] {
					hits++
				}
			}
			sum += float64(hits) / float64(len(clicked))
		}
		covered := map[int32]bool{}
		s.all(func(a int32) {
			if b.c.fresh[a] {
				covered[a] = true
			}
		})
		m := RecallMetrics{Source: s.name, RecallAt50: math.NaN(), Coverage: math.NaN()}
		if users > 0 {
			m.RecallAt50 = sum / float64(users)
		}
		if d.FreshArticles > 0 {
			m.Coverage = float64(len(covered)) / float64(d.FreshArticles)
		}
		r.Recall = append(r.Recall, m)
	}
	return r
}

func (b *build) eachListed(lists [][]int32) func(func(int32)) {
	return func(yield func(int32)) {
		for _, l := range lists {
			for _, a := range l {
				yield(a)
			}
		}
	}
}

func (b *build) eachInSets(list func(int32) []int32) func(func(int32)) {
	return func(yield func(int32)) {
		for ch := range feed.NumChannels {
			for _, a := range list(ch) {
				yield(a)
			}
		}
	}
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	d := r.Data
	fmt.Fprintf(w, "offline report, build %s\n", r.Version)
	fmt.Fprintf(w, "data: %d articles, %d users, %d impressions, %d shown, %d clicks (CTR %.2f%%)\n",
		d.Articles, d.Users, d.Impressions, d.Shown, d.Clicks, 100*float64(d.Clicks)/float64(max(1, d.Shown)))
	if d.Skipped != nil {
		fmt.Fprintf(w, "skipped: %s\n", d.Skipped)
	}
	if len(r.Rankers) == 0 {
		fmt.Fprintf(w, "no hold-out: built from everything up to %s\n", d.Cutoff)
		return
	}
	fmt.Fprintf(w, "hold-out from %s: %d impressions, %d shown, %d clicks (%.1f%% on articles first shown after the cutoff); trained on %d samples\n",
		d.Cutoff, d.HoldoutRows, d.HoldoutSamples, d.HoldoutClicks, 100*float64(d.UnknownArticles)/float64(max(1, d.HoldoutClicks)), d.TrainSamples)
	fmt.Fprintf(w, "\nMIND's metrics per impression, averaged over the %d hold-out impressions with a click and a non-click; pooled AUC and log-loss over all %d shown\n",
		d.RankedImpressions, d.HoldoutSamples)
	fmt.Fprintf(w, "%-16s %8s %8s %8s %8s   %10s %9s\n", "ranker", "AUC", "MRR", "nDCG@5", "nDCG@10", "pooled AUC", "log-loss")
	for _, m := range r.Rankers {
		fmt.Fprintf(w, "%-16s %8.4f %8.4f %8.4f %8.4f   %10.4f %9.4f\n", m.Name, m.AUC, m.MRR, m.NDCG5, m.NDCG10, m.PooledAUC, m.LogLoss)
	}
	fmt.Fprintf(w, "\n%-16s %10s %10s   (coverage of the %d fresh articles)\n", "recall source", "recall@50", "coverage", d.FreshArticles)
	for _, m := range r.Recall {
		fmt.Fprintf(w, "%-16s %10.4f %10.4f\n", m.Source, m.RecallAt50, m.Coverage)
	}
}

// MarshalJSON writes NaN (a metric with nothing to measure) as null.
func (m RankerMetrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name      string   `json:"name"`
		AUC       *float64 `json:"auc"`
		MRR       *float64 `json:"mrr"`
		NDCG5     *float64 `json:"ndcg_5"`
		NDCG10    *float64 `json:"ndcg_10"`
		PooledAUC *float64 `json:"pooled_auc"`
		LogLoss   *float64 `json:"log_loss"`
	}{m.Name, nanNull(m.AUC), nanNull(m.MRR), nanNull(m.NDCG5), nanNull(m.NDCG10), nanNull(m.PooledAUC), nanNull(m.LogLoss)})
}

// MarshalJSON writes NaN as null.
func (m RecallMetrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Source     string   `json:"source"`
		RecallAt50 *float64 `json:"recall_at_50"`
		Coverage   *float64 `json:"coverage"`
	}{m.Source, nanNull(m.RecallAt50), nanNull(m.Coverage)})
}

func nanNull(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func (r *Report) writeFile(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ReportFile), append(b, '\n'))
}

// writeFileAtomic writes path under a temporary name in its directory and
// renames it into place, so a reader sees the old file or the new one, never
// half of one.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	// After the rename there is nothing to remove; before it, the write's error
	// is the one to report.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close() // the file is dropped: the error above is the one to report
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close() // the file is dropped: the error above is the one to report
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close() // the file is dropped: the error above is the one to report
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeModel writes m as dir/{id}.json.
func writeModel(dir string, m *model.Model) error {
	b, err := m.Encode()
	if err != nil {
		return fmt.Errorf("encode model %d: %w", m.ID, err)
	}
	return writeFileAtomic(filepath.Join(dir, fmt.Sprintf("%d.json", m.ID)), b)
}
