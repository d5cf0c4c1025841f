package layout

import (
	"container/list"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// A malformed stored value affects only itself (DESIGN.md §6): the engines
// decode every value they read through a BadCells, which turns a value that
// fails the codec into "skip this one", counts it and logs it. What "skip"
// means is the engine contract's (see Cells and SortedSets): a version is left
// out, a feature reads as absent, a queue or a sorted-set member is dropped.

// MetricBadCells is the counter of malformed cells found, by table: the table
// names of Schema, one "redis:{kind}" per kind of sorted-set key (BadCellTables).
const MetricBadCells = "reco_bad_cells_total"

// badCellsRemembered bounds the cells a BadCells remembers as already
// reported: a hot bad cell is logged and counted once, not on every read, and
// memory stays bounded however many there are.
const badCellsRemembered = 4096

// Label values of the sorted-set keys, by kind; keys outside the layout (an
// engine's own tests) are redis:other, tables outside Schema other.
const (
	labelTier1    = "redis:tier1"
	labelNew      = "redis:new"
	labelHot      = "redis:hot"
	labelSeen     = "redis:seen"
	labelSetOther = "redis:other"
	labelOther    = "other"
)

// BadCellTables are the values of the table label of MetricBadCells: a bounded
// set, whatever the stores hold.
func BadCellTables() []string {
	out := make([]string, 0, len(Schema)+6)
	for _, t := range Schema {
		out = append(out, t.Name)
	}
	return append(out, labelTier1, labelNew, labelHot, labelSeen, labelSetOther, labelOther)
}

// BadCells decodes the values engines read and reports the malformed ones:
// each is counted in MetricBadCells and logged at warn level with its address
// (table, row, column and version; or sorted-set key and member) the first
// time it is seen. It remembers the last few thousand cells it reported, so a
// bad cell read on every request is neither logged nor counted again while
// remembered. It is safe for concurrent use. A nil *BadCells decodes and skips
// alike but reports nothing: for an engine's own tests.
type BadCells struct {
	log   *zap.Logger
	count *prometheus.CounterVec
	mu    sync.Mutex
	seen  map[string]*list.Element
	order *list.List // of string, most recently reported first
	limit int
}

// NewBadCells returns a BadCells that logs to log and counts in reg (nil: no
// counter). The counter is registered once per registry: a second BadCells on
// the same registry shares the first one's counter.
func NewBadCells(log *zap.Logger, reg prometheus.Registerer) (*BadCells, error) {
	if log == nil {
		log = zap.NewNop()
	}
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricBadCells,
		Help: "Malformed stored values skipped by reads (each counted once while remembered), by table or sorted-set key kind.",
	}, []string{"table"})
	if reg != nil {
		if err := reg.Register(count); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register %s: %w", MetricBadCells, err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("register %s: %w", MetricBadCells, err)
			}
			count = existing
		}
	}
	for _, table := range BadCellTables() {
		count.WithLabelValues(table) // every series exists from the start, at 0
	}
	return &BadCells{
		log:   log.With(zap.String("component", "storage")),
		count: count,
		seen:  map[string]*list.Element{},
		order: list.New(),
		limit: badCellsRemembered,
	}, nil
}

// IDs decodes the id list at version ts of c. A malformed one is reported and
// ok is false: the caller skips it.
func (b *BadCells) IDs(c Cell, ts int64, value []byte) (ids []int64, ok bool) {
	ids, err := storage.DecodeIDs(value)
	if err != nil {
		b.ReportCell(c, ts, err)
		return nil, false
	}
	return ids, true
}

// Floats decodes the vector at version ts of c (features). A malformed one is
// reported and ok is false: the caller reads the cell as absent.
func (b *BadCells) Floats(c Cell, ts int64, value []byte) (v []float64, ok bool) {
	v, err := storage.DecodeFloats(value)
	if err != nil {
		b.ReportCell(c, ts, err)
		return nil, false
	}
	return v, true
}

// Neighbour decodes the article_similar cell of article at column (its
// SimilarColumn, "similar:{id}") and version ts. A column that names no
// article or a malformed score is reported and ok is false: the caller skips
// that neighbour.
func (b *BadCells) Neighbour(article int64, column string, ts int64, value []byte) (nb storage.Scored, ok bool) {
	c := Cell{TableArticleSimilar, SimilarRow(article), column}
	qualifier, found := strings.CutPrefix(column, "similar:")
	if !found {
		b.ReportCell(c, ts, fmt.Errorf("%w: column %.40q is not similar:{article id}", storage.ErrMalformed, column))
		return storage.Scored{}, false
	}
	id, err := storage.ParseID(qualifier)
	if err != nil {
		b.ReportCell(c, ts, fmt.Errorf("qualifier: %w", err))
		return storage.Scored{}, false
	}
	score, err := storage.DecodeScore(value)
	if err != nil {
		b.ReportCell(c, ts, err)
		return storage.Scored{}, false
	}
	return storage.Scored{ID: id, Score: score}, true
}

// Member reads a member of the sorted set key as an article id. One that is
// not is reported and ok is false: the caller drops it from the set.
func (b *BadCells) Member(key, member string) (id int64, ok bool) {
	id, err := storage.ParseID(member)
	if err != nil {
		b.ReportMember(key, member, err)
		return 0, false
	}
	return id, true
}

// ReportCell reports the version at ts of c as malformed (ts 0: the cell has a
// single version whose stamp is unknown).
func (b *BadCells) ReportCell(c Cell, ts int64, err error) {
	if b == nil {
		return
	}
	label := labelOther
	if _, ok := FamilyOf(c.Table, familyOf(c.Column)); ok {
		label = c.Table
	}
	addr := label + "\x00" + c.Row + "\x00" + c.Column + "\x00" + strconv.FormatInt(ts, 10)
	if !b.first(addr) {
		return
	}
	b.count.WithLabelValues(label).Inc()
	b.log.Warn("skipping a malformed stored cell",
		zap.String("table", c.Table), zap.String("row", c.Row), zap.String("column", c.Column),
		zap.Int64("timestamp", ts), zap.Error(err))
}

// ReportMember reports member of the sorted set key as malformed.
func (b *BadCells) ReportMember(key, member string, err error) {
	if b == nil {
		return
	}
	label := setLabel(key)
	if !b.first(label + "\x00" + key + "\x00" + member) {
		return
	}
	b.count.WithLabelValues(label).Inc()
	b.log.Warn("dropping a malformed sorted-set member",
		zap.String("table", label), zap.String("key", key), zap.String("member", fmt.Sprintf("%.64q", member)), zap.Error(err))
}

// first remembers addr and reports whether it was new.
func (b *BadCells) first(addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.seen[addr]; ok {
		b.order.MoveToFront(e)
		return false
	}
	b.seen[addr] = b.order.PushFront(addr)
	if b.order.Len() > b.limit {
		oldest := b.order.Back()
		b.order.Remove(oldest)
		delete(b.seen, oldest.Value.(string))
	}
	return true
}

func familyOf(column string) string {
	f, _, _ := strings.Cut(column, ":")
	return f
}

// setLabel is the kind of a sorted-set key of this layout, as a label value.
func setLabel(key string) string {
	switch {
	case strings.HasPrefix(key, "ch:") && strings.HasSuffix(key, ":new"):
		return labelNew
	case strings.HasPrefix(key, "ch:") && strings.HasSuffix(key, ":hot"):
		return labelHot
	case strings.HasPrefix(key, "reco:seen:"):
		return labelSeen
	case strings.HasPrefix(key, "reco:") && strings.HasSuffix(key, ":art"):
		return labelTier1
	}
	return labelSetOther
}
