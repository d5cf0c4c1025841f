package layout

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// A bad cell is counted and logged once while remembered; one forgotten (the
// memory is bounded) is reported again.
func TestBadCellsReportOncePerRememberedCell(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	reg := prometheus.NewRegistry()
	b, err := NewBadCells(zap.New(core), reg)
	if err != nil {
		t.Fatal(err)
	}
	b.limit = 2
	c := func(ch int32) Cell { return HistoryCell("u", ch) }
	for range 3 {
		if _, ok := b.IDs(c(1), 5, []byte(`[1, "x"]`)); ok {
			t.Fatal("IDs accepted a malformed list")
		}
	}
	if ids, ok := b.IDs(c(1), 6, []byte("[1, 2]")); !ok || len(ids) != 2 {
		t.Errorf("IDs([1, 2]) = %v, %v", ids, ok)
	}
	if got := testutil.ToFloat64(b.count.WithLabelValues(TableHistoryRecommend)); got != 1 {
		t.Errorf("counted %v after three reads of one bad cell, want 1", got)
	}
	b.IDs(c(2), 5, []byte("{"))
	b.IDs(c(3), 5, []byte("{")) // c(1)@5 is forgotten
	b.IDs(c(1), 5, []byte(`[1, "x"]`))
	if got := testutil.ToFloat64(b.count.WithLabelValues(TableHistoryRecommend)); got != 4 {
		t.Errorf("counted %v, want 4 (the forgotten cell counted again)", got)
	}
	if logs.Len() != 4 {
		t.Errorf("%d log lines, want 4", logs.Len())
	}
	e := logs.All()[0].ContextMap()
	if e["table"] != TableHistoryRecommend || e["row"] != "reco:his:u" || e["column"] != "channel:1" || e["timestamp"] != int64(5) {
		t.Errorf("log fields = %v, want the cell's table, row, column and timestamp", e)
	}
}

// Every value of the table label is bounded: the schema's tables and the kinds
// of sorted-set key, never a user id.
func TestBadCellsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	b, err := NewBadCells(nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	b.ReportCell(Cell{Table: "nope", Row: "r", Column: "f:q"}, 1, storage.ErrMalformed)
	b.Member(CacheKey("u", 1), "x")
	b.Member(NewKey(2), "x")
	b.Member(HotKey(2), "-1")
	b.Member(SeenKey("u", 2), "x")
	b.Member("some:key", "x")
	for label, want := range map[string]float64{"other": 1, "redis:tier1": 1, "redis:new": 1, "redis:hot": 1, "redis:seen": 1, "redis:other": 1, TableCBRecall: 0} {
		if got := testutil.ToFloat64(b.count.WithLabelValues(label)); got != want {
			t.Errorf("%s{table=%q} = %v, want %v", MetricBadCells, label, got, want)
		}
	}
	if n := testutil.CollectAndCount(b.count); n != len(BadCellTables()) {
		t.Errorf("%d series, want %d (one per BadCellTables value)", n, len(BadCellTables()))
	}
}

// Two BadCells on one registry (both roles, or two OpenStores) share one
// counter instead of failing to register.
func TestBadCellsRegisterOncePerRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewBadCells(nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBadCells(nil, reg)
	if err != nil {
		t.Fatalf("second NewBadCells on one registry: %v", err)
	}
	a.Member(HotKey(1), "x")
	b.Member(HotKey(1), "y")
	if got := testutil.ToFloat64(a.count.WithLabelValues("redis:hot")); got != 2 {
		t.Errorf("shared counter = %v, want 2", got)
	}
	// A different collector under the name is a conflict, reported.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: MetricBadCells, Help: "x"}))
	if _, err := NewBadCells(nil, reg2); err == nil {
		t.Error("NewBadCells over a conflicting metric succeeded")
	}
}

// A nil BadCells decodes and skips alike, silently.
func TestNilBadCellsSkips(t *testing.T) {
	var b *BadCells
	if _, ok := b.Floats(UserFeatureCell("u", 1), 0, []byte("null")); ok {
		t.Error("Floats(null) ok")
	}
	if nb, ok := b.Neighbour(7, "similar:8", 0, []byte("0.5")); !ok || nb != (storage.Scored{ID: 8, Score: 0.5}) {
		t.Errorf("Neighbour = %v, %v", nb, ok)
	}
	for _, col := range []string{"similar:x", "similar:08", "other:8"} {
		if _, ok := b.Neighbour(7, col, 0, []byte("0.5")); ok {
			t.Errorf("Neighbour(%s) ok", col)
		}
	}
	if _, ok := b.Member("k", "+5"); ok {
		t.Error(`Member("+5") ok`)
	}
	b.ReportCell(Cell{}, 0, errors.New("x"))
}
