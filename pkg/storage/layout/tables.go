package layout

import (
	"context"
	"errors"
	"fmt"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// ErrUnknownSource is returned for a recall source that has no cb_recall family
// (only 100–102 do: new and hot live in the sorted sets, 105 is computed).
var ErrUnknownSource = errors.New("recall source has no cb_recall family")

// recallFamilies are the cb_recall families of the sources that have one.
var recallFamilies = map[feed.Source]string{
	feed.SourceALS:     "als",
	feed.SourceContent: "content",
	feed.SourceOnline:  "online",
}

// recallFamily is the cb_recall family of source.
func recallFamily(source feed.Source) (string, error) {
	f, ok := recallFamilies[source]
	if !ok {
		return "", fmt.Errorf("%w: %d", ErrUnknownSource, source)
	}
	return f, nil
}

// RecallCell is the cb_recall cell of source's runs for user in channel.
func RecallCell(user string, source feed.Source, channel int32) (Cell, error) {
	f, err := recallFamily(source)
	if err != nil {
		return Cell{}, err
	}
	return Cell{TableCBRecall, RecallRow(user), RecallColumn(f, channel)}, nil
}

// NewTables returns the HBase role of the domain, laid out in the cells of c.
func NewTables(c Cells) storage.Tables { return &tables{c: c} }

// tables is storage.Tables over an engine's cells.
type tables struct{ c Cells }

var _ storage.Tables = (*tables)(nil)

// --- History -------------------------------------------------------------------

func (t *tables) Newest(ctx context.Context, user string, channel int32) (int64, error) {
	vs, err := t.history(ctx, user, channel, MaxTimestamp, 1)
	if err != nil || len(vs) == 0 {
		return 0, err
	}
	return vs[0].Timestamp, nil
}

func (t *tables) Page(ctx context.Context, user string, channel int32, at int64) ([]storage.Version, error) {
	return t.history(ctx, user, channel, at, 2)
}

func (t *tables) history(ctx context.Context, user string, channel int32, maxTS int64, limit int) ([]storage.Version, error) {
	c := HistoryCell(user, channel)
	got, err := t.c.Versions(ctx, c.Table, c.Row, []string{c.Column}, maxTS, limit)
	if err != nil {
		return nil, err
	}
	return got[c.Column], nil
}

// Seen reads the versions of every channel asked for in one Versions call: one
// Get of one row.
func (t *tables) Seen(ctx context.Context, user string, channels []int32) (map[int64]bool, error) {
	seen := map[int64]bool{}
	if len(channels) == 0 {
		return seen, nil
	}
	row := HistoryCell(user, 0).Row
	columns := make([]string, len(channels))
	for i, ch := range channels {
		columns[i] = ChannelColumn(ch)
	}
	got, err := t.c.Versions(ctx, TableHistoryRecommend, row, columns, MaxTimestamp, 0)
	if err != nil {
		return nil, err
	}
	for _, vs := range got {
		for _, v := range vs {
			for _, id := range v.IDs {
				seen[id] = true
			}
		}
	}
	return seen, nil
}

func (t *tables) Record(ctx context.Context, user string, channel int32, ts int64, ids []int64) error {
	if err := storage.CheckIDs(ids); err != nil {
		return fmt.Errorf("record the refresh of user %s channel %d at %d: %w", user, channel, ts, err)
	}
	return t.c.Append(ctx, HistoryCell(user, channel), ts, ids)
}

// --- WaitQueue -----------------------------------------------------------------

func (t *tables) Push(ctx context.Context, user string, channel int32, ids []int64) error {
	if err := storage.CheckIDs(ids); err != nil {
		return fmt.Errorf("queue for user %s channel %d: %w", user, channel, err)
	}
	return t.c.Push(ctx, WaitCell(user, channel), ids)
}

func (t *tables) Take(ctx context.Context, user string, channel int32, n int) ([]int64, error) {
	return t.c.Take(ctx, WaitCell(user, channel), n)
}

// --- RecallSets and Recalled ---------------------------------------------------

// Read reads the columns of every source asked for in one Versions call.
func (t *tables) Read(ctx context.Context, user string, channel int32, sources []feed.Source) (map[feed.Source][]storage.Version, error) {
	out := map[feed.Source][]storage.Version{}
	bySource := make(map[string]feed.Source, len(sources))
	columns := make([]string, 0, len(sources))
	for _, s := range sources {
		c, err := RecallCell(user, s, channel)
		if err != nil {
			return nil, err
		}
		if _, dup := bySource[c.Column]; !dup {
			bySource[c.Column] = s
			columns = append(columns, c.Column)
		}
	}
	if len(columns) == 0 {
		return out, nil
	}
	got, err := t.c.Versions(ctx, TableCBRecall, RecallRow(user), columns, MaxTimestamp, 0)
	if err != nil {
		return nil, err
	}
	for col, vs := range got {
		if s, ok := bySource[col]; ok && len(vs) > 0 {
			out[s] = vs
		}
	}
	return out, nil
}

func (t *tables) Consume(ctx context.Context, user string, channel int32, source feed.Source, through int64) error {
	c, err := RecallCell(user, source, channel)
	if err != nil {
		return err
	}
	return t.c.DeleteThrough(ctx, c, through)
}

func (t *tables) Recalled(ctx context.Context, user string, channels []int32) (map[int32][]storage.Version, error) {
	out := map[int32][]storage.Version{}
	if len(channels) == 0 {
		return out, nil
	}
	byColumn := make(map[string]int32, len(channels))
	columns := make([]string, 0, len(channels))
	for _, ch := range channels {
		col := ChannelColumn(ch)
		if _, dup := byColumn[col]; !dup {
			byColumn[col] = ch
			columns = append(columns, col)
		}
	}
	got, err := t.c.Versions(ctx, TableHistoryRecall, RecalledCell(user, 0).Row, columns, MaxTimestamp, 0)
	if err != nil {
		return nil, err
	}
	for col, vs := range got {
		if ch, ok := byColumn[col]; ok && len(vs) > 0 {
			out[ch] = vs
		}
	}
	return out, nil
}

// --- Similarity and Features ---------------------------------------------------

// Similar reads the neighbours of article and, only when it has none to show,
// whether the article is known: every build writes an article's features (and
// its neighbours when it has any), so an article with neither row is one no
// build wrote. A row of malformed neighbours is a known article too.
func (t *tables) Similar(ctx context.Context, article int64, n int) ([]storage.Scored, error) {
	nbs, err := t.c.Similar(ctx, article, n)
	if err != nil || len(nbs) > 0 {
		return nbs, err
	}
	for _, c := range []Cell{ArticleFeatureCell(article), {Table: TableArticleSimilar, Row: SimilarRow(article)}} {
		known, err := t.c.HasRow(ctx, c.Table, c.Row)
		if err != nil {
			return nil, err
		}
		if known {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("%w: %d", storage.ErrUnknownArticle, article)
}

func (t *tables) UserWeights(ctx context.Context, user string, channels []int32) (map[int32][]float64, error) {
	return t.c.UserWeightsIn(ctx, user, channels)
}

func (t *tables) ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error) {
	return t.c.ArticleVectors(ctx, ids)
}

// --- Loader --------------------------------------------------------------------

// Load encodes every record first, so a malformed one fails the call before
// anything is written, then writes them all with one PutCells.
func (t *tables) Load(ctx context.Context, records []storage.Record) error {
	cells := make([]CellValue, 0, len(records))
	for i, r := range records {
		var err error
		if cells, err = appendCells(cells, r); err != nil {
			return fmt.Errorf("load record %d: %w", i, err)
		}
	}
	if len(cells) == 0 {
		return nil
	}
	return t.c.PutCells(ctx, cells)
}

// appendCells appends the cells of r to cells. Features and similarity are
// single-version cells stamped by the store; runs carry their own timestamp,
// which must be set: a run stamped by the store could not be replaced by a
// re-run of the job that wrote it.
func appendCells(cells []CellValue, r storage.Record) ([]CellValue, error) {
	switch r := r.(type) {
	case storage.ArticleVector:
		if r.Article <= 0 {
			return nil, fmt.Errorf("article %d vector: an article id is positive", r.Article)
		}
		v, err := storage.EncodeFloats(r.Vector)
		if err != nil {
			return nil, fmt.Errorf("article %d vector: %w", r.Article, err)
		}
		return append(cells, CellValue{Cell: ArticleFeatureCell(r.Article), Value: v}), nil
	case storage.Neighbours:
		if r.Article <= 0 {
			return nil, fmt.Errorf("article %d neighbours: an article id is positive", r.Article)
		}
		row := SimilarRow(r.Article)
		for _, nb := range r.Similar {
			if nb.ID <= 0 {
				return nil, fmt.Errorf("article %d neighbour %d: an article id is positive", r.Article, nb.ID)
			}
			v, err := storage.EncodeScore(nb.Score)
			if err != nil {
				return nil, fmt.Errorf("article %d neighbour %d: %w", r.Article, nb.ID, err)
			}
			cells = append(cells, CellValue{Cell: Cell{TableArticleSimilar, row, SimilarColumn(nb.ID)}, Value: v})
		}
		return cells, nil
	case storage.UserWeights:
		v, err := storage.EncodeFloats(r.Weights)
		if err != nil {
			return nil, fmt.Errorf("user %s channel %d weights: %w", r.User, r.Channel, err)
		}
		return append(cells, CellValue{Cell: UserFeatureCell(r.User, r.Channel), Value: v}), nil
	case storage.RecallRun:
		c, err := RecallCell(r.User, r.Source, r.Channel)
		if err != nil {
			return nil, fmt.Errorf("user %s recall run: %w", r.User, err)
		}
		if r.Timestamp <= 0 {
			return nil, fmt.Errorf("user %s recall run of source %d: timestamp %d is not positive", r.User, r.Source, r.Timestamp)
		}
		if err := storage.CheckIDs(r.IDs); err != nil {
			return nil, fmt.Errorf("user %s channel %d recall run of source %d at %d: %w", r.User, r.Channel, r.Source, r.Timestamp, err)
		}
		return append(cells, CellValue{Cell: c, Timestamp: r.Timestamp, Value: storage.EncodeIDs(r.IDs)}), nil
	case storage.RecalledRun:
		if r.Timestamp <= 0 {
			return nil, fmt.Errorf("user %s recalled run: timestamp %d is not positive", r.User, r.Timestamp)
		}
		if err := storage.CheckIDs(r.IDs); err != nil {
			return nil, fmt.Errorf("user %s channel %d recalled run at %d: %w", r.User, r.Channel, r.Timestamp, err)
		}
		return append(cells, CellValue{Cell: RecalledCell(r.User, r.Channel), Timestamp: r.Timestamp, Value: storage.EncodeIDs(r.IDs)}), nil
	default:
		return nil, fmt.Errorf("unknown record type %T", r)
	}
}

func (t *tables) Bootstrap(ctx context.Context) error { return t.c.Bootstrap(ctx) }
