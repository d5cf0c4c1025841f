package offline

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// maxChunkBytes bounds the rough size of one Load call besides ChunkCells, so
// a chunk of long recall lists or vectors stays a modest request.
const maxChunkBytes = 4 << 20

// loader batches records into Load calls.
type loader struct {
	tables  storage.Loader
	max     int
	records []storage.Record
	bytes   int
	bar     *bar
	total   int
}

// recordBytes is a rough size of r as the store holds it: a JSON number is
// about 8 bytes for an id, 20 for a float.
func recordBytes(r storage.Record) int {
	switch r := r.(type) {
	case storage.ArticleVector:
		return 20 * len(r.Vector)
	case storage.Neighbours:
		return 40 * len(r.Similar)
	case storage.UserWeights:
		return len(r.User) + 20*len(r.Weights)
	case storage.RecallRun:
		return len(r.User) + 8*len(r.IDs)
	case storage.RecalledRun:
		return len(r.User) + 8*len(r.IDs)
	}
	return 0
}

func (l *loader) put(ctx context.Context, r storage.Record) error {
	l.records = append(l.records, r)
	l.bytes += recordBytes(r)
	if len(l.records) >= l.max || l.bytes >= maxChunkBytes {
		return l.flush(ctx)
	}
	return nil
}

// fits says whether n more records keep the chunk within ChunkCells.
func (l *loader) fits(n int) bool { return len(l.records)+n <= l.max }

func (l *loader) flush(ctx context.Context) error {
	if len(l.records) == 0 {
		return nil
	}
	if err := l.tables.Load(ctx, l.records); err != nil {
		return fmt.Errorf("write %d records: %w", len(l.records), err)
	}
	l.total += len(l.records)
	l.bar.add(len(l.records))
	l.records, l.bytes = l.records[:0], 0
	return nil
}

// recordCount is how many records writeTables writes, for its progress bar.
func (b *build) recordCount() int {
	n := len(b.c.ids)
	for _, s := range b.similar {
		if len(s) > 0 {
			n++
		}
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
// recall runs, each user's recall runs in the same chunk as the recalled run
// that records them.
func (b *build) writeTables(ctx context.Context, tables storage.Loader, prog *progress) error {
	bar := prog.start("write tables", b.recordCount())
	l := &loader{tables: tables, max: b.opts.ChunkCells, bar: bar}
	for a, f := range b.c.features {
		if err := l.put(ctx, storage.ArticleVector{Article: b.c.ids[a], Vector: f}); err != nil {
			return err
		}
	}
	for a, ns := range b.similar {
		if len(ns) == 0 {
			continue
		}
		similar := make([]storage.Scored, len(ns))
		for i, nb := range ns {
			similar[i] = storage.Scored{ID: b.c.ids[nb.idx], Score: round6(nb.score)}
		}
		if err := l.put(ctx, storage.Neighbours{Article: b.c.ids[a], Similar: similar}); err != nil {
			return err
		}
	}
	for ui, name := range b.u.names {
		for ch := range feed.NumChannels {
			w := make([]float64, model.UserWeightsLen)
			if !b.profiles[ui].weights(ch, w) {
				continue
			}
			if err := l.put(ctx, storage.UserWeights{User: name, Channel: ch, Weights: w}); err != nil {
				return err
			}
		}
	}
	ts := b.opts.Version.UnixMilli()
	for ui, name := range b.u.names {
		als, content := b.recallColumns(b.alsLists[ui]), b.recallColumns(b.contentList[ui])
		union := unionColumns(als, content)
		// A user's records are written in one chunk when they fit, so the recall
		// runs and the recalled run that records them land together.
		if !l.fits(len(als) + len(content) + len(union)) {
			if err := l.flush(ctx); err != nil {
				return err
			}
		}
		var user []storage.Record
		for _, src := range []struct {
			source feed.Source
			cols   map[int32][]int64
		}{{feed.SourceALS, als}, {feed.SourceContent, content}} {
			for _, ch := range sortedChannels(src.cols) {
				user = append(user, storage.RecallRun{User: name, Channel: ch, Source: src.source, Timestamp: ts, IDs: src.cols[ch]})
			}
		}
		for _, ch := range sortedChannels(union) {
			user = append(user, storage.RecalledRun{User: name, Channel: ch, Timestamp: ts, IDs: union[ch]})
		}
		// Flushing only after the user's last record keeps them in one chunk
		// even when the byte bound is reached part way.
		l.records = append(l.records, user...)
		for _, r := range user {
			l.bytes += recordBytes(r)
		}
		if len(l.records) >= l.max || l.bytes >= maxChunkBytes {
			if err := l.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := l.flush(ctx); err != nil {
		return err
	}
	bar.finish("%d records", l.total)
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
func (b *build) writeSets(ctx context.Context, lists storage.ChannelLists, prog *progress) error {
	bar := prog.start("write sets", 2*int(feed.NumChannels))
	members := 0
	for ch := range feed.NumChannels {
		for _, set := range []struct {
			list  storage.ChannelList
			ids   []int32
			score func(a int32) float64
		}{
			{storage.NewList, b.newList(ch), func(a int32) float64 { return float64(b.c.published[a]) }},
			{storage.HotList, b.hotList(ch), b.hotClicks},
		} {
			scored := make([]storage.Scored, len(set.ids))
			for i, a := range set.ids {
				scored[i] = storage.Scored{ID: b.c.ids[a], Score: set.score(a)}
			}
			if err := lists.Replace(ctx, set.list, ch, scored); err != nil {
				return fmt.Errorf("write channel %d list %d: %w", ch, set.list, err)
			}
			members += len(scored)
			bar.add(1)
		}
	}
	bar.finish("%d members in %d new and hot lists", members, 2*int(feed.NumChannels))
	return nil
}
