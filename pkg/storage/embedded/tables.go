package embedded

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// tables is the HBase role of a DB: layout.Cells in bbolt buckets.
type tables struct{ db *DB }

var _ layout.Cells = (*tables)(nil)

// Bootstrap creates a bucket per table of layout.Schema; existing ones are kept.
func (t *tables) Bootstrap(ctx context.Context) error {
	return t.db.update(ctx, func(tx *bolt.Tx) error {
		for _, spec := range layout.Schema {
			if _, err := tx.CreateBucketIfNotExists([]byte(spec.Name)); err != nil {
				return fmt.Errorf("bootstrap table %s: %w", spec.Name, err)
			}
		}
		return nil
	})
}

// cellRef is a validated cell: its family's schema and its key prefix.
type cellRef struct {
	table  string
	row    string
	column string
	family layout.Family
	prefix []byte
}

func (r cellRef) String() string { return r.table + "/" + r.row + "/" + r.column }

func (r cellRef) cell() layout.Cell { return layout.Cell{Table: r.table, Row: r.row, Column: r.column} }

// resolve checks c against the schema and the key layout.
func resolve(table, row, column string) (cellRef, error) {
	if err := checkKeyPart("row", row); err != nil {
		return cellRef{}, fmt.Errorf("%s: %w", table, err)
	}
	if err := checkKeyPart("column", column); err != nil {
		return cellRef{}, fmt.Errorf("%s/%s: %w", table, row, err)
	}
	// HBase reads "family" without a colon as the family with an empty qualifier.
	family, _, _ := strings.Cut(column, ":")
	f, ok := layout.FamilyOf(table, family)
	if !ok {
		return cellRef{}, fmt.Errorf("%s/%s/%s: %w", table, row, column, ErrUnknownFamily)
	}
	return cellRef{table: table, row: row, column: column, family: f, prefix: cellPrefix(row, column)}, nil
}

func resolveCell(c layout.Cell) (cellRef, error) { return resolve(c.Table, c.Row, c.Column) }

// bucket is the bucket of table in tx.
func bucket(tx *bolt.Tx, table string) (*bolt.Bucket, error) {
	b := tx.Bucket([]byte(table))
	if b == nil {
		if !slices.ContainsFunc(layout.Schema, func(s layout.TableSpec) bool { return s.Name == table }) {
			return nil, fmt.Errorf("table %s: %w", table, ErrUnknownFamily)
		}
		return nil, fmt.Errorf("table %s: %w", table, ErrNotBootstrapped)
	}
	return b, nil
}

// expiredBefore is the oldest live timestamp of f at now, or MinInt64 when f
// keeps versions forever.
func expiredBefore(f layout.Family, now time.Time) int64 {
	if f.TTL <= 0 {
		return minTS
	}
	return now.UnixMilli() - f.TTL.Milliseconds()
}

const minTS = -1 << 63

// latest is the newest live version of the cell, or nil.
func latest(b *bolt.Bucket, r cellRef, now time.Time) (k, v []byte) {
	k, v = b.Cursor().Seek(r.prefix)
	if k == nil || !bytes.HasPrefix(k, r.prefix) || len(k) != len(r.prefix)+tsLen {
		return nil, nil
	}
	if keyTimestamp(k) < expiredBefore(r.family, now) {
		return nil, nil
	}
	return k, v
}

// trim deletes the versions of the cell beyond its family's MaxVersions and those
// past its TTL, as HBase does at compaction; doing it on write keeps both exact
// for readers.
func trim(b *bolt.Bucket, r cellRef, now time.Time) error {
	oldest := expiredBefore(r.family, now)
	var doomed [][]byte
	c := b.Cursor()
	n := 0
	for k, _ := c.Seek(r.prefix); k != nil && bytes.HasPrefix(k, r.prefix); k, _ = c.Next() {
		if len(k) != len(r.prefix)+tsLen {
			continue
		}
		n++
		if n > int(r.family.MaxVersions) || keyTimestamp(k) < oldest {
			doomed = append(doomed, clone(k))
		}
	}
	// Deleting under a live cursor can skip keys; delete after the walk.
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("trim %s: %w", r, err)
		}
	}
	return nil
}

// replace writes value as the only live version of a single-version cell. Its
// timestamp is now, or the newest existing one if the clock went back, so the
// write is never trimmed as older than what it replaces.
func replace(b *bolt.Bucket, r cellRef, value []byte, now time.Time) error {
	ts := now.UnixMilli()
	if k, _ := latest(b, r, now); k != nil {
		ts = max(ts, keyTimestamp(k))
	}
	if err := b.Put(versionKey(r.prefix, ts), value); err != nil {
		return fmt.Errorf("put %s: %w", r, err)
	}
	return trim(b, r, now)
}

// Append records ids as the version of c at ts, merging into an existing one.
func (t *tables) Append(ctx context.Context, c layout.Cell, ts int64, ids []int64) error {
	r, err := resolveCell(c)
	if err != nil {
		return err
	}
	return t.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, r.table)
		if err != nil {
			return err
		}
		k := versionKey(r.prefix, ts)
		var merged []int64
		if old := b.Get(k); old != nil {
			merged, _ = t.db.bad.IDs(c, ts, old) // a malformed version is replaced
		}
		merged = storage.MergeIDs(merged, ids)
		if err := b.Put(k, storage.EncodeIDs(merged)); err != nil {
			return fmt.Errorf("append to %s@%d: %w", r, ts, err)
		}
		return trim(b, r, t.db.now())
	})
}

// Versions returns the live versions of columns with timestamp <= maxTS, newest
// first, at most limit per column.
func (t *tables) Versions(ctx context.Context, table, row string, columns []string, maxTS int64, limit int) (map[string][]storage.Version, error) {
	refs := make([]cellRef, 0, len(columns))
	for _, col := range columns {
		r, err := resolve(table, row, col)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	out := make(map[string][]storage.Version, len(refs))
	now := t.db.now()
	err := t.db.view(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, table)
		if err != nil {
			return err
		}
		for _, r := range refs {
			if err := ctx.Err(); err != nil {
				return err
			}
			oldest := expiredBefore(r.family, now)
			var vs []storage.Version
			c := b.Cursor()
			for k, v := c.Seek(versionKey(r.prefix, maxTS)); k != nil && bytes.HasPrefix(k, r.prefix); k, v = c.Next() {
				if len(k) != len(r.prefix)+tsLen {
					continue
				}
				ts := keyTimestamp(k)
				if ts < oldest || (limit > 0 && len(vs) == limit) {
					break
				}
				ids, ok := t.db.bad.IDs(r.cell(), ts, v)
				if !ok {
					continue // skipped: the next version takes its place
				}
				vs = append(vs, storage.Version{Timestamp: ts, IDs: ids})
			}
			if len(vs) > 0 {
				out[r.column] = vs
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteThrough deletes the versions of c with timestamp <= ts.
func (t *tables) DeleteThrough(ctx context.Context, c layout.Cell, ts int64) error {
	r, err := resolveCell(c)
	if err != nil {
		return err
	}
	return t.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, r.table)
		if err != nil {
			return err
		}
		var doomed [][]byte
		cur := b.Cursor()
		for k, _ := cur.Seek(versionKey(r.prefix, ts)); k != nil && bytes.HasPrefix(k, r.prefix); k, _ = cur.Next() {
			if len(k) == len(r.prefix)+tsLen {
				doomed = append(doomed, clone(k))
			}
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete %s through %d: %w", r, ts, err)
			}
		}
		return nil
	})
}

// Push appends ids the queue in c does not hold yet to its tail.
func (t *tables) Push(ctx context.Context, c layout.Cell, ids []int64) error {
	r, err := resolveCell(c)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	return t.db.update(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, r.table)
		if err != nil {
			return err
		}
		now := t.db.now()
		var queue []int64
		if k, v := latest(b, r, now); v != nil {
			queue, _ = t.db.bad.IDs(c, keyTimestamp(k), v) // a malformed queue is replaced
		}
		return replace(b, r, storage.EncodeIDs(storage.MergeIDs(queue, ids)), now)
	})
}

// Take removes and returns up to n ids from the head of the queue in c. The read
// and the write are one transaction, so concurrent takers never share an id.
func (t *tables) Take(ctx context.Context, c layout.Cell, n int) ([]int64, error) {
	r, err := resolveCell(c)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	var head []int64
	err = t.db.update(ctx, func(tx *bolt.Tx) error {
		head = nil
		b, err := bucket(tx, r.table)
		if err != nil {
			return err
		}
		now := t.db.now()
		k, v := latest(b, r, now)
		if v == nil {
			return nil
		}
		queue, ok := t.db.bad.IDs(c, keyTimestamp(k), v)
		if !ok {
			queue = nil // dropped below, so the next Push starts afresh
		}
		m := min(n, len(queue))
		head = slices.Clone(queue[:m])
		if rest := queue[m:]; len(rest) > 0 {
			return replace(b, r, storage.EncodeIDs(rest), now)
		}
		if err := b.Delete(k); err != nil {
			return fmt.Errorf("take from %s: %w", r, err)
		}
		return trim(b, r, now)
	})
	if err != nil {
		return nil, err
	}
	return head, nil
}

// Similar returns the n highest-scored neighbours of article, highest first; equal
// scores go lower id first.
func (t *tables) Similar(ctx context.Context, article int64, n int) ([]storage.Scored, error) {
	if n <= 0 {
		return nil, nil
	}
	row := layout.SimilarRow(article)
	prefix := rowPrefix(row)
	var all []storage.Scored
	err := t.db.view(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, layout.TableArticleSimilar)
		if err != nil {
			return err
		}
		now := t.db.now()
		last := ""
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			col, ok := keyColumn(prefix, k)
			if !ok || col == last {
				continue // a malformed key, or an older version of the column just read
			}
			last = col
			ts := keyTimestamp(k)
			r, err := resolve(layout.TableArticleSimilar, row, col)
			if err != nil {
				// Not a column of the schema: nothing the engine wrote.
				t.db.bad.ReportCell(layout.Cell{Table: layout.TableArticleSimilar, Row: row, Column: col}, ts, fmt.Errorf("%w: %v", storage.ErrMalformed, err))
				continue
			}
			if ts < expiredBefore(r.family, now) {
				continue
			}
			if nb, ok := t.db.bad.Neighbour(article, col, ts, v); ok {
				all = append(all, nb)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return storage.Highest(all, n), nil
}

// HasRow says whether row of table holds a live version in a family of the
// schema, whatever its value.
func (t *tables) HasRow(ctx context.Context, table, row string) (bool, error) {
	if err := checkKeyPart("row", row); err != nil {
		return false, fmt.Errorf("%s: %w", table, err)
	}
	prefix := rowPrefix(row)
	found := false
	err := t.db.view(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, table)
		if err != nil {
			return err
		}
		now := t.db.now()
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			col, ok := keyColumn(prefix, k)
			if !ok {
				continue
			}
			family, _, _ := strings.Cut(col, ":")
			f, ok := layout.FamilyOf(table, family)
			if ok && family != layout.FamilySeq && keyTimestamp(k) >= expiredBefore(f, now) {
				found = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return found, nil
}

// UserWeightsIn reads the user's weights of several channels in one transaction.
func (t *tables) UserWeightsIn(ctx context.Context, user string, channels []int32) (map[int32][]float64, error) {
	refs := make([]cellRef, len(channels))
	for i, ch := range channels {
		r, err := resolveCell(layout.UserFeatureCell(user, ch))
		if err != nil {
			return nil, err
		}
		refs[i] = r
	}
	out := map[int32][]float64{}
	err := t.db.view(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, layout.TableUserFeature)
		if err != nil {
			return err
		}
		for i, r := range refs {
			if k, v := latest(b, r, t.db.now()); v != nil {
				if w, ok := t.db.bad.Floats(r.cell(), keyTimestamp(k), v); ok {
					out[channels[i]] = w
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ArticleVectors returns the feature vectors of ids that have one, read in one
// transaction.
func (t *tables) ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error) {
	out := make(map[int64][]float64, len(ids))
	err := t.db.view(ctx, func(tx *bolt.Tx) error {
		b, err := bucket(tx, layout.TableArticleFeature)
		if err != nil {
			return err
		}
		now := t.db.now()
		for i, id := range ids {
			if i%256 == 255 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			r, err := resolveCell(layout.ArticleFeatureCell(id))
			if err != nil {
				return err
			}
			k, v := latest(b, r, now)
			if v == nil {
				continue
			}
			if vec, ok := t.db.bad.Floats(r.cell(), keyTimestamp(k), v); ok {
				out[id] = vec
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutCells writes cells in one transaction: all or none.
func (t *tables) PutCells(ctx context.Context, cells []layout.CellValue) error {
	refs := make([]cellRef, len(cells))
	for i, c := range cells {
		r, err := resolveCell(c.Cell)
		if err != nil {
			return err
		}
		refs[i] = r
	}
	if len(cells) == 0 {
		return nil
	}
	return t.db.update(ctx, func(tx *bolt.Tx) error {
		now := t.db.now()
		for i, c := range cells {
			r := refs[i]
			b, err := bucket(tx, r.table)
			if err != nil {
				return err
			}
			if c.Timestamp == 0 {
				err = replace(b, r, c.Value, now)
			} else if err = b.Put(versionKey(r.prefix, c.Timestamp), c.Value); err == nil {
				err = trim(b, r, now)
			}
			if err != nil {
				return fmt.Errorf("put %s: %w", r, err)
			}
		}
		return nil
	})
}
