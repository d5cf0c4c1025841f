package offline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
)

// The tests share one small generated data set and one build of it (fixture),
// on the embedded backend in a temporary file.

var testData = dataset.GenerateConfig{Users: 600, Articles: 800, Days: 5, Seed: 3}

// smallData is for the tests that build into stores of their own.
var smallData = dataset.GenerateConfig{Users: 250, Articles: 400, Days: 4, Seed: 8}

// testVersion is the fixed build time of the tests' builds: recent, so
// history_recall's 90-day TTL keeps the versions.
var testVersion = time.Now().UTC().Truncate(24 * time.Hour)

type built struct {
	dir    string // holds data/, models/
	ds     *dataset.Dataset
	opts   Options
	stores Stores
	res    *Result
}

var shared struct {
	b       *built
	err     error
	cleanup []func() error
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range shared.cleanup {
		_ = c()
	}
	if shared.b != nil {
		_ = os.RemoveAll(shared.b.dir) // a temporary directory: a leftover harms nothing
	}
	os.Exit(code)
}

// openStore opens a fresh embedded store in dir.
func openStore(tb testing.TB, path string) (Stores, func() error) {
	tb.Helper()
	db, cleanup, err := embedded.Open(embedded.Config{Path: path, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.Tables().Bootstrap(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return Stores{db.Tables(), db.Sets()}, cleanup
}

// generate writes a data set into dir/data.
func generate(tb testing.TB, dir string, cfg dataset.GenerateConfig) *dataset.Dataset {
	tb.Helper()
	ds, err := dataset.Generate(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := dataset.WriteDir(filepath.Join(dir, "data"), ds); err != nil {
		tb.Fatal(err)
	}
	return ds
}

// testOptions are the defaults with a lighter ALS and, under the race detector,
// fewer training epochs: the loops they shorten run on one goroutine, so the
// detector loses nothing, and the tests stay within seconds.
func testOptions(dir string) Options {
	o := DefaultOptions()
	o.DataDir, o.ModelDir, o.Version = filepath.Join(dir, "data"), filepath.Join(dir, "models"), testVersion
	o.ALS.Factors, o.ALS.Iterations = 16, 5
	if raceDetector {
		o.Logistic.Epochs, o.FM.Epochs = 1, 2
	}
	return o
}

// fixture is the shared build, made on first use.
func fixture(t *testing.T) *built {
	t.Helper()
	if shared.b == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "offline-test-*")
		if err != nil {
			t.Fatal(err)
		}
		b := &built{dir: dir, ds: generate(t, dir, testData), opts: testOptions(dir)}
		var cleanup func() error
		b.stores, cleanup = openStore(t, filepath.Join(dir, "reco.db"))
		shared.cleanup = append(shared.cleanup, cleanup)
		b.res, shared.err = Build(context.Background(), b.opts, b.stores)
		shared.b = b
	}
	if shared.err != nil {
		t.Fatalf("fixture build: %v", shared.err)
	}
	return shared.b
}

func (b *built) users() []string {
	var out []string
	seen := map[string]bool{}
	for _, bh := range b.ds.Behaviors {
		if !seen[bh.User] {
			seen[bh.User] = true
			out = append(out, bh.User)
		}
	}
	slices.Sort(out)
	return out
}

func (b *built) channelOf() map[int64]int32 {
	m := map[int64]int32{}
	for _, a := range b.ds.Articles {
		m[a.ID] = dataset.Channel(a.Category)
	}
	return m
}

// clickedBeforeCutoff is each user's clicks the build could know: history and
// impressions before the hold-out day.
func (b *built) clickedBeforeCutoff() map[string]map[int64]bool {
	last := b.ds.Behaviors[len(b.ds.Behaviors)-1].Time.UTC().Truncate(24 * time.Hour)
	out := map[string]map[int64]bool{}
	for _, bh := range b.ds.Behaviors {
		m := out[bh.User]
		if m == nil {
			m = map[int64]bool{}
			out[bh.User] = m
		}
		for _, id := range bh.History {
			m[id] = true
		}
		if bh.Time.Before(last) {
			for _, im := range bh.Impressions {
				if im.Clicked {
					m[im.Article] = true
				}
			}
		}
	}
	return out
}

// recallSources are the sources a build could write recall runs of.
var recallSources = []feed.Source{feed.SourceALS, feed.SourceContent, feed.SourceOnline}

// allChannels are the channels a build writes.
func allChannels() []int32 {
	chs := make([]int32, feed.NumChannels)
	for ch := range feed.NumChannels {
		chs[ch] = ch
	}
	return chs
}

// recallRuns reads u's recall runs of every channel, keyed by channel then
// source.
func recallRuns(t *testing.T, st Stores, u string) map[int32]map[feed.Source][]storage.Version {
	t.Helper()
	out := map[int32]map[feed.Source][]storage.Version{}
	for ch := range feed.NumChannels {
		runs, err := st.Tables.Read(context.Background(), u, ch, recallSources)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > 0 {
			out[ch] = runs
		}
	}
	return out
}

// lists are the channel lists a build writes, with their names in messages.
var lists = []struct {
	list storage.ChannelList
	name string
}{{storage.NewList, "new"}, {storage.HotList, "hot"}}

func TestBuildWritesArticleFeaturesAndSimilarity(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	chOf := b.channelOf()
	ids := make([]int64, 0, len(chOf))
	for _, a := range b.ds.Articles {
		ids = append(ids, a.ID)
	}
	vecs, err := b.stores.Tables.ArticleVectors(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	withNeighbours := 0
	for _, id := range ids {
		v := vecs[id]
		if len(v) != model.ArticleFeatureLen {
			t.Fatalf("article %d: %d features, want %d", id, len(v), model.ArticleFeatureLen)
		}
		if int32(v[0]) != chOf[id] {
			t.Fatalf("article %d: channel feature %v, want %d", id, v[0], chOf[id])
		}
		kw := v[1 : 1+model.KeywordWeightsLen]
		if !slices.IsSortedFunc(kw, func(a, b float64) int { return -cmpFloat(a, b) }) || kw[0] <= 0 || kw[0] > 1 {
			t.Fatalf("article %d: keyword weights %v are not descending in (0, 1]", id, kw)
		}
		sim, err := b.stores.Tables.Similar(ctx, id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(sim) > b.opts.SimilarK {
			t.Fatalf("article %d has %d similar articles, want at most %d", id, len(sim), b.opts.SimilarK)
		}
		if len(sim) > 0 {
			withNeighbours++
		}
		for i, s := range sim {
			if s.ID == id || s.Score <= 0 || s.Score > 1+1e-9 || (i > 0 && s.Score > sim[i-1].Score) {
				t.Fatalf("article %d: similar %v: want other articles, scores descending in (0, 1]", id, sim)
			}
		}
	}
	if withNeighbours < len(ids)*9/10 {
		t.Errorf("only %d of %d articles have similar articles", withNeighbours, len(ids))
	}
}

// TestSimilarArticlesShareChannelAndSubject: neighbours are always of the
// article's channel (by construction), and share its subcategory far more often
// than two articles of the channel do by chance — the vectors carry the
// subject.
func TestSimilarArticlesShareChannelAndSubject(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	byID := map[int64]dataset.Article{}
	subsOf := map[string]map[string]int{}
	for _, a := range b.ds.Articles {
		byID[a.ID] = a
		if subsOf[a.Category] == nil {
			subsOf[a.Category] = map[string]int{}
		}
		subsOf[a.Category][a.Subcategory]++
	}
	var pairs, sameChannel, sameSub float64
	var chance float64
	for _, a := range b.ds.Articles {
		sim, err := b.stores.Tables.Similar(ctx, a.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range subsOf[a.Category] {
			total += n
		}
		for _, s := range sim {
			o := byID[s.ID]
			pairs++
			if dataset.Channel(o.Category) == dataset.Channel(a.Category) {
				sameChannel++
			}
			if o.Subcategory == a.Subcategory {
				sameSub++
			}
			chance += float64(subsOf[a.Category][a.Subcategory]-1) / float64(max(1, total-1))
		}
	}
	if sameChannel != pairs {
		t.Errorf("%.0f of %.0f similar articles share the channel, want all", sameChannel, pairs)
	}
	got, base := sameSub/pairs, chance/pairs
	t.Logf("similar articles share the subcategory %.2f of the time; chance %.2f", got, base)
	if got < 2*base || got < 0.5 {
		t.Errorf("similar articles share the subcategory %.2f of the time, chance is %.2f", got, base)
	}
}

func TestBuildWritesUserFeatures(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	chOf := b.channelOf()
	clicked := b.clickedBeforeCutoff()
	for _, u := range b.users()[:100] {
		clickedIn := map[int32]bool{}
		for id := range clicked[u] {
			clickedIn[chOf[id]] = true
		}
		weights, err := b.stores.Tables.UserWeights(ctx, u, allChannels())
		if err != nil {
			t.Fatal(err)
		}
		for ch := range feed.NumChannels {
			w := weights[ch]
			want := clickedIn[ch] || (ch == feed.ChannelAll && len(clicked[u]) > 0)
			if !want {
				if w != nil {
					t.Fatalf("user %s never clicked in channel %d but has weights %v", u, ch, w)
				}
				continue
			}
			if len(w) != model.UserWeightsLen || w[0] <= 0 || w[0] >= 1 {
				t.Fatalf("user %s channel %d: weights %v, want %d with interest in (0, 1)", u, ch, w, model.UserWeightsLen)
			}
		}
	}
}

func TestBuildWritesRecallAndHistoryRecall(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	chOf := b.channelOf()
	clicked := b.clickedBeforeCutoff()
	ts := testVersion.UnixMilli()
	withALS, withContent := 0, 0
	for _, u := range b.users() {
		hr, err := b.stores.Tables.Recalled(ctx, u, allChannels())
		if err != nil {
			t.Fatal(err)
		}
		union := map[int32][]int64{}
		for ch, runs := range recallRuns(t, b.stores, u) {
			for src, vs := range runs {
				if src == feed.SourceOnline {
					t.Fatalf("user %s: the build wrote online recall in channel %d", u, ch)
				}
				if len(vs) != 1 || vs[0].Timestamp != ts {
					t.Fatalf("user %s source %d channel %d: runs %v, want one at %d", u, src, ch, vs, ts)
				}
				ids := vs[0].IDs
				if len(ids) == 0 || (ch == 0 && len(ids) > b.opts.RecallAllN) {
					t.Fatalf("user %s source %d channel %d: %d ids", u, src, ch, len(ids))
				}
				for _, id := range ids {
					if ch != 0 && chOf[id] != ch {
						t.Fatalf("user %s source %d channel %d holds article %d of channel %d", u, src, ch, id, chOf[id])
					}
					if clicked[u][id] {
						t.Fatalf("user %s source %d channel %d recalls article %d the user already clicked", u, src, ch, id)
					}
				}
				for _, id := range ids {
					if !slices.Contains(union[ch], id) {
						union[ch] = append(union[ch], id)
					}
				}
				if src == feed.SourceALS && ch == 0 {
					withALS++
				}
				if src == feed.SourceContent && ch == 0 {
					withContent++
				}
			}
		}
		if len(hr) != len(union) {
			t.Fatalf("user %s: recalled runs in %d channels, recall in %d", u, len(hr), len(union))
		}
		for ch, vs := range hr {
			got := slices.Clone(vs[0].IDs)
			want := slices.Clone(union[ch])
			slices.Sort(got)
			slices.Sort(want)
			if len(vs) != 1 || vs[0].Timestamp != ts || !reflect.DeepEqual(got, want) {
				t.Fatalf("user %s recalled in channel %d = %v, want one run at %d holding the recalled ids", u, ch, vs, ts)
			}
		}
	}
	n := len(b.users())
	if withALS < n*8/10 || withContent < n*8/10 {
		t.Errorf("of %d users, %d have ALS recall and %d content recall; want most", n, withALS, withContent)
	}
}

func TestBuildWritesNewAndHotLists(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	chOf := b.channelOf()
	nonEmpty := 0
	for ch := range feed.NumChannels {
		for _, l := range lists {
			top, err := b.stores.Sets.Top(ctx, l.list, ch, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(top) > b.opts.SetSize {
				t.Fatalf("channel %d %s list holds %d, want at most %d", ch, l.name, len(top), b.opts.SetSize)
			}
			if len(top) > 0 {
				nonEmpty++
			}
			for _, s := range top {
				if ch != 0 && chOf[s.ID] != ch {
					t.Fatalf("channel %d %s list holds article %d of channel %d", ch, l.name, s.ID, chOf[s.ID])
				}
				if s.Score <= 0 {
					t.Fatalf("channel %d %s list: score %v of %d, want positive (a time, a click count)", ch, l.name, s.Score, s.ID)
				}
			}
		}
	}
	newAll, _ := b.stores.Sets.Top(ctx, storage.NewList, 0, 1)
	last := b.ds.Behaviors[len(b.ds.Behaviors)-1].Time.UTC().Truncate(24 * time.Hour)
	if len(newAll) != 1 || time.UnixMilli(int64(newAll[0].Score)).After(last) {
		t.Errorf("channel 0 new list head = %v, want an article published before the hold-out day %v", newAll, last)
	}
	if nonEmpty < 20 {
		t.Errorf("only %d new and hot lists are set", nonEmpty)
	}
}

func TestModelsAndReportFiles(t *testing.T) {
	b := fixture(t)
	for id, kind := range map[int32]string{200: model.KindLogistic, 201: model.KindFM} {
		m, err := model.Load(filepath.Join(b.opts.ModelDir, fmt.Sprintf("%d.json", id)))
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != id || m.Kind != kind || m.Version != testVersion.Format(time.RFC3339) {
			t.Errorf("model %d: id %d kind %q version %q", id, m.ID, m.Kind, m.Version)
		}
	}
	raw, err := os.ReadFile(filepath.Join(b.opts.ModelDir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Rankers) != 3 || len(r.Recall) != 4 || r.Data.HoldoutSamples == 0 {
		t.Errorf("report.json = %s", raw)
	}
	if r.Data.RankedImpressions == 0 || r.Data.RankedImpressions > r.Data.HoldoutRows {
		t.Errorf("%d ranked hold-out impressions of %d", r.Data.RankedImpressions, r.Data.HoldoutRows)
	}
	for _, m := range r.Rankers {
		for name, v := range map[string]float64{"AUC": m.AUC, "MRR": m.MRR, "nDCG@5": m.NDCG5, "nDCG@10": m.NDCG10, "pooled AUC": m.PooledAUC} {
			if !(v > 0 && v < 1) {
				t.Errorf("ranker %s: %s = %v, want in (0, 1)", m.Name, name, v)
			}
		}
	}
	for _, m := range r.Recall {
		if m.RecallAt50 < 0 || m.RecallAt50 > 1 || m.Coverage < 0 || m.Coverage > 1 {
			t.Errorf("recall source %s: recall@50 %v, coverage %v", m.Source, m.RecallAt50, m.Coverage)
		}
	}
	var table strings.Builder
	b.res.Report.WriteTable(&table)
	for _, want := range []string{"AUC      MRR   nDCG@5  nDCG@10   pooled AUC  log-loss", "200 logistic", "201 fm", "popularity", "100 als", "101 content", "103 new", "104 hot"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("report table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestModelsBeatPopularity(t *testing.T) {
	b := fixture(t)
	byName := map[string]RankerMetrics{}
	for _, m := range b.res.Report.Rankers {
		byName[m.Name] = m
	}
	pop := byName["popularity"]
	for _, name := range []string{"200 logistic", "201 fm"} {
		m := byName[name]
		t.Logf("%s: %+v; popularity %+v", name, m, pop)
		if !(m.PooledAUC > pop.PooledAUC+0.05) || !(m.AUC > pop.AUC) || !(m.MRR > pop.MRR) || !(m.NDCG5 > pop.NDCG5) ||
			!(m.NDCG10 > pop.NDCG10) || !(m.LogLoss < pop.LogLoss) {
			t.Errorf("%s %+v does not beat popularity %+v", name, m, pop)
		}
	}
}

// snapshot reads everything a build writes, through the storage interfaces.
func snapshot(t *testing.T, b *built, st Stores, modelDir string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	put := func(k string, v any) {
		j, _ := json.Marshal(v)
		out[k] = string(j)
	}
	var ids []int64
	for _, a := range b.ds.Articles {
		ids = append(ids, a.ID)
	}
	vecs, err := st.Tables.ArticleVectors(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		put(fmt.Sprint("feature/", id), vecs[id])
		sim, err := st.Tables.Similar(ctx, id, 1000)
		if err != nil {
			t.Fatal(err)
		}
		put(fmt.Sprint("similar/", id), sim)
	}
	for _, u := range b.users() {
		weights, err := st.Tables.UserWeights(ctx, u, allChannels())
		if err != nil {
			t.Fatal(err)
		}
		put("user/"+u, weights)
		put("recall/"+u, recallRuns(t, st, u))
		hr, err := st.Tables.Recalled(ctx, u, allChannels())
		if err != nil {
			t.Fatal(err)
		}
		put("recalled/"+u, hr)
	}
	for ch := range feed.NumChannels {
		for _, l := range lists {
			top, err := st.Sets.Top(ctx, l.list, ch, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			put(fmt.Sprint("list/", ch, "/", l.name), top)
		}
	}
	for _, f := range []string{"200.json", "201.json", ReportFile, ContentFile} {
		raw, _ := os.ReadFile(filepath.Join(modelDir, f))
		out["file/"+f] = string(raw)
	}
	return out
}

func diffSnapshots(t *testing.T, before, after map[string]string) {
	t.Helper()
	n := 0
	for k, v := range before {
		if after[k] != v && n < 5 {
			t.Errorf("%s changed:\n before %.300s\n after  %.300s", k, v, after[k])
			n++
		}
	}
	if len(before) != len(after) {
		t.Errorf("%d keys before, %d after", len(before), len(after))
	}
}

// TestRebuildIsSafe builds a data set into a store of its own three times.
// Again with the same version: every table, list and file is as the first run
// left it, recall versions included (a build ignores its own history_recall
// version). Then with a later version: the build adds a recall version whose
// candidates skip everything history_recall holds.
func TestRebuildIsSafe(t *testing.T) {
	dir := t.TempDir()
	b := &built{dir: dir, ds: generate(t, dir, smallData), opts: testOptions(dir)}
	st, cleanup := openStore(t, filepath.Join(dir, "reco.db"))
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	b.stores = st
	// Short lists, so the first build leaves fresh candidates for the later one.
	b.opts.RecallN, b.opts.RecallAllN = 20, 10
	ctx := context.Background()
	if _, err := Build(ctx, b.opts, st); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, b, st, b.opts.ModelDir)
	if _, err := Build(ctx, b.opts, st); err != nil {
		t.Fatal(err)
	}
	diffSnapshots(t, before, snapshot(t, b, st, b.opts.ModelDir))

	later := b.opts
	later.Version = testVersion.Add(24 * time.Hour)
	if _, err := Build(ctx, later, st); err != nil {
		t.Fatal(err)
	}
	twoVersions := 0
	for _, u := range b.users() {
		hr, err := st.Tables.Recalled(ctx, u, allChannels())
		if err != nil {
			t.Fatal(err)
		}
		var first, second []int64
		for _, vs := range hr {
			for _, v := range vs {
				switch v.Timestamp {
				case later.Version.UnixMilli():
					second = append(second, v.IDs...)
				case b.opts.Version.UnixMilli():
					first = append(first, v.IDs...)
				default:
					t.Fatalf("user %s: recalled run at %d", u, v.Timestamp)
				}
			}
		}
		if len(first) > 0 && len(second) > 0 {
			twoVersions++
		}
		for _, id := range second {
			if slices.Contains(first, id) {
				t.Fatalf("user %s: the later build recalled article %d again", u, id)
			}
		}
	}
	if twoVersions < len(b.users())/2 {
		t.Errorf("only %d of %d users got a second recall version", twoVersions, len(b.users()))
	}
}

// assertNothingWritten checks that no table, list or model file of a build is
// visible.
func assertNothingWritten(t *testing.T, b *built, st Stores, wantTables bool) {
	t.Helper()
	ctx := context.Background()
	for ch := range feed.NumChannels {
		for _, l := range lists {
			if top, err := st.Sets.Top(ctx, l.list, ch, 1); err != nil || len(top) > 0 {
				t.Errorf("channel %d %s list = %v, %v after a failed build; want empty", ch, l.name, top, err)
			}
		}
	}
	for _, f := range []string{"200.json", "201.json", ReportFile, ContentFile} {
		if _, err := os.Stat(filepath.Join(b.opts.ModelDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed build (%v)", f, err)
		}
	}
	if !wantTables {
		vecs, err := st.Tables.ArticleVectors(ctx, []int64{b.ds.Articles[0].ID})
		if err != nil || len(vecs) > 0 {
			t.Errorf("article features %v, %v after a failed build; want none", vecs, err)
		}
	}
}

func TestMalformedInputFailsWithFileLineAndWritesNothing(t *testing.T) {
	src := fixture(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	news, _ := os.ReadFile(filepath.Join(src.opts.DataDir, dataset.NewsFile))
	behaviors, _ := os.ReadFile(filepath.Join(src.opts.DataDir, dataset.BehaviorsFile))
	lines := strings.SplitAfter(string(behaviors), "\n")
	lines[41] = strings.Replace(lines[41], "-0", "-x", 1) // line 42
	if err := os.WriteFile(filepath.Join(data, dataset.NewsFile), news, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, dataset.BehaviorsFile), []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &built{dir: dir, ds: src.ds, opts: testOptions(dir)}
	st, cleanup := openStore(t, filepath.Join(dir, "reco.db"))
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	_, err := Build(context.Background(), b.opts, st)
	want := filepath.Join(data, dataset.BehaviorsFile) + ":42: impression "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, dataset.ErrMalformed) {
		t.Fatalf("Build error = %v, want one starting %q", err, want)
	}
	assertNothingWritten(t, b, st, false)
}

// failingTables fails Load after some calls, as a store going away in the
// middle of a build would.
type failingTables struct {
	storage.Tables
	calls, failAt int
}

var errStoreGone = errors.New("store went away")

func (f *failingTables) Load(ctx context.Context, records []storage.Record) error {
	f.calls++
	if f.calls >= f.failAt {
		return errStoreGone
	}
	return f.Tables.Load(ctx, records)
}

// TestFailedWriteLeavesNoListsOrModels: when the tables fail half way, the
// models and the new and hot lists — what marks a store as built and what the
// feed falls back on — are not written.
func TestFailedWriteLeavesNoListsOrModels(t *testing.T) {
	dir := t.TempDir()
	b := &built{dir: dir, ds: generate(t, dir, smallData), opts: testOptions(dir)}
	b.opts.ChunkCells = 500
	st, cleanup := openStore(t, filepath.Join(dir, "reco.db"))
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	st.Tables = &failingTables{Tables: st.Tables, failAt: 5}
	_, err := Build(context.Background(), b.opts, st)
	if !errors.Is(err, errStoreGone) {
		t.Fatalf("Build error = %v, want %v", err, errStoreGone)
	}
	assertNothingWritten(t, b, st, true)
}

func TestOptionsValidate(t *testing.T) {
	good := testOptions(t.TempDir())
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*Options){
		"no data":    func(o *Options) { o.DataDir = "" },
		"no models":  func(o *Options) { o.ModelDir = "" },
		"no version": func(o *Options) { o.Version = time.Time{} },
		"holdout":    func(o *Options) { o.HoldoutDays = -1 },
		"fresh":      func(o *Options) { o.FreshDays = 0 },
		"negatives":  func(o *Options) { o.NegativesPerClick = 0 },
		"chunk":      func(o *Options) { o.ChunkCells = 0 },
		"als":        func(o *Options) { o.ALS.Factors = 0 },
	} {
		o := good
		mutate(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, o)
		}
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
