package offline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// newsLine is the news.tsv line of a, without its line ending.
func newsLine(t *testing.T, a dataset.Article) string {
	t.Helper()
	var buf bytes.Buffer
	if err := dataset.WriteNews(&buf, []dataset.Article{a}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// TestPublishReproducesTheBuild: the content model gives every article of the
// build exactly the features the build stored (the same text goes through the
// same arithmetic, so not even the sixth decimal moves), and the similar
// articles it stored, scores within the stored 6 decimals: the build takes
// its dot products in a blocked matrix product, publishing one by one, so a
// score can round the other way.
func TestPublishReproducesTheBuild(t *testing.T) {
	b := fixture(t)
	ctx := context.Background()
	cm, err := readContentModel(filepath.Join(b.opts.ModelDir, ContentFile))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(b.ds.Articles))
	for i, a := range b.ds.Articles {
		ids[i] = a.ID
	}
	stored, err := b.stores.Tables.ArticleVectors(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	const tol = 1e-6 + 1e-12
	sameNeighbours := 0
	for _, a := range b.ds.Articles {
		ch := dataset.Channel(a.Category)
		got, _ := cm.features(a, ch)
		want := stored[a.ID]
		if len(got) != model.ArticleFeatureLen || len(want) != len(got) {
			t.Fatalf("%s: %d features published, %d stored", dataset.FormatArticleID(a.ID), len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: feature %d published %v, stored %v", dataset.FormatArticleID(a.ID), i, got[i], want[i])
			}
		}
		sim := cm.similar(cm.channels[ch], a.ID, got)
		wantSim, err := b.stores.Tables.Similar(ctx, a.ID, b.opts.SimilarK)
		if err != nil {
			t.Fatal(err)
		}
		if len(sim) != len(wantSim) {
			t.Fatalf("%s: %d similar published, %d stored", dataset.FormatArticleID(a.ID), len(sim), len(wantSim))
		}
		same := true
		for i := range sim {
			if math.Abs(sim[i].Score-wantSim[i].Score) > tol {
				t.Fatalf("%s: similar %v published, %v stored", dataset.FormatArticleID(a.ID), sim, wantSim)
			}
			same = same && sim[i].ID == wantSim[i].ID
		}
		if same {
			sameNeighbours++
		}
	}
	// Only a tie within the last place can order two neighbours differently.
	if sameNeighbours < len(b.ds.Articles)*99/100 {
		t.Errorf("only %d of %d articles got the stored neighbours in the stored order", sameNeighbours, len(b.ds.Articles))
	}
}

func TestContentModelRejectsWhatItDidNotWrite(t *testing.T) {
	b := fixture(t)
	good, err := os.ReadFile(filepath.Join(b.opts.ModelDir, ContentFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeContentModel(good); err != nil {
		t.Fatalf("the build's own file: %v", err)
	}
	// resum recomputes the checksum, so a case reaches the check it is about.
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
		return b
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"empty", func([]byte) []byte { return nil }, "not a content model"},
		{"other magic", func(b []byte) []byte { b[0] = 'X'; return b }, "not a content model"},
		{"other format", func(b []byte) []byte { b[8] = 2; return resum(b) }, "format 2"},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, "checksum"},
		{"a flipped bit", func(b []byte) []byte { b[len(b)/3] ^= 4; return b }, "checksum"},
		{"other dimensions", func(b []byte) []byte { b[36]++; return resum(b) }, "dimension"},
		{"trailing bytes", func(b []byte) []byte {
			return resum(append(b[:len(b)-4], 0, 0, 0, 0, 0, 0, 0, 0))
		}, "after the last channel"},
		{"a NaN idf", func(b []byte) []byte {
			cm, _ := decodeContentModel(good)
			at := idfOffset(cm)
			binary.LittleEndian.PutUint64(b[at:], math.Float64bits(math.NaN()))
			return resum(b)
		}, "non-finite"},
		{"a huge count", func(b []byte) []byte {
			cm, _ := decodeContentModel(good)
			binary.LittleEndian.PutUint32(b[idfOffset(cm)-vocabBytes(cm)-4:], math.MaxUint32)
			return resum(b)
		}, "exceeds the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeContentModel(tt.mutate(slices.Clone(good)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// channelTableBytes, vocabBytes and idfOffset locate the vocabulary in a
// content model file (see ContentFile).
func channelTableBytes() int {
	n := 4
	for _, c := range dataset.Channels() {
		n += 4 + 4 + len(c.Category)
	}
	return n
}

func vocabBytes(cm *contentModel) int {
	n := 0
	for _, w := range cm.vocab.terms {
		n += 4 + len(w)
	}
	return n
}

func idfOffset(cm *contentModel) int {
	const header = 8 + 4 + 8 + 4 + 4 + 3*4
	return header + channelTableBytes() + 4 + vocabBytes(cm)
}

// publishFixture is a build of smallData into a store of its own, for tests
// that publish into it.
func publishFixture(t *testing.T) *built {
	t.Helper()
	dir := t.TempDir()
	b := &built{dir: dir, ds: generate(t, dir, smallData), opts: testOptions(dir)}
	st, cleanup := openStore(t, filepath.Join(dir, "reco.db"))
	t.Cleanup(func() { _ = cleanup() })
	b.stores = st
	var err error
	if b.res, err = Build(context.Background(), b.opts, st); err != nil {
		t.Fatal(err)
	}
	return b
}

// withNeighbours is an article of the build that has similar articles.
func (b *built) withNeighbours(t *testing.T) dataset.Article {
	t.Helper()
	for _, a := range b.ds.Articles {
		if sim, err := b.stores.Tables.Similar(context.Background(), a.ID, 1); err == nil && len(sim) > 0 {
			return a
		}
	}
	t.Fatal("no article has similar articles")
	return dataset.Article{}
}

// newID is an article id the data set does not hold.
func (b *built) newID(n int64) int64 {
	var top int64
	for _, a := range b.ds.Articles {
		top = max(top, a.ID)
	}
	return top + n
}

// storeState is what publishing may change, for comparisons.
func storeState(t *testing.T, st Stores, articles []int64) string {
	t.Helper()
	ctx := context.Background()
	var s strings.Builder
	vecs, err := st.Tables.ArticleVectors(ctx, articles)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range articles {
		sim, err := st.Tables.Similar(ctx, id, 1000)
		if err != nil && !errors.Is(err, storage.ErrUnknownArticle) {
			t.Fatal(err)
		}
		fmt.Fprintf(&s, "%d: %v %v\n", id, vecs[id], sim)
	}
	for ch := range feed.NumChannels {
		top, err := st.Sets.Top(ctx, storage.NewList, ch, 100000)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&s, "new %d: %v\n", ch, top)
	}
	return s.String()
}

func TestPublish(t *testing.T) {
	b := publishFixture(t)
	ctx := context.Background()
	chOf := b.channelOf()
	like := b.withNeighbours(t)
	ch := chOf[like.ID]
	// A new article with the text of one of the build: its nearest neighbour
	// is that one, at cosine 1.
	fresh := like
	fresh.ID = b.newID(1)
	pub := NewPublisher(b.opts.ModelDir, b.stores)
	now := time.Now().UTC().Truncate(time.Millisecond)

	got, err := pub.Publish(ctx, "test", []string{newsLine(t, fresh)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Article != fresh.ID || got[0].Channel != ch || !got[0].Time.Equal(now) || len(got[0].Keywords) == 0 {
		t.Fatalf("Publish = %+v, want %d in channel %d at %v", got, fresh.ID, ch, now)
	}
	vecs, err := b.stores.Tables.ArticleVectors(ctx, []int64{fresh.ID, like.ID})
	if err != nil || !slices.Equal(vecs[fresh.ID], vecs[like.ID]) {
		t.Errorf("features of the new article %v, %v; want those of %d, %v", vecs[fresh.ID], err, like.ID, vecs[like.ID])
	}
	sim, err := b.stores.Tables.Similar(ctx, fresh.ID, b.opts.SimilarK)
	if err != nil || len(sim) == 0 || !slices.Equal(sim, got[0].Similar) {
		t.Fatalf("Similar(new) = %v, %v; want %v", sim, err, got[0].Similar)
	}
	if sim[0].ID != like.ID || sim[0].Score != 1 {
		t.Errorf("nearest of the new article is %v, want %d at 1", sim[0], like.ID)
	}
	for _, s := range sim {
		if chOf[s.ID] != ch {
			t.Errorf("similar article %d is of channel %d, want %d", s.ID, chOf[s.ID], ch)
		}
	}
	theirs, err := b.stores.Tables.Similar(ctx, like.ID, b.opts.SimilarK)
	if err != nil || !slices.Contains(theirs, storage.Scored{ID: fresh.ID, Score: 1}) {
		t.Errorf("Similar(%d) = %v, %v; want the new article in it", like.ID, theirs, err)
	}
	if got[0].Entered < 1 {
		t.Errorf("entered %d similar lists, want at least 1", got[0].Entered)
	}
	for _, c := range []int32{ch, feed.ChannelAll} {
		top, err := b.stores.Sets.Top(ctx, storage.NewList, c, 1)
		if err != nil || len(top) != 1 || top[0] != (storage.Scored{ID: fresh.ID, Score: float64(now.UnixMilli())}) {
			t.Errorf("channel %d's newest = %v, %v; want %d at %d", c, top, err, fresh.ID, now.UnixMilli())
		}
	}

	t.Run("again is idempotent", func(t *testing.T) {
		watched := []int64{fresh.ID, like.ID}
		before := storeState(t, b.stores, watched)
		again, err := pub.Publish(ctx, "test", []string{newsLine(t, fresh)}, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !again[0].Time.Equal(now) {
			t.Errorf("re-published at %v, want the first time %v kept", again[0].Time, now)
		}
		if after := storeState(t, b.stores, watched); after != before {
			t.Errorf("publishing again changed the store:\nbefore %s\nafter  %s", before, after)
		}
	})

	t.Run("a bad batch writes nothing", func(t *testing.T) {
		good := like
		good.ID = b.newID(2)
		other := chOf[b.ds.Articles[0].ID]
		for _, a := range b.ds.Articles {
			if chOf[a.ID] != ch {
				other = chOf[a.ID]
				break
			}
		}
		moved := like
		moved.Category = dataset.ChannelName(other)
		unknown := like
		unknown.ID, unknown.Category = b.newID(3), "crypto"
		watched := []int64{good.ID, like.ID, unknown.ID}
		before := storeState(t, b.stores, watched)
		for _, tt := range []struct {
			name, bad, want string
		}{
			{"seven fields", "N1\tnews\tsub\ttitle\tabstract\turl\t[]", "test:2: want 8 tab-separated fields"},
			{"a bad id", strings.Replace(newsLine(t, good), dataset.FormatArticleID(good.ID), "X12", 1), "test:2: news_id"},
			{"an id twice", newsLine(t, good), "test:2: news_id " + dataset.FormatArticleID(good.ID) + " repeats line 1"},
			{"a channel without articles in the build", newsLine(t, unknown), "test:2: category \"crypto\" is channel 24 (other)"},
			{"an article moving channel", newsLine(t, moved), fmt.Sprintf("test:2: %s is already in channel %d", dataset.FormatArticleID(like.ID), ch)},
			{"a line break", newsLine(t, unknown) + "\n" + newsLine(t, unknown), "test:2: holds a line break"},
		} {
			_, err := pub.Publish(ctx, "test", []string{newsLine(t, good), tt.bad}, now)
			var le *dataset.LineError
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || !errors.As(err, &le) || !errors.Is(err, dataset.ErrMalformed) {
				t.Errorf("%s: error = %v, want a line error starting %q", tt.name, err, tt.want)
			}
		}
		if after := storeState(t, b.stores, watched); after != before {
			t.Errorf("rejected batches changed the store:\nbefore %s\nafter  %s", before, after)
		}
	})
}

// TestPublisherIsSafeConcurrentlyAndReloads: batches published at once all
// land in the new lists (none replaces another's), and the content model is
// read again when a build puts a new file in place, not otherwise.
func TestPublisherIsSafeConcurrentlyAndReloads(t *testing.T) {
	b := publishFixture(t)
	ctx := context.Background()
	pub := NewPublisher(b.opts.ModelDir, b.stores)
	like := b.withNeighbours(t)
	// lineOf is a new article id with like's text.
	lineOf := func(id int64) []string {
		a := like
		a.ID = id
		return []string{newsLine(t, a)}
	}
	now := time.Now()
	const n = 8
	lines := make([]string, n)
	for i := range n {
		lines[i] = lineOf(b.newID(int64(10 + i)))[0]
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pub.Publish(ctx, "test", lines[i:i+1], now.Add(time.Duration(i)*time.Millisecond))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	top, err := b.stores.Sets.Top(ctx, storage.NewList, feed.ChannelAll, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if id := b.newID(int64(10 + n - 1 - i)); i >= len(top) || top[i].ID != id {
			t.Fatalf("channel 0's newest = %v; want %d at %d", top, id, i)
		}
	}

	read := pub.model
	path := filepath.Join(b.opts.ModelDir, ContentFile)
	publishOne := func(id int64) {
		t.Helper()
		if _, err := pub.Publish(ctx, "test", lineOf(id), now); err != nil {
			t.Fatal(err)
		}
	}
	publishOne(b.newID(30))
	if pub.model != read {
		t.Error("the content model was read again though its file did not change")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		t.Fatal(err)
	}
	publishOne(b.newID(31))
	if pub.model == read {
		t.Error("the content model was not read again after a new file took its place")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, "test", lineOf(b.newID(32)), now); !errors.Is(err, ErrContentModel) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("publish without a content model: error = %v, want ErrContentModel", err)
	}
}
