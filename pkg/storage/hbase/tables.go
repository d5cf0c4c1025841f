package hbase

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase/internal/thrift2"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// tables is layout.Cells over the Thrift2 gateway.
type tables struct {
	pool    *pool
	timeout time.Duration
	// loadParallelism is how many putMultiple batches of one PutCells run at
	// once.
	loadParallelism int
	// bad decodes what the engine reads and reports the malformed values.
	bad *layout.BadCells
}

var _ layout.Cells = (*tables)(nil)

const (
	// maxRowLen is HBase's limit on a row key (Short.MAX_VALUE bytes).
	maxRowLen = math.MaxInt16
	// maxCASAttempts bounds a check-and-put loop; the context's deadline usually
	// ends it first.
	maxCASAttempts = 64
	// maxBatchBytes keeps one putMultiple well under the gateway's default 2 MiB
	// frame limit.
	maxBatchBytes = 1 << 20
	// maxBatchGets bounds the gets of one getMultiple.
	maxBatchGets = 1000
)

// cellRef is a cell checked against the schema.
type cellRef struct {
	table     string
	row       string
	column    string
	family    layout.Family
	qualifier string
}

func (r cellRef) String() string { return r.table + "/" + r.row + "/" + r.column }

func (r cellRef) tcolumn() *thrift2.TColumn {
	return &thrift2.TColumn{Family: []byte(r.family.Name), Qualifier: []byte(r.qualifier)}
}

// value is a cell value at ts; ts 0 leaves the timestamp to the region server
// (its current time), as layout.CellValue documents.
func (r cellRef) value(v []byte, ts int64) *thrift2.TColumnValue {
	cv := &thrift2.TColumnValue{Family: []byte(r.family.Name), Qualifier: []byte(r.qualifier), Value: v}
	if ts != 0 {
		cv.Timestamp = &ts
	}
	return cv
}

// resolve checks a cell against layout.Schema and HBase's key limits. The
// sequence family is the backend's own and cannot be addressed.
func resolve(table, row, column string) (cellRef, error) {
	if err := checkRow(table, row); err != nil {
		return cellRef{}, err
	}
	family, qualifier, _ := strings.Cut(column, ":")
	if family == "" {
		return cellRef{}, fmt.Errorf("%s/%s/%q: %w: the column has no family", table, row, column, ErrInvalidKey)
	}
	f, ok := layout.FamilyOf(table, family)
	if !ok || family == layout.FamilySeq {
		return cellRef{}, fmt.Errorf("%s/%s/%s: %w", table, row, column, ErrUnknownFamily)
	}
	return cellRef{table: table, row: row, column: column, family: f, qualifier: qualifier}, nil
}

func resolveCell(c layout.Cell) (cellRef, error) { return resolve(c.Table, c.Row, c.Column) }

// checkRow checks a row key against HBase's limits.
func checkRow(table, row string) error {
	if row == "" || len(row) > maxRowLen {
		return fmt.Errorf("%s/%.64q: %w: a row key is 1 to %d bytes", table, row, ErrInvalidKey, maxRowLen)
	}
	return nil
}

// --- calls -----------------------------------------------------------------

func (t *tables) get(ctx context.Context, table string, g *thrift2.TGet) (*thrift2.TResult_, error) {
	var res *thrift2.TResult_
	err := t.pool.call(ctx, t.timeout, true, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
		res, err = c.Get(ctx, []byte(table), g)
		return err
	})
	return res, err
}

func (t *tables) getMultiple(ctx context.Context, table string, gs []*thrift2.TGet) ([]*thrift2.TResult_, error) {
	var res []*thrift2.TResult_
	err := t.pool.call(ctx, t.timeout, true, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
		res, err = c.GetMultiple(ctx, []byte(table), gs)
		return err
	})
	if err == nil && len(res) != len(gs) {
		err = fmt.Errorf("getMultiple on %s: %d results for %d gets", table, len(res), len(gs))
	}
	return res, err
}

func (t *tables) put(ctx context.Context, table string, p *thrift2.TPut, idempotent bool) error {
	return t.pool.call(ctx, t.timeout, idempotent, func(ctx context.Context, c *thrift2.THBaseServiceClient) error {
		return c.Put(ctx, []byte(table), p)
	})
}

func (t *tables) putMultiple(ctx context.Context, table string, ps []*thrift2.TPut, idempotent bool) error {
	return t.pool.call(ctx, t.timeout, idempotent, func(ctx context.Context, c *thrift2.THBaseServiceClient) error {
		return c.PutMultiple(ctx, []byte(table), ps)
	})
}

// checkAndPut writes p if the newest version of family:qualifier in row holds
// expected, or if the cell is absent when expected is nil (the gateway sends an
// empty value, which HBase reads as "no such cell"). It is never retried: a
// check-and-put whose reply was lost may have been applied.
func (t *tables) checkAndPut(ctx context.Context, table, row, family, qualifier string, expected []byte, p *thrift2.TPut) (bool, error) {
	var ok bool
	err := t.pool.call(ctx, t.timeout, false, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
		ok, err = c.CheckAndPut(ctx, []byte(table), []byte(row), []byte(family), []byte(qualifier), expected, p)
		return err
	})
	return ok, err
}

// latest reads the newest version of a cell and its timestamp.
func (t *tables) latest(ctx context.Context, r cellRef) (value []byte, ts int64, found bool, err error) {
	one := int32(1)
	res, err := t.get(ctx, r.table, &thrift2.TGet{Row: []byte(r.row), Columns: []*thrift2.TColumn{r.tcolumn()}, MaxVersions: &one})
	if err != nil {
		return nil, 0, false, fmt.Errorf("get %s: %w", r, err)
	}
	for _, cv := range res.GetColumnValues() {
		return cv.Value, cv.GetTimestamp(), true, nil
	}
	return nil, 0, false, nil
}

// backoff sleeps before the next attempt of a check-and-put loop that lost a
// race, a random few milliseconds growing with the attempt so that the writers
// of one hot cell spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt >= maxCASAttempts {
		return ErrContention
	}
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5)))
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// --- Versions -------------------------------------------------------------------

// seqQualifier is the qualifier of the sequence cell guarding the version of
// column at ts.
func seqQualifier(column string, ts int64) string {
	return column + "@" + strconv.FormatInt(ts, 10)
}

// nextSeq is the value following sequence value cur (absent or malformed: 1).
func nextSeq(cur []byte) []byte {
	var n uint64
	if len(cur) == 8 {
		n = binary.BigEndian.Uint64(cur)
	}
	return binary.BigEndian.AppendUint64(nil, n+1)
}

// Append records ids as the version of c at ts, merging into an existing version
// at ts. The version and its sequence cell are read in one Get (a row-atomic
// snapshot) and written back with check-and-put on the sequence: a concurrent
// merge changes the sequence, so exactly one of two racing merges succeeds and
// the other re-reads and merges again.
func (t *tables) Append(ctx context.Context, c layout.Cell, ts int64, ids []int64) error {
	r, err := resolveCell(c)
	if err != nil {
		return err
	}
	if ts < 0 {
		return fmt.Errorf("append to %s: %w: timestamp %d is negative", r, ErrInvalidKey, ts)
	}
	seqQual := seqQualifier(r.column, ts)
	one := int32(1)
	get := &thrift2.TGet{
		Row:         []byte(r.row),
		Columns:     []*thrift2.TColumn{r.tcolumn(), {Family: []byte(layout.FamilySeq), Qualifier: []byte(seqQual)}},
		Timestamp:   &ts,
		MaxVersions: &one,
	}
	// Most appends open a new version (a refresh has a time stamp of its own):
	// try that in one round trip, a put guarded by "no sequence cell at ts yet",
	// and fall back to read-merge-write only if another writer got there first.
	first := &thrift2.TPut{Row: []byte(r.row), ColumnValues: []*thrift2.TColumnValue{
		{Family: []byte(layout.FamilySeq), Qualifier: []byte(seqQual), Value: nextSeq(nil), Timestamp: &ts},
		{Family: []byte(r.family.Name), Qualifier: []byte(r.qualifier), Value: storage.EncodeIDs(storage.MergeIDs(nil, ids)), Timestamp: &ts},
	}}
	if ok, err := t.checkAndPut(ctx, r.table, r.row, layout.FamilySeq, seqQual, nil, first); err != nil {
		return fmt.Errorf("append to %s@%d: %w", r, ts, err)
	} else if ok {
		return nil
	}
	for attempt := 0; ; attempt++ {
		res, err := t.get(ctx, r.table, get)
		if err != nil {
			return fmt.Errorf("append to %s@%d: %w", r, ts, err)
		}
		var (
			seq   []byte
			old   []int64
			found bool
		)
		for _, cv := range res.GetColumnValues() {
			if string(cv.Family) == layout.FamilySeq {
				seq = cv.Value
				continue
			}
			// A malformed version is replaced: merged with nothing.
			old, found = t.bad.IDs(c, ts, cv.Value)
		}
		merged := storage.MergeIDs(old, ids)
		if found && len(merged) == len(old) {
			return nil // every id is already in the version
		}
		// Both cells carry ts explicitly (r.value would read 0 as "now").
		p := &thrift2.TPut{Row: []byte(r.row), ColumnValues: []*thrift2.TColumnValue{
			{Family: []byte(layout.FamilySeq), Qualifier: []byte(seqQual), Value: nextSeq(seq), Timestamp: &ts},
			{Family: []byte(r.family.Name), Qualifier: []byte(r.qualifier), Value: storage.EncodeIDs(merged), Timestamp: &ts},
		}}
		ok, err := t.checkAndPut(ctx, r.table, r.row, layout.FamilySeq, seqQual, seq, p)
		if err != nil {
			return fmt.Errorf("append to %s@%d: %w", r, ts, err)
		}
		if ok {
			return nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("append to %s@%d: %w", r, ts, err)
		}
	}
}

// Versions returns, for each column, the versions with timestamp <= maxTS,
// newest first, at most limit per column, in one Get. Versions past the
// family's TTL are dropped by HBase.
func (t *tables) Versions(ctx context.Context, table, row string, columns []string, maxTS int64, limit int) (map[string][]storage.Version, error) {
	type key struct{ family, qualifier string }
	names := make(map[key]string, len(columns))
	cols := make([]*thrift2.TColumn, 0, len(columns))
	tcols := make(map[string]*thrift2.TColumn, len(columns))
	for _, col := range columns {
		r, err := resolve(table, row, col)
		if err != nil {
			return nil, err
		}
		k := key{r.family.Name, r.qualifier}
		if _, dup := names[k]; !dup {
			names[k] = col
			cols = append(cols, r.tcolumn())
			tcols[col] = r.tcolumn()
		}
	}
	out := make(map[string][]storage.Version, len(cols))
	if len(cols) == 0 || maxTS < 0 {
		return out, nil
	}
	maxStamp := maxTS // TimeRange's upper bound is exclusive
	if maxTS < math.MaxInt64 {
		maxStamp++
	}
	versions := int32(math.MaxInt32)
	if limit > 0 && limit < math.MaxInt32 {
		versions = int32(limit)
	}
	res, err := t.get(ctx, table, &thrift2.TGet{
		Row:         []byte(row),
		Columns:     cols,
		TimeRange:   &thrift2.TTimeRange{MinStamp: 0, MaxStamp: maxStamp},
		MaxVersions: &versions,
	})
	if err != nil {
		return nil, fmt.Errorf("versions of %s/%s: %w", table, row, err)
	}
	// Per column: how many versions came back, the oldest, and whether one was
	// malformed (skipped, so a bounded read may have to read further).
	type got struct {
		n      int
		oldest int64
		bad    bool
	}
	seen := make(map[string]*got, len(cols))
	for _, cv := range res.GetColumnValues() {
		col, ok := names[key{string(cv.Family), string(cv.Qualifier)}]
		if !ok {
			continue
		}
		ts := cv.GetTimestamp()
		g := seen[col]
		if g == nil {
			g = &got{oldest: ts}
			seen[col] = g
		}
		g.n, g.oldest = g.n+1, min(g.oldest, ts)
		ids, ok := t.bad.IDs(layout.Cell{Table: table, Row: row, Column: col}, ts, cv.Value)
		if !ok {
			g.bad = true
			continue
		}
		out[col] = append(out[col], storage.Version{Timestamp: ts, IDs: ids})
	}
	for col, g := range seen {
		// Only a read bounded by limit that got all it asked for and skipped
		// some may have left out valid versions that should take their place.
		if g.bad && limit > 0 && g.n == int(versions) {
			if err := t.olderVersions(ctx, table, row, col, tcols[col], g.oldest, limit, out); err != nil {
				return nil, err
			}
		}
	}
	for _, vs := range out {
		slices.SortStableFunc(vs, func(a, b storage.Version) int { return cmp.Compare(b.Timestamp, a.Timestamp) })
	}
	return out, nil
}

// olderVersions adds to out[col] the valid versions of col older than below
// until it holds limit of them or there are none left: those that take the
// place of malformed versions a bounded read skipped. It is the rare path of
// Versions, a Get per batch of one column.
func (t *tables) olderVersions(ctx context.Context, table, row, col string, tc *thrift2.TColumn, below int64, limit int, out map[string][]storage.Version) error {
	cell := layout.Cell{Table: table, Row: row, Column: col}
	for len(out[col]) < limit && below > 0 {
		want := int32(limit - len(out[col]))
		res, err := t.get(ctx, table, &thrift2.TGet{
			Row:         []byte(row),
			Columns:     []*thrift2.TColumn{tc},
			TimeRange:   &thrift2.TTimeRange{MinStamp: 0, MaxStamp: below}, // below itself excluded
			MaxVersions: &want,
		})
		if err != nil {
			return fmt.Errorf("versions of %s/%s: %w", table, row, err)
		}
		cvs := res.GetColumnValues()
		for _, cv := range cvs {
			ts := cv.GetTimestamp()
			below = min(below, ts)
			if ids, ok := t.bad.IDs(cell, ts, cv.Value); ok {
				out[col] = append(out[col], storage.Version{Timestamp: ts, IDs: ids})
			}
		}
		if len(cvs) < int(want) {
			return nil // nothing older left
		}
	}
	return nil
}

// DeleteThrough deletes the versions of c with timestamp <= ts with one
// delete-columns marker at ts.
func (t *tables) DeleteThrough(ctx context.Context, c layout.Cell, ts int64) error {
	r, err := resolveCell(c)
	if err != nil {
		return err
	}
	if ts < 0 {
		return nil // HBase holds no negative timestamps
	}
	d := &thrift2.TDelete{
		Row:        []byte(r.row),
		Columns:    []*thrift2.TColumn{{Family: []byte(r.family.Name), Qualifier: []byte(r.qualifier), Timestamp: &ts}},
		DeleteType: thrift2.TDeleteType_DELETE_COLUMNS,
	}
	err = t.pool.call(ctx, t.timeout, true, func(ctx context.Context, cl *thrift2.THBaseServiceClient) error {
		return cl.DeleteSingle(ctx, []byte(r.table), d)
	})
	if err != nil {
		return fmt.Errorf("delete %s through %d: %w", r, ts, err)
	}
	return nil
}

// --- Queues -------------------------------------------------------------------

// Push appends the ids the queue in c does not hold yet to its tail, with
// check-and-put on the queue's previous value.
func (t *tables) Push(ctx context.Context, c layout.Cell, ids []int64) error {
	r, err := resolveCell(c)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	for attempt := 0; ; attempt++ {
		old, ts, found, err := t.latest(ctx, r)
		if err != nil {
			return fmt.Errorf("push to %s: %w", r, err)
		}
		var queue []int64
		valid := true
		if found {
			// A malformed queue is replaced by ids (the check-and-put is on
			// its bad bytes).
			queue, valid = t.bad.IDs(c, ts, old)
		}
		merged := storage.MergeIDs(queue, ids)
		if valid && len(merged) == len(queue) {
			return nil
		}
		p := &thrift2.TPut{Row: []byte(r.row), ColumnValues: []*thrift2.TColumnValue{r.value(storage.EncodeIDs(merged), 0)}}
		ok, err := t.swapQueue(ctx, r, old, found, p)
		if err != nil {
			return fmt.Errorf("push to %s: %w", r, err)
		}
		if ok {
			return nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("push to %s: %w", r, err)
		}
	}
}

// swapQueue writes p over the queue cell r if it still holds old (absent when
// !found). HBase's check-and-put reads an empty expected value as "no such
// cell", so a queue cell holding an empty value (malformed: not even "[]") is
// overwritten with a plain put instead: a Push racing with it may be lost,
// which is what a broken queue costs.
func (t *tables) swapQueue(ctx context.Context, r cellRef, old []byte, found bool, p *thrift2.TPut) (bool, error) {
	if found && len(old) == 0 {
		return true, t.put(ctx, r.table, p, true)
	}
	return t.checkAndPut(ctx, r.table, r.row, r.family.Name, r.qualifier, old, p)
}

// Take removes and returns up to n ids from the head of the queue in c. The rest
// is written back with check-and-put on the value read, so of two concurrent
// takers one wins and the other reads the shortened queue and tries again.
func (t *tables) Take(ctx context.Context, c layout.Cell, n int) ([]int64, error) {
	r, err := resolveCell(c)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		old, ts, found, err := t.latest(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("take from %s: %w", r, err)
		}
		if !found {
			return nil, nil
		}
		queue, valid := t.bad.IDs(c, ts, old)
		if valid && len(queue) == 0 {
			return nil, nil
		}
		// A malformed queue reads as empty and is overwritten with "[]" below
		// (m is 0), so the next Push starts afresh.
		m := min(n, len(queue))
		p := &thrift2.TPut{Row: []byte(r.row), ColumnValues: []*thrift2.TColumnValue{r.value(storage.EncodeIDs(queue[m:]), 0)}}
		ok, err := t.swapQueue(ctx, r, old, found, p)
		if err != nil {
			return nil, fmt.Errorf("take from %s: %w", r, err)
		}
		if ok {
			return queue[:m:m], nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("take from %s: %w", r, err)
		}
	}
}

// --- Similarity ----------------------------------------------------------------

// Similar returns the n highest-scored neighbours of article, highest first;
// equal scores go lower id first.
func (t *tables) Similar(ctx context.Context, article int64, n int) ([]storage.Scored, error) {
	if n <= 0 {
		return nil, nil
	}
	row := layout.SimilarRow(article)
	one := int32(1)
	res, err := t.get(ctx, layout.TableArticleSimilar, &thrift2.TGet{
		Row:         []byte(row),
		Columns:     []*thrift2.TColumn{{Family: []byte("similar")}},
		MaxVersions: &one,
	})
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", layout.TableArticleSimilar, row, err)
	}
	all := make([]storage.Scored, 0, len(res.GetColumnValues()))
	for _, cv := range res.GetColumnValues() {
		column := string(cv.Family) + ":" + string(cv.Qualifier)
		if nb, ok := t.bad.Neighbour(article, column, cv.GetTimestamp(), cv.Value); ok {
			all = append(all, nb)
		}
	}
	return storage.Highest(all, n), nil
}

// HasRow says whether row of table holds a live cell in a data family (the
// sequence family is the backend's own): one exists call, which the region
// server answers without shipping any value.
func (t *tables) HasRow(ctx context.Context, table, row string) (bool, error) {
	if err := checkRow(table, row); err != nil {
		return false, err
	}
	get := &thrift2.TGet{Row: []byte(row)}
	for _, spec := range layout.Schema {
		if spec.Name != table {
			continue
		}
		for _, f := range spec.Families {
			if f.Name != layout.FamilySeq {
				get.Columns = append(get.Columns, &thrift2.TColumn{Family: []byte(f.Name)})
			}
		}
	}
	if len(get.Columns) == 0 {
		return false, fmt.Errorf("table %s: %w", table, ErrUnknownFamily)
	}
	var found bool
	err := t.pool.call(ctx, t.timeout, true, func(ctx context.Context, c *thrift2.THBaseServiceClient) (err error) {
		found, err = c.Exists(ctx, []byte(table), get)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("exists %s/%s: %w", table, row, err)
	}
	return found, nil
}

// --- Features ------------------------------------------------------------------

// UserWeightsIn reads the user's weights of several channels with one Get of
// their columns.
func (t *tables) UserWeightsIn(ctx context.Context, user string, channels []int32) (map[int32][]float64, error) {
	if len(channels) == 0 {
		return map[int32][]float64{}, nil
	}
	one := int32(1)
	get := &thrift2.TGet{Row: []byte(user), MaxVersions: &one}
	byColumn := map[string]int32{}
	for _, ch := range channels {
		r, err := resolveCell(layout.UserFeatureCell(user, ch))
		if err != nil {
			return nil, err
		}
		get.Columns = append(get.Columns, r.tcolumn())
		byColumn[r.column] = ch
	}
	res, err := t.get(ctx, layout.TableUserFeature, get)
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", layout.TableUserFeature, user, err)
	}
	out := map[int32][]float64{}
	for _, cv := range res.GetColumnValues() {
		column := string(cv.Family) + ":" + string(cv.Qualifier)
		ch, ok := byColumn[column]
		if !ok {
			continue
		}
		if w, ok := t.bad.Floats(layout.UserFeatureCell(user, ch), cv.GetTimestamp(), cv.Value); ok {
			out[ch] = w
		}
	}
	return out, nil
}

// ArticleVectors returns the feature vectors of ids that have one: one
// getMultiple per thousand ids.
func (t *tables) ArticleVectors(ctx context.Context, ids []int64) (map[int64][]float64, error) {
	out := make(map[int64][]float64, len(ids))
	seen := make(map[int64]struct{}, len(ids))
	one := int32(1)
	var gets []*thrift2.TGet
	var order []int64
	flush := func() error {
		if len(gets) == 0 {
			return nil
		}
		res, err := t.getMultiple(ctx, layout.TableArticleFeature, gets)
		if err != nil {
			return fmt.Errorf("get %d rows of %s: %w", len(gets), layout.TableArticleFeature, err)
		}
		for i, r := range res {
			for _, cv := range r.GetColumnValues() {
				if vec, ok := t.bad.Floats(layout.ArticleFeatureCell(order[i]), cv.GetTimestamp(), cv.Value); ok {
					out[order[i]] = vec
				}
			}
		}
		gets, order = gets[:0], order[:0]
		return nil
	}
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		r, err := resolveCell(layout.ArticleFeatureCell(id))
		if err != nil {
			return nil, err
		}
		gets = append(gets, &thrift2.TGet{Row: []byte(r.row), Columns: []*thrift2.TColumn{r.tcolumn()}, MaxVersions: &one})
		order = append(order, id)
		if len(gets) == maxBatchGets {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// --- Loader --------------------------------------------------------------------

// PutCells writes cells with putMultiple, one Put per row and at most about 1
// MiB per call, up to four calls at once. When the same cell and timestamp appear more than once, the last
// value wins, as it would had the cells been written one after another. Every
// cell is checked before anything is written; a failure part way through can
// leave earlier batches written.
func (t *tables) PutCells(ctx context.Context, cells []layout.CellValue) error {
	type cellKey struct {
		table, row, column string
		ts                 int64
	}
	refs := make([]cellRef, len(cells))
	last := make(map[cellKey]int, len(cells))
	for i, c := range cells {
		r, err := resolveCell(c.Cell)
		if err != nil {
			return err
		}
		if c.Timestamp < 0 {
			return fmt.Errorf("put %s: %w: timestamp %d is negative", r, ErrInvalidKey, c.Timestamp)
		}
		refs[i] = r
		last[cellKey{r.table, r.row, r.column, c.Timestamp}] = i
	}

	// One Put per (table, row), in order of first appearance.
	type rowKey struct{ table, row string }
	type rowPut struct {
		table      string
		put        *thrift2.TPut
		size       int
		idempotent bool
	}
	var rows []*rowPut
	byRow := map[rowKey]*rowPut{}
	for i, c := range cells {
		r := refs[i]
		if last[cellKey{r.table, r.row, r.column, c.Timestamp}] != i {
			continue
		}
		rp, ok := byRow[rowKey{r.table, r.row}]
		if !ok {
			rp = &rowPut{table: r.table, put: &thrift2.TPut{Row: []byte(r.row)}, size: len(r.row), idempotent: true}
			byRow[rowKey{r.table, r.row}] = rp
			rows = append(rows, rp)
		}
		rp.put.ColumnValues = append(rp.put.ColumnValues, r.value(c.Value, c.Timestamp))
		rp.size += len(r.column) + len(c.Value) + 24
		// A server-timestamped write to a multi-version family adds a version each
		// time it is sent, so it must not be resent.
		if c.Timestamp == 0 && r.family.MaxVersions > 1 {
			rp.idempotent = false
		}
	}
	// A putMultiple addresses one table.
	slices.SortStableFunc(rows, func(a, b *rowPut) int { return strings.Compare(a.table, b.table) })

	// Batches go out a few at a time: a region server applies one batch's puts
	// much faster than a round trip delivers the next, so overlapping them
	// multiplies the throughput of a large load. Each (cell, timestamp) is in one
	// batch only, so their order does not matter.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(t.loadParallelism)
	var (
		table      string
		batch      []*thrift2.TPut
		size       int
		idempotent = true
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		table, batch, idempotent := table, batch, idempotent
		g.Go(func() error {
			if err := t.putMultiple(gctx, table, batch, idempotent); err != nil {
				return fmt.Errorf("put %d rows of %s: %w", len(batch), table, err)
			}
			return nil
		})
	}
	for _, rp := range rows {
		if rp.table != table || size+rp.size > maxBatchBytes {
			flush()
			table, batch, size, idempotent = rp.table, nil, 0, true
		}
		batch = append(batch, rp.put)
		size += rp.size
		idempotent = idempotent && rp.idempotent
	}
	flush()
	return g.Wait()
}
