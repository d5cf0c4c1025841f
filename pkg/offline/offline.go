// Package offline is the offline job of the suite (`reco admin build`): it
// turns a news data set in MIND's format into everything the serving path reads
// (DESIGN.md §3, §5):
//
//   - article features (storage.ArticleVector: channel, 10 TF-IDF keyword
//     weights, a 100-d vector; see corpus.go) and each article's top-K most
//     similar articles of its channel (storage.Neighbours);
//   - each user's 10 interest weights per channel (storage.UserWeights; see
//     profile.go);
//   - recall sets per user and channel: collaborative filtering by implicit ALS
//     (source 100) and content recall from the neighbours of the user's recent
//     clicks (source 101), both skipping what recall already offered the user
//     (storage.Recalled) and recording what they offer there;
//   - CTR models 200 (logistic regression) and 201 (factorization machine) as
//     model files;
//   - the channels' new and hot lists (storage.ChannelLists);
//   - the content model (ContentFile): what publishing an article after the
//     build needs to give it features and similar articles (publish.go);
//   - an offline report on a time-based hold-out (the last day).
//
// # Time
//
// The last HoldoutDays days of behaviours are held out: everything written is
// computed from the days before (the cutoff), so the report measures exactly
// what is served. An article's publish time is its first appearance in an
// impression. Content is known at publish time, so article features and
// similarity cover all of news.tsv; clicks, recall candidates and the new and
// hot lists only use what happened before the cutoff.
//
// # Writes
//
// Everything is computed in memory before the first write, so a malformed input
// line or a failed step leaves the stores untouched. Writes then go in an order
// that keeps the serving path consistent: tables (features and similarity,
// looked up by id; then each user's recall sets together with the record of
// what they offered), then model files (each renamed into place whole),
// then the new and hot lists last — they are what marks a store as built. The
// recall runs carry the fixed timestamp Options.Version, and a build ignores
// the recorded runs at that timestamp (its own), so running the same build
// again writes the same values: re-running is safe.
package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/train"
)

// Stores are what a build writes.
type Stores struct {
	Tables storage.Tables
	Sets   storage.Sets
}

// Options configure a build. DefaultOptions gives working values for all but
// the paths and the version.
type Options struct {
	// DataDir holds news.tsv and behaviors.tsv.
	DataDir string
	// ModelDir receives 200.json, 201.json, report.json and the content model
	// that publishing reads (ContentFile).
	ModelDir string
	// Version is the build's fixed time: the timestamp of every recall run it
	// writes and the version of its models. Keep it within the recall sets'
	// 90-day TTL of now, or the runs are born expired.
	Version time.Time
	// HoldoutDays is how many of the last days are held out for the report; 0
	// builds from everything and reports no hold-out metrics.
	HoldoutDays int
	// SkipUnknown builds from data whose behaviours name articles news.tsv
	// lacks: those references are dropped, counted and reported
	// (Report.Data.Skipped) instead of failing the build.
	SkipUnknown bool
	// FreshDays is how far back before the cutoff an article still counts as
	// news: recall candidates and hot counts come from these days.
	FreshDays int
	// SimilarK is the number of similar articles kept per article.
	SimilarK int
	// RecallN is the number of candidates per user and recall source, split by
	// channel into {source}:{ch}; the first RecallAllN go to {source}:0 too.
	RecallN    int
	RecallAllN int
	// SetSize bounds each new and hot list.
	SetSize int
	// NegativesPerClick is the ratio of unclicked to clicked impressions kept for
	// training (unclicked ones are sampled down to it; models are corrected).
	NegativesPerClick float64
	ALS               ALSConfig
	Logistic, FM      train.Config
	// Seed fixes every random choice (SVD sketches, ALS start, sampling, SGD
	// order): the same input and seed give the same stores and models.
	Seed uint64
	// ChunkCells is the number of records per Loader.Load call. A user's recall
	// runs and the recalled runs that record them are never split, so a chunk
	// may exceed it by one user's records.
	ChunkCells int
	// Progress receives progress lines (nil: quiet); TTY redraws bars instead.
	Progress io.Writer
	TTY      bool
}

// DefaultOptions returns the tuned defaults.
func DefaultOptions() Options {
	return Options{
		HoldoutDays:       1,
		FreshDays:         3,
		SimilarK:          20,
		RecallN:           200,
		RecallAllN:        100,
		SetSize:           1000,
		NegativesPerClick: 5,
		ALS:               ALSConfig{Factors: 48, Iterations: 10, Alpha: 20, Lambda: 0.5, CGSteps: 3},
		Logistic:          train.Config{Epochs: 3, LearningRate: 0.05, L2: 1e-6},
		FM:                train.Config{Epochs: 4, LearningRate: 0.03, L2: 1e-5, Factors: 12, InitStd: 0.01},
		Seed:              1,
		ChunkCells:        4000,
	}
}

// Validate reports the first unusable option.
func (o Options) Validate() error {
	switch {
	case o.DataDir == "":
		return errors.New("the data directory is required")
	case o.ModelDir == "":
		return errors.New("the model directory is required")
	case o.Version.IsZero():
		return errors.New("the build version (time) is required")
	case o.HoldoutDays < 0:
		return fmt.Errorf("holdout days must be >= 0, got %d", o.HoldoutDays)
	case o.FreshDays < 1:
		return fmt.Errorf("fresh days must be at least 1, got %d", o.FreshDays)
	case o.SimilarK < 1 || o.RecallN < 1 || o.RecallAllN < 1 || o.SetSize < 1:
		return errors.New("similar, recall and set sizes must be at least 1")
	case !(o.NegativesPerClick > 0):
		return fmt.Errorf("negatives per click must be positive, got %v", o.NegativesPerClick)
	case o.ALS.Factors < 1 || o.ALS.Iterations < 1 || o.ALS.CGSteps < 1:
		return errors.New("ALS factors, iterations and CG steps must be at least 1")
	case o.ChunkCells < 1:
		return fmt.Errorf("chunk cells must be at least 1, got %d", o.ChunkCells)
	}
	return nil
}

// Result is what a build produced besides the stores and files.
type Result struct {
	Report *Report
	Steps  []StepStats
	// ExampleUser is a user with recall sets, to try the feed with.
	ExampleUser string
}

const day = 24 * time.Hour

// build is one run's state.
type build struct {
	opts Options
	ds   *dataset.Dataset
	// skipped is what Options.SkipUnknown dropped from the input.
	skipped dataset.Skipped
	c       *corpus
	u       *users

	logStart time.Time // first day of the log, 00:00 UTC
	cutoff   time.Time // first held-out instant; after the log when nothing is held out
	days     int       // training days, logStart..cutoff
	// clicksByDay counts each article's clicks per training day.
	clicksByDay []float64

	similar, freshSimilar [][]neighbour
	als                   *alsModel
	alsLists, contentList [][]int32
	recalled              []map[int64]bool // per user: ids recall offered in other builds
	models                [2]*model.Model
	platt                 [2]float64 // popularity baseline: σ(a + b·ln(1+clicks))
	train, holdout        *sampleSet
	profiles              []profile
}

// Build runs the whole job: it reads opts.DataDir, computes, then writes stores
// and opts.ModelDir.
func Build(ctx context.Context, opts Options, st Stores) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("invalid build options: %w", err)
	}
	m := newMeter()
	res, err := run(ctx, opts, st, m)
	steps := m.close()
	if err != nil {
		return nil, err
	}
	res.Steps = steps
	return res, nil
}

func run(ctx context.Context, opts Options, st Stores, m *meter) (*Result, error) {
	prog := &progress{w: opts.Progress, tty: opts.TTY, lineEvery: 5 * time.Second}
	b := &build{opts: opts}

	m.step("read")
	bar := prog.start("read", 1)
	ds, skipped, err := dataset.ReadWith(opts.DataDir, dataset.ReadOptions{SkipUnknown: opts.SkipUnknown})
	if err != nil {
		return nil, err
	}
	b.ds, b.skipped = ds, skipped
	var note string
	if skipped.Total() > 0 {
		note = "; skipped " + skipped.String()
	}
	bar.finish("%d articles, %d behaviours%s", len(ds.Articles), len(ds.Behaviors), note)

	m.step("prepare")
	if err := b.prepare(); err != nil {
		return nil, err
	}

	m.step("articles")
	bar = prog.start("articles", 4)
	if err := b.c.buildFeatures(ctx, ds.Articles, opts.Seed, bar); err != nil {
		return nil, err
	}
	bar.finish("TF-IDF keywords and 100-d vectors of %d articles; e.g. %s: %v", len(b.c.ids), dataset.FormatArticleID(b.c.ids[0]), b.c.keywords[0])

	m.step("similar")
	bar = prog.start("similar", len(b.c.ids))
	if b.similar, b.freshSimilar, err = similarities(ctx, b.c, opts.SimilarK, opts.SimilarK, bar); err != nil {
		return nil, err
	}
	bar.finish("top %d similar articles per article, within its channel", opts.SimilarK)

	m.step("als")
	bar = prog.start("als", opts.ALS.Iterations)
	inter := b.interactions()
	if b.als, err = trainALS(ctx, inter, opts.ALS, opts.Seed, bar); err != nil {
		return nil, err
	}
	bar.finish("%d factors, %d sweeps over %d users × %d articles", opts.ALS.Factors, opts.ALS.Iterations, inter.users, inter.items)

	m.step("recall")
	bar = prog.start("recall", 3*len(b.u.names))
	if err := b.buildRecall(ctx, st.Tables, inter, bar); err != nil {
		return nil, err
	}
	bar.finish("up to %d ALS and %d content candidates per user", opts.RecallN, opts.RecallN)

	m.step("models")
	if err := b.trainModels(ctx, prog); err != nil {
		return nil, err
	}

	m.step("evaluate")
	report := b.evaluate()

	m.step("write-tables")
	if err := b.writeTables(ctx, st.Tables, prog); err != nil {
		return nil, err
	}
	m.step("write-models")
	for _, md := range b.models {
		if err := writeModel(opts.ModelDir, md); err != nil {
			return nil, err
		}
	}
	if err := b.writeContentModel(); err != nil {
		return nil, err
	}
	m.step("write-sets")
	if err := b.writeSets(ctx, st.Sets, prog); err != nil {
		return nil, err
	}
	m.step("write-report")
	if err := report.writeFile(opts.ModelDir); err != nil {
		return nil, err
	}
	res := &Result{Report: report}
	for ui, name := range b.u.names {
		if len(b.alsLists[ui]) > 0 {
			res.ExampleUser = name
			break
		}
	}
	return res, nil
}

// users is everyone in behaviors.tsv, sorted by id.
type users struct {
	names   []string
	index   map[string]int32
	history [][]int32 // pre-log clicks, oldest first
	// trainRows and holdoutRows are the user's behaviours (indices), by time.
	trainRows, holdoutRows [][]int32
	// recent is the user's last distinct clicks before the cutoff, newest first.
	recent [][]int32
	// clicked is every article the user clicked before the cutoff.
	clicked []map[int32]bool
}

// recentClicks is how many of a user's latest clicks seed content recall.
const recentClicks = 20

// prepare splits the log in time, finds publish times and gathers each user's
// behaviours and clicks.
func (b *build) prepare() error {
	ds := b.ds
	b.c = newCorpus(ds.Articles)
	minT, maxT := ds.Behaviors[0].Time, ds.Behaviors[0].Time
	for _, bh := range ds.Behaviors {
		minT, maxT = minTime(minT, bh.Time), maxTime(maxT, bh.Time)
	}
	b.logStart = minT.UTC().Truncate(day)
	if b.opts.HoldoutDays > 0 {
		b.cutoff = maxT.UTC().Truncate(day).Add(-time.Duration(b.opts.HoldoutDays-1) * day)
		if !minT.Before(b.cutoff) {
			return fmt.Errorf("the %d held-out days hold every behaviour (%s..%s): lower the hold-out", b.opts.HoldoutDays, minT.Format(time.DateOnly), maxT.Format(time.DateOnly))
		}
	} else {
		b.cutoff = maxT.Add(time.Millisecond)
	}
	b.days = int(math.Ceil(float64(b.cutoff.Sub(b.logStart)) / float64(day)))
	freshFrom := b.cutoff.Add(-time.Duration(b.opts.FreshDays) * day).UnixMilli()
	cutoff := b.cutoff.UnixMilli()
	for _, bh := range ds.Behaviors {
		t := bh.Time.UnixMilli()
		for _, im := range bh.Impressions {
			a := b.c.index[im.Article]
			if p := b.c.published[a]; p == 0 || t < p {
				b.c.published[a] = t
			}
		}
	}
	for a, p := range b.c.published {
		b.c.known[a] = p != 0 && p < cutoff
		b.c.fresh[a] = b.c.known[a] && p >= freshFrom
	}

	// Users, sorted by id; each one's rows by time (then impression id).
	u := &users{index: map[string]int32{}}
	for _, bh := range ds.Behaviors {
		if _, ok := u.index[bh.User]; !ok {
			u.index[bh.User] = 0
			u.names = append(u.names, bh.User)
		}
	}
	slices.Sort(u.names)
	for i, name := range u.names {
		u.index[name] = int32(i)
	}
	n := len(u.names)
	u.history = make([][]int32, n)
	u.trainRows, u.holdoutRows = make([][]int32, n), make([][]int32, n)
	order := make([]int32, len(ds.Behaviors))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(x, y int32) int {
		if c := ds.Behaviors[x].Time.Compare(ds.Behaviors[y].Time); c != 0 {
			return c
		}
		return int(ds.Behaviors[x].ID - ds.Behaviors[y].ID)
	})
	seenHistory := make([]bool, n)
	for _, r := range order {
		bh := &ds.Behaviors[r]
		ui := u.index[bh.User]
		// MIND repeats a user's pre-log history on every line; the earliest
		// line's is used.
		if !seenHistory[ui] {
			seenHistory[ui] = true
			for _, id := range bh.History {
				u.history[ui] = append(u.history[ui], b.c.index[id])
			}
		}
		if bh.Time.Before(b.cutoff) {
			u.trainRows[ui] = append(u.trainRows[ui], r)
		} else {
			u.holdoutRows[ui] = append(u.holdoutRows[ui], r)
		}
	}

	// Clicks before the cutoff: per user, and per article and day.
	b.clicksByDay = make([]float64, len(b.c.ids)*b.days)
	u.recent = make([][]int32, n)
	u.clicked = make([]map[int32]bool, n)
	for ui := range n {
		seq := slices.Clone(u.history[ui])
		for _, r := range u.trainRows[ui] {
			bh := &ds.Behaviors[r]
			d := b.dayOf(bh.Time)
			for _, im := range bh.Impressions {
				if im.Clicked {
					a := b.c.index[im.Article]
					seq = append(seq, a)
					b.clicksByDay[int(a)*b.days+d]++
				}
			}
		}
		clicked := make(map[int32]bool, len(seq))
		for i := len(seq) - 1; i >= 0; i-- {
			a := seq[i]
			if !clicked[a] && len(u.recent[ui]) < recentClicks {
				u.recent[ui] = append(u.recent[ui], a)
			}
			clicked[a] = true
		}
		u.clicked[ui] = clicked
	}
	b.u = u
	return nil
}

// dayOf is the training-day index of t.
func (b *build) dayOf(t time.Time) int {
	return min(b.days-1, max(0, int(t.Sub(b.logStart)/day)))
}

// clicksBefore is article a's clicks in the training days before day d.
func (b *build) clicksBefore(a int32, d int) float64 {
	var s float64
	for _, v := range b.clicksByDay[int(a)*b.days : int(a)*b.days+d] {
		s += v
	}
	return s
}

// interactions is the ALS input: every pre-cutoff click, pre-log history
// included, counted per user and article.
func (b *build) interactions() *interactions {
	in := &interactions{users: len(b.u.names), items: len(b.c.ids)}
	in.byUser = make([][]entry, in.users)
	counts := map[int32]float64{}
	for ui := range in.users {
		clear(counts)
		for _, a := range b.u.history[ui] {
			counts[a]++
		}
		for _, r := range b.u.trainRows[ui] {
			for _, im := range b.ds.Behaviors[r].Impressions {
				if im.Clicked {
					counts[b.c.index[im.Article]]++
				}
			}
		}
		row := make([]entry, 0, len(counts))
		for a, n := range counts {
			row = append(row, entry{a, n})
		}
		slices.SortFunc(row, func(x, y entry) int { return int(x.idx - y.idx) })
		in.byUser[ui] = row
	}
	in.byItem = make([][]entry, in.items)
	for ui, row := range in.byUser {
		for _, e := range row {
			in.byItem[e.idx] = append(in.byItem[e.idx], entry{int32(ui), e.count})
		}
	}
	return in
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
