package offline

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// maxChunkBytes bounds the values of one PutCells call besides ChunkCells, so
// a chunk of long recall lists stays a modest request.
const maxChunkBytes = 4 << 20

// loader batches cells into PutCells calls.
type loader struct {
	tables storage.Tables
	max    int
	cells  []storage.CellValue
	bytes  int
	bar    *bar
	total  int
}

func (l *loader) put(ctx context.Context, c storage.Cell, ts int64, value []byte) error {
	l.cells = append(l.cells, storage.CellValue{Cell: c, Timestamp: ts, Value: value})
	l.bytes += len(value)
	if len(l.cells) >= l.max || l.bytes >= maxChunkBytes {
		return l.flush(ctx)
	}
	return nil
}

func (l *loader) flush(ctx context.Context) error {
	if len(l.cells) == 0 {
		return nil
	}
	if err := l.tables.PutCells(ctx, l.cells); err != nil {
		return fmt.Errorf("write %d cells from %s/%s: %w", len(l.cells), l.cells[0].Table, l.cells[0].Row, err)
	}
	l.total += len(l.cells)
	l.bar.add(len(l.cells))
	l.cells, l.bytes = l.cells[:0], 0
	return nil
}

// cellCount is how many cells writeTables writes, for its progress bar.
func (b *build) cellCount() int {
	n := len(b.c.ids)
	for _, s := range b.similar {
		n += len(s)
	}
	w := make([]float64, model.UserWeightsLen)
	for ui := range b.u.names {
		for ch := range feed.NumChannels {
			if b.profiles[ui].weights(ch, w) {
				n++
			}
		}
		als, content := b.recallColumns(b.alsLists[ui]), b.recallColumns(b.contentList[ui])
		n += len(als) + len(content) + len(unionColumns(als, content))
	}
	return n
}

// writeTables writes the article features, similarity, user features and
// recall sets, each user's recall sets in the same chunk as the history_recall
// version that records them.
func (b *build) writeTables(ctx context.Context, tables storage.Tables, prog *progress) error {
	bar := prog.start("write tables", b.cellCount())
	l := &loader{tables: tables, max: b.opts.ChunkCells, bar: bar}
	for a, f := range b.c.features {
		v, err := storage.EncodeFloats(f)
		if err != nil {
			return fmt.Errorf("article %d features: %w", b.c.ids[a], err)
		}
		if err := l.put(ctx, storage.ArticleFeatureCell(b.c.ids[a]), 0, v); err != nil {
			return err
		}
	}
	for a, ns := range b.similar {
		row := storage.SimilarRow(b.c.ids[a])
		for _, nb := range ns {
			v, err := storage.EncodeScore(round6(nb.score))
			if err != nil {
				return err
			}
			c := storage.Cell{Table: storage.TableArticleSimilar, Row: row, Column: storage.SimilarColumn(b.c.ids[nb.idx])}
			if err := l.put(ctx, c, 0, v); err != nil {
				return err
			}
		}
	}
	w := make([]float64, model.UserWeightsLen)
	for ui, name := range b.u.names {
		for ch := range feed.NumChannels {
			if !b.profiles[ui].weights(ch, w) {
				continue
			}
			v, err := storage.EncodeFloats(w)
			if err != nil {
				return fmt.Errorf("user %s features: %w", name, err)
			}
			if err := l.put(ctx, storage.UserFeatureCell(name, ch), 0, v); err != nil {
				return err
			}
		}
	}
	ts := b.opts.Version.UnixMilli()
	for ui, name := range b.u.names {
		als, content := b.recallColumns(b.alsLists[ui]), b.recallColumns(b.contentList[ui])
		// A user's cells are written in one chunk when they fit, so the recall
		// sets and their history_recall record land together.
		if need := len(als) + len(content) + len(unionColumns(als, content)); len(l.cells)+need > l.max {
			if err := l.flush(ctx); err != nil {
				return err
			}
		}
		row := storage.RecallRow(name)
		for _, src := range []struct {
			family string
			cols   map[int32][]int64
		}{{"als", als}, {"content", content}} {
			for _, ch := range sortedChannels(src.cols) {
				c := storage.Cell{Table: storage.TableCBRecall, Row: row, Column: storage.RecallColumn(src.family, ch)}
				if err := l.put(ctx, c, ts, storage.EncodeIDs(src.cols[ch])); err != nil {
					return err
				}
			}
		}
		union := unionColumns(als, content)
		for _, ch := range sortedChannels(union) {
			if err := l.put(ctx, storage.RecalledCell(name, ch), ts, storage.EncodeIDs(union[ch])); err != nil {
				return err
			}
		}
	}
	if err := l.flush(ctx); err != nil {
		return err
	}
	bar.finish("%d cells", l.total)
	return nil
}

// unionColumns merges two sources' columns channel by channel, a's ids first.
func unionColumns(a, b map[int32][]int64) map[int32][]int64 {
	out := map[int32][]int64{}
	for _, m := range []map[int32][]int64{a, b} {
		for ch, ids := range m {
			out[ch] = append(out[ch], ids...)
		}
	}
	for ch, ids := range out {
		seen := map[int64]bool{}
		kept := ids[:0]
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				kept = append(kept, id)
			}
		}
		out[ch] = kept
	}
	return out
}

func sortedChannels(m map[int32][]int64) []int32 {
	chs := make([]int32, 0, len(m))
	for ch := range m {
		chs = append(chs, ch)
	}
	slices.Sort(chs)
	return chs
}

// inChannel says whether article a belongs to the feed of ch.
func (b *build) inChannel(a int, ch int32) bool {
	return ch == feed.ChannelAll || b.c.channel[a] == ch
}

// newList is the channel's newest known articles, newest first (ties: lower
// index first).
func (b *build) newList(ch int32) []int32 {
	var out []int32
	for a := range b.c.ids {
		if b.c.known[a] && b.inChannel(a, ch) {
			out = append(out, int32(a))
		}
	}
	slices.SortStableFunc(out, func(x, y int32) int { return cmp.Compare(b.c.published[y], b.c.published[x]) })
	return out[:min(len(out), b.opts.SetSize)]
}

// hotClicks is article a's clicks in the fresh days before the cutoff.
func (b *build) hotClicks(a int32) float64 {
	from := max(0, b.days-b.opts.FreshDays)
	var s float64
	for _, v := range b.clicksByDay[int(a)*b.days+from : int(a+1)*b.days] {
		s += v
	}
	return s
}

// hotList is the channel's most clicked articles of the fresh days, most
// clicked first.
func (b *build) hotList(ch int32) []int32 {
	var out []int32
	for a := range b.c.ids {
		if b.c.known[a] && b.inChannel(a, ch) && b.hotClicks(int32(a)) > 0 {
			out = append(out, int32(a))
		}
	}
	slices.SortStableFunc(out, func(x, y int32) int { return cmp.Compare(b.hotClicks(y), b.hotClicks(x)) })
	return out[:min(len(out), b.opts.SetSize)]
}

// writeSets replaces every channel's new and hot list.
func (b *build) writeSets(ctx context.Context, sets storage.SortedSets, prog *progress) error {
	bar := prog.start("write sets", 2*int(feed.NumChannels))
	members := 0
	for ch := range feed.NumChannels {
		for _, set := range []struct {
			key   string
			list  []int32
			score func(a int32) float64
		}{
			{storage.NewKey(ch), b.newList(ch), func(a int32) float64 { return float64(b.c.published[a]) }},
			{storage.HotKey(ch), b.hotList(ch), b.hotClicks},
		} {
			scored := make([]storage.Scored, len(set.list))
			for i, a := range set.list {
				scored[i] = storage.Scored{ID: b.c.ids[a], Score: set.score(a)}
			}
			if err := replaceSet(ctx, sets, set.key, scored); err != nil {
				return err
			}
			members += len(scored)
			bar.add(1)
		}
	}
	bar.finish("%d members in %d new and hot lists", members, 2*int(feed.NumChannels))
	return nil
}

// replaceSet makes key hold exactly members. Adding over the old set is
// atomic for readers; only when the old set holds a member the new one does
// not is the key deleted first, leaving it briefly empty (the feed then falls
// back to its other sources).
func replaceSet(ctx context.Context, sets storage.SortedSets, key string, members []storage.Scored) error {
	old, err := sets.Top(ctx, key, len(members)+1)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	keep := make(map[int64]bool, len(members))
	for _, m := range members {
		keep[m.ID] = true
	}
	stale := false
	for _, m := range old {
		stale = stale || !keep[m.ID]
	}
	if stale || len(members) == 0 {
		if err := sets.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	if len(members) == 0 {
		return nil
	}
	if err := sets.Add(ctx, key, members, 0); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
