package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// Published is one article a Publish call published.
type Published struct {
	Article int64
	Channel int32
	// Keywords are the article's heaviest terms, heaviest first.
	Keywords []string
	// Similar are its most similar articles of the build, best first.
	Similar []storage.Scored
	// Entered is how many of those took it into their own similar lists.
	Entered int
	// Time is its score in the new lists: when it was first published (a
	// re-published article keeps its time, so publishing is idempotent).
	Time time.Time
}

// Publisher publishes new articles (DESIGN §8, "New articles") with the
// content model of the last build in a model directory: each article gets
// the keywords, vector and similar articles the build would have given the
// same text, and joins its channel's new list and channel 0's, so recall
// (source 103) serves it on the next refresh.
//
// What a publish writes:
//   - the article's features (storage.ArticleVector) and its top-K similar
//     articles (storage.Neighbours), chosen among the build's articles of
//     its channel. Articles published since the build are not candidates:
//     the content model is the build's and is not rewritten per article; a
//     later build whose news.tsv holds them relates them all;
//   - the article into the similar lists of its neighbours whose K-th it
//     beats (only theirs: a scan of every list would cost a read per article
//     of the channel). The store's neighbour rows take cells, not whole
//     lists, so this is one cell per neighbour, and two publishes never
//     undo each other's; readers take a row's top n;
//   - the article, scored by publish time, into the new lists of its channel
//     and of channel 0, each kept to the build's bound (newest first). Hot
//     lists are left alone: a new article has no interactions yet.
//
// A Publisher is safe for concurrent use. It reads the content model on
// first use and again whenever the file changes (a new build renames a new
// one into place), and publishes one batch at a time: a new list is read,
// extended and replaced, which two batches at once would race on. Publishers
// in other processes writing the same store can still race on a new list
// (the lists have no atomic insert); run one.
type Publisher struct {
	path string
	st   Stores

	mu    sync.Mutex
	model *contentModel
	file  os.FileInfo // what model was read from
}

// NewPublisher returns a Publisher of the content model in modelDir into st.
// Nothing is read until the first Publish, so a server can start before any
// build has run.
func NewPublisher(modelDir string, st Stores) *Publisher {
	return &Publisher{path: filepath.Join(modelDir, ContentFile), st: st}
}

// Publish publishes the articles of lines, news.tsv lines in MIND's layout
// (without line endings), as one batch: every line is parsed and every
// article computed and checked before the first write, so one bad line
// rejects the batch and nothing is written. A rejected line is a
// *dataset.LineError naming source and the line (errors.Is(err,
// dataset.ErrMalformed) holds); a missing or bad content model wraps
// ErrContentModel; anything else is the store. Publishing an article again
// (same id, same channel) is idempotent: the same features and neighbours
// are written and its publish time is kept. With edited text it gets new
// features and neighbours, but neighbours it had before stay in its row
// (the store's rows take cells and have no delete) until a build rewrites
// it. now is the publish time of the batch's new articles.
func (p *Publisher) Publish(ctx context.Context, source string, lines []string, now time.Time) ([]Published, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cm, err := p.current()
	if err != nil {
		return nil, err
	}
	articles, err := parseNews(source, lines)
	if err != nil {
		return nil, err
	}
	pl, err := p.plan(ctx, cm, source, articles, now)
	if err != nil {
		return nil, err
	}
	if err := p.write(ctx, pl); err != nil {
		return nil, err
	}
	return pl.published, nil
}

// current is the content model, read again when the file is not the one it
// was read from.
func (p *Publisher) current() (*contentModel, error) {
	fi, err := os.Stat(p.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (run reco admin build)", ErrContentModel, err)
	}
	if p.model != nil && os.SameFile(fi, p.file) && fi.ModTime().Equal(p.file.ModTime()) && fi.Size() == p.file.Size() {
		return p.model, nil
	}
	cm, err := readContentModel(p.path)
	if err != nil {
		return nil, err
	}
	p.model, p.file = cm, fi
	return cm, nil
}

// parseNews parses lines with the dataset package's news reader, so a line is
// published exactly when a build would accept it in news.tsv (eight fields,
// a well-formed id, no id twice, entity lists that are JSON). That reader
// reads files, so the lines go through a temporary one; its errors are made
// to name source.
func parseNews(source string, lines []string) ([]dataset.Article, error) {
	for i, l := range lines {
		if strings.Contains(l, "\n") {
			return nil, &dataset.LineError{File: source, Line: i + 1, Msg: "holds a line break: give one article per line"}
		}
	}
	f, err := os.CreateTemp("", "reco-publish-*.tsv")
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }() // a temporary file: a leftover harms nothing
	_, err = f.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("publish: write %s: %w", f.Name(), err)
	}
	articles, err := dataset.ReadNews(f.Name())
	if le := (*dataset.LineError)(nil); errors.As(err, &le) {
		le.File = source
	}
	return articles, err
}

// publishPlan is everything a batch writes, computed before the first write.
type publishPlan struct {
	published []Published
	records   []storage.Record
	lists     map[int32][]storage.Scored // new lists to replace, by channel
}

// plan computes and checks the batch, reading what it extends.
func (p *Publisher) plan(ctx context.Context, cm *contentModel, source string, articles []dataset.Article, now time.Time) (*publishPlan, error) {
	pl := &publishPlan{lists: map[int32][]storage.Scored{}}
	ids := make([]int64, len(articles))
	for i, a := range articles {
		ids[i] = a.ID
	}
	stored, err := p.st.Tables.ArticleVectors(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("publish: read the features of %d articles: %w", len(ids), err)
	}
	for i, a := range articles {
		ch := dataset.Channel(a.Category)
		cc := cm.channels[ch]
		if cc == nil {
			return nil, &dataset.LineError{File: source, Line: i + 1, Msg: fmt.Sprintf(
				"category %q is channel %d (%s), which the build of %s had no articles in: publish it after a build that has some",
				a.Category, ch, dataset.ChannelName(ch), cm.built.Format(time.RFC3339))}
		}
		if v, ok := stored[a.ID]; ok && len(v) > 0 && int32(v[0]) != ch {
			return nil, &dataset.LineError{File: source, Line: i + 1, Msg: fmt.Sprintf(
				"%s is already in channel %d; publishing it in channel %d (%s) would leave it in both",
				dataset.FormatArticleID(a.ID), int32(v[0]), ch, dataset.ChannelName(ch))}
		}
		f, keywords := cm.features(a, ch)
		similar := cm.similar(cc, a.ID, f)
		pub := Published{Article: a.ID, Channel: ch, Keywords: keywords, Similar: similar}
		pl.records = append(pl.records, storage.ArticleVector{Article: a.ID, Vector: f})
		if len(similar) > 0 {
			pl.records = append(pl.records, storage.Neighbours{Article: a.ID, Similar: similar})
		}
		if pub.Entered, err = p.enterNeighbours(ctx, cm, pl, a.ID, similar); err != nil {
			return nil, err
		}
		pl.published = append(pl.published, pub)
	}
	if err := p.extendNewLists(ctx, cm, pl, now); err != nil {
		return nil, err
	}
	return pl, nil
}

// features is what the build computes for an article of channel ch with this
// text (corpus.buildFeatures), and its keywords.
func (cm *contentModel) features(a dataset.Article, ch int32) ([]float64, []string) {
	t := cm.vocab.tfidfOf(a)
	kw, words := t.keywords(0, model.KeywordWeightsLen)
	cols, vals := t.m.col, t.m.val
	vec := append(cm.channels[ch].topic.apply(cols, vals), cm.global.apply(cols, vals)...)
	return featureVector(ch, kw, vec), words
}

// similar is the article's top-K most similar articles of the build in its
// channel, as similarities() ranks them (itself excluded: re-publishing an
// article of the build does not make it its own neighbour).
func (cm *contentModel) similar(cc *channelContent, id int64, f []float64) []storage.Scored {
	u := make([]float64, globalDims)
	setUnit(u, f[globalStart:])
	best := topK{k: cm.similarK}
	for i, other := range cc.ids {
		if score := dot(u, cc.unit(i)); other != id && score > 0 {
			best.offer(neighbour{int32(i), score})
		}
	}
	out := make([]storage.Scored, len(best.items))
	for i, nb := range best.items {
		out[i] = storage.Scored{ID: cc.ids[nb.idx], Score: round6(nb.score)}
	}
	return out
}

// enterNeighbours adds the article to the similar list of each neighbour
// whose K-th it beats (or that it is already in, with its new score), and
// returns how many.
func (p *Publisher) enterNeighbours(ctx context.Context, cm *contentModel, pl *publishPlan, id int64, similar []storage.Scored) (int, error) {
	entered := 0
	for _, nb := range similar {
		theirs, err := p.st.Tables.Similar(ctx, nb.ID, cm.similarK)
		if errors.Is(err, storage.ErrUnknownArticle) {
			return 0, fmt.Errorf("publish: the store holds nothing of %s, an article of the build of %s: the store and the model directory are of different builds",
				dataset.FormatArticleID(nb.ID), cm.built.Format(time.RFC3339))
		}
		if err != nil {
			return 0, fmt.Errorf("publish: read the similar articles of %s: %w", dataset.FormatArticleID(nb.ID), err)
		}
		in := slices.ContainsFunc(theirs, func(s storage.Scored) bool { return s.ID == id })
		if in || len(theirs) < cm.similarK || nb.Score > theirs[len(theirs)-1].Score {
			pl.records = append(pl.records, storage.Neighbours{Article: nb.ID, Similar: []storage.Scored{{ID: id, Score: nb.Score}}})
			entered++
		}
	}
	return entered, nil
}

// extendNewLists adds the batch to the new lists of its channels and of
// channel 0, and sets each article's publish time. An article a list holds
// already keeps its score there; a list the batch does not change is not
// replaced.
func (p *Publisher) extendNewLists(ctx context.Context, cm *contentModel, pl *publishPlan, now time.Time) error {
	type newList struct {
		items   []storage.Scored
		changed bool
	}
	lists := map[int32]*newList{}
	for i := range pl.published {
		pub := &pl.published[i]
		pub.Time = now
		for _, ch := range []int32{pub.Channel, feed.ChannelAll} {
			l := lists[ch]
			if l == nil {
				top, err := p.st.Sets.Top(ctx, storage.NewList, ch, cm.setSize+len(pl.published))
				if err != nil {
					return fmt.Errorf("publish: read channel %d's new list: %w", ch, err)
				}
				l = &newList{items: top}
				lists[ch] = l
			}
			if j := slices.IndexFunc(l.items, func(s storage.Scored) bool { return s.ID == pub.Article }); j >= 0 {
				if ch == pub.Channel {
					pub.Time = time.UnixMilli(int64(l.items[j].Score)).UTC()
				}
				continue
			}
			l.items = append(l.items, storage.Scored{ID: pub.Article, Score: float64(now.UnixMilli())})
			l.changed = true
		}
	}
	for ch, l := range lists {
		if l.changed {
			slices.SortStableFunc(l.items, func(a, b storage.Scored) int { return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ID, b.ID)) })
			pl.lists[ch] = l.items[:min(len(l.items), cm.setSize)]
		}
	}
	return nil
}

// write writes the plan: the tables first, then the new lists, so an article
// is only served once its features and neighbours are there.
func (p *Publisher) write(ctx context.Context, pl *publishPlan) error {
	if err := p.st.Tables.Load(ctx, pl.records); err != nil {
		return fmt.Errorf("publish: write %d records: %w", len(pl.records), err)
	}
	chs := make([]int32, 0, len(pl.lists))
	for ch := range pl.lists {
		chs = append(chs, ch)
	}
	slices.Sort(chs)
	for _, ch := range chs {
		if err := p.st.Sets.Replace(ctx, storage.NewList, ch, pl.lists[ch]); err != nil {
			return fmt.Errorf("publish: write channel %d's new list: %w", ch, err)
		}
	}
	return nil
}
