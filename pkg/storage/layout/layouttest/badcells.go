package layouttest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// Reports is a layout.BadCells counting in a registry and logging to a log of
// its own, so a test can see what the reads of an engine opened with Bad
// reported.
type Reports struct {
	Bad  *layout.BadCells
	reg  *prometheus.Registry
	logs *observer.ObservedLogs
}

// NewReports returns a Reports with an empty registry and log.
func NewReports(t testing.TB) *Reports {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	reg := prometheus.NewRegistry()
	bad, err := layout.NewBadCells(zap.New(core), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &Reports{Bad: bad, reg: reg, logs: logs}
}

// Check asserts that reco_bad_cells_total{table} is want[table] for every
// table (0 for those want leaves out), and that every bad cell counted was
// logged exactly once, however often it was read.
func (r *Reports) Check(t testing.TB, want map[string]float64) {
	t.Helper()
	var exp strings.Builder
	fmt.Fprintf(&exp, "# HELP %s Malformed stored values skipped by reads (each counted once while remembered), by table or sorted-set key kind.\n# TYPE %s counter\n", layout.MetricBadCells, layout.MetricBadCells)
	total := 0.0
	for _, table := range layout.BadCellTables() {
		fmt.Fprintf(&exp, "%s{table=%q} %g\n", layout.MetricBadCells, table, want[table])
		total += want[table]
	}
	for table := range want {
		if !slices.Contains(layout.BadCellTables(), table) {
			t.Errorf("table label %q is not one of layout.BadCellTables()", table)
		}
	}
	if err := testutil.GatherAndCompare(r.reg, strings.NewReader(exp.String()), layout.MetricBadCells); err != nil {
		t.Errorf("bad cells counted:\n%v", err)
	}
	logged := map[string]int{}
	for _, e := range r.logs.All() {
		if e.Level != zapcore.WarnLevel {
			continue
		}
		fields := e.ContextMap()
		delete(fields, "error")
		keys := slices.Sorted(maps.Keys(fields))
		var addr strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&addr, "%s=%v ", k, fields[k])
		}
		logged[addr.String()]++
	}
	n := 0
	for addr, times := range logged {
		n += times
		if times != 1 {
			t.Errorf("bad cell %s logged %d times, want once", addr, times)
		}
	}
	if float64(n) != total {
		t.Errorf("%d bad cells logged, want %v:\n%v", n, total, slices.Sorted(maps.Keys(logged)))
	}
}

// MalformedCells writes malformed values raw through c.PutCells, among valid
// ones, and checks that the domain's tables over c (layout.NewTables) serve
// the valid ones as if the malformed ones were absent, that the writers refuse
// ids the readers would, and that r, which c reports to, counted and logged
// each malformed cell once although every read ran twice. user and the
// articles article..article+3 must be fresh.
func MalformedCells(t *testing.T, ctx context.Context, c layout.Cells, r *Reports, user string, article int64) {
	t.Helper()
	tb := layout.NewTables(c)
	now := time.Now().UnixMilli()
	old, bad, newer := now-3000, now-2000, now-1000
	als, _ := layout.RecallCell(user, feed.SourceALS, 1)
	content, _ := layout.RecallCell(user, feed.SourceContent, 1)
	similar := func(column string) layout.Cell {
		return layout.Cell{Table: layout.TableArticleSimilar, Row: layout.SimilarRow(article), Column: column}
	}
	cells := []layout.CellValue{
		// Channel 1's history: an old malformed version between two good ones.
		{Cell: layout.HistoryCell(user, 1), Timestamp: old, Value: []byte("[11, 12]")},
		{Cell: layout.HistoryCell(user, 1), Timestamp: bad, Value: []byte(`[1, "x"]`)},
		{Cell: layout.HistoryCell(user, 1), Timestamp: newer, Value: []byte("[13]")},
		// Channel 2's: its newest version is malformed (an id <= 0).
		{Cell: layout.HistoryCell(user, 2), Timestamp: old, Value: []byte("[14]")},
		{Cell: layout.HistoryCell(user, 2), Timestamp: newer, Value: []byte("[-3]")},
		{Cell: layout.WaitCell(user, 1), Value: []byte("{")},
		{Cell: layout.WaitCell(user, 2), Value: []byte("[-3]")},
		{Cell: als, Timestamp: old, Value: []byte("__import__('os')")},
		{Cell: content, Timestamp: old, Value: []byte("[31, 32]")},
		{Cell: layout.RecalledCell(user, 1), Timestamp: old, Value: []byte("[41]")},
		{Cell: layout.RecalledCell(user, 1), Timestamp: newer, Value: []byte("[0]")},
		{Cell: layout.ArticleFeatureCell(article), Value: []byte("[0.1, 0.2]")},
		{Cell: layout.ArticleFeatureCell(article + 1), Value: []byte("[0.1, 'x']")},
		{Cell: layout.ArticleFeatureCell(article + 2), Value: []byte("[0.3]")},
		{Cell: layout.UserFeatureCell(user, 1), Value: []byte("[1, 2]")},
		{Cell: layout.UserFeatureCell(user, 2), Value: []byte("null")},
		{Cell: similar(layout.SimilarColumn(article + 1)), Value: []byte("0.9")},
		{Cell: similar(layout.SimilarColumn(article + 2)), Value: []byte("0.5; rm -rf /")},
		{Cell: similar("similar:x"), Value: []byte("0.5")},
		// Article+3 has nothing but a malformed neighbour: no neighbour to
		// show, but a known article (something was written of it).
		{Cell: layout.Cell{Table: layout.TableArticleSimilar, Row: layout.SimilarRow(article + 3), Column: layout.SimilarColumn(article + 4)}, Value: []byte("[0.5]")},
	}
	if err := c.PutCells(ctx, cells); err != nil {
		t.Fatal(err)
	}

	for read := range 2 {
		check := func(what string, got, want any, err error) {
			t.Helper()
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("read %d: %s = %v, %v; want %v", read+1, what, got, err, want)
			}
		}
		got, err := tb.Newest(ctx, user, 1)
		check("Newest(channel 1)", got, newer, err)
		got, err = tb.Newest(ctx, user, 2)
		check("Newest(channel 2, newest version malformed)", got, old, err)
		page, err := tb.Page(ctx, user, 1, bad)
		check("Page at the malformed version's stamp", page, []storage.Version{{Timestamp: old, IDs: []int64{11, 12}}}, err)
		page, err = tb.Page(ctx, user, 1, newer)
		check("Page at the newer stamp", page, []storage.Version{{Timestamp: newer, IDs: []int64{13}}, {Timestamp: old, IDs: []int64{11, 12}}}, err)
		seen, err := tb.Seen(ctx, user, []int32{1, 2})
		check("Seen", slices.Sorted(maps.Keys(seen)), []int64{11, 12, 13, 14}, err)
		runs, err := tb.Read(ctx, user, 1, []feed.Source{feed.SourceALS, feed.SourceContent})
		check("Read(als malformed, content)", runs, map[feed.Source][]storage.Version{feed.SourceContent: {{Timestamp: old, IDs: []int64{31, 32}}}}, err)
		recalled, err := tb.Recalled(ctx, user, []int32{1})
		check("Recalled", recalled, map[int32][]storage.Version{1: {{Timestamp: old, IDs: []int64{41}}}}, err)
		vectors, err := tb.ArticleVectors(ctx, []int64{article, article + 1, article + 2})
		check("ArticleVectors(3, the middle one malformed)", vectors, map[int64][]float64{article: {0.1, 0.2}, article + 2: {0.3}}, err)
		weights, err := tb.UserWeights(ctx, user, []int32{1, 2})
		check("UserWeights", weights, map[int32][]float64{1: {1, 2}}, err)
		nbs, err := tb.Similar(ctx, article, 10)
		check("Similar", nbs, []storage.Scored{{ID: article + 1, Score: 0.9}}, err)
		nbs, err = tb.Similar(ctx, article+3, 10)
		check("Similar(only a malformed neighbour)", nbs, []storage.Scored(nil), err)
	}

	// A malformed queue reads as empty and is dropped: the next Push works.
	for range 2 {
		if got, err := tb.Take(ctx, user, 1, 5); err != nil || len(got) != 0 {
			t.Errorf("Take from a malformed queue = %v, %v; want nothing", got, err)
		}
	}
	if err := tb.Push(ctx, user, 1, []int64{21, 22}); err != nil {
		t.Fatal(err)
	}
	if got, err := tb.Take(ctx, user, 1, 5); err != nil || !slices.Equal(got, []int64{21, 22}) {
		t.Errorf("Take after Push = %v, %v; want [21 22]", got, err)
	}
	// A Push over a malformed queue replaces it.
	if err := tb.Push(ctx, user, 2, []int64{23}); err != nil {
		t.Fatal(err)
	}
	if got, err := tb.Take(ctx, user, 2, 5); err != nil || !slices.Equal(got, []int64{23}) {
		t.Errorf("Take after a Push over a malformed queue = %v, %v; want [23]", got, err)
	}

	// A refresh recorded at the malformed version's stamp replaces it.
	if err := tb.Record(ctx, user, 1, bad, []int64{15}); err != nil {
		t.Fatal(err)
	}
	want := []storage.Version{{Timestamp: bad, IDs: []int64{15}}, {Timestamp: old, IDs: []int64{11, 12}}}
	if page, err := tb.Page(ctx, user, 1, bad); err != nil || fmt.Sprint(page) != fmt.Sprint(want) {
		t.Errorf("Page after recording over the malformed version = %v, %v; want %v", page, err, want)
	}

	// Writers refuse the ids readers would, naming what they were writing.
	for name, err := range map[string]error{
		"Record":          tb.Record(ctx, user, 3, now, []int64{1, 0}),
		"Push":            tb.Push(ctx, user, 3, []int64{-1}),
		"Load recall":     tb.Load(ctx, []storage.Record{storage.RecallRun{User: user, Channel: 3, Source: feed.SourceALS, Timestamp: now, IDs: []int64{7, -3}}}),
		"Load recalled":   tb.Load(ctx, []storage.Record{storage.RecalledRun{User: user, Channel: 3, Timestamp: now, IDs: []int64{0}}}),
		"Load neighbours": tb.Load(ctx, []storage.Record{storage.Neighbours{Article: article, Similar: []storage.Scored{{ID: -1, Score: 1}}}}),
	} {
		if err == nil || !strings.Contains(err.Error(), "positive") {
			t.Errorf("%s of an id <= 0: err = %v, want a refusal", name, err)
		}
		if err != nil && name != "Load neighbours" && !strings.Contains(err.Error(), user) {
			t.Errorf("%s of an id <= 0: err = %v does not name the user", name, err)
		}
	}
	if got, err := tb.Newest(ctx, user, 3); err != nil || got != 0 {
		t.Errorf("after refused writes Newest(channel 3) = %d, %v; want nothing written", got, err)
	}

	r.Check(t, map[string]float64{
		layout.TableHistoryRecommend: 2,
		layout.TableWaitRecommend:    2,
		layout.TableCBRecall:         1,
		layout.TableHistoryRecall:    1,
		layout.TableArticleFeature:   1,
		layout.TableUserFeature:      1,
		layout.TableArticleSimilar:   3,
	})
}

// MalformedMembers adds members that are not article ids raw to sorted sets of
// s, among valid ones, and checks that the domain's sets over s
// (layout.NewSets) serve the valid ones, that the read removed the malformed
// ones from their set, and that r, which s reports to, counted and logged each
// once. add writes a member as given; members lists a set's members as
// stored. user and channel must be fresh.
func MalformedMembers(t *testing.T, ctx context.Context, s layout.SortedSets, add func(key, member string, score float64), members func(key string) []string, r *Reports, user string, channel int32) {
	t.Helper()
	sets := layout.NewSets(s)
	tier1, hot := layout.CacheKey(user, channel), layout.HotKey(channel)
	t.Cleanup(func() { _ = s.Delete(context.Background(), tier1, hot) })

	// Tier 1 holds 7, x, 5, best first: a pop of two pops x on the way and
	// makes up for it.
	add(tier1, "5", 1)
	add(tier1, "x", 2)
	add(tier1, "7", 3)
	if got, err := sets.Pop(ctx, user, channel, 2); err != nil || !slices.Equal(got, []int64{7, 5}) {
		t.Errorf("Pop(2) over 7, x, 5 = %v, %v; want [7 5]", got, err)
	}
	if got := members(tier1); len(got) != 0 {
		t.Errorf("tier 1 still holds %q after the pop", got)
	}
	if got, err := sets.Pop(ctx, user, channel, 2); err != nil || len(got) != 0 {
		t.Errorf("second Pop = %v, %v; want nothing", got, err)
	}

	add(hot, "8", 5)
	add(hot, "__import__('os')", 4)
	add(hot, "-3", 3)
	add(hot, "09", 2)
	add(hot, "9", 1)
	for range 2 {
		want := []storage.Scored{{ID: 8, Score: 5}, {ID: 9, Score: 1}}
		if got, err := sets.Top(ctx, storage.HotList, channel, 2); err != nil || !slices.Equal(got, want) {
			t.Errorf("Top(hot, 2) = %v, %v; want %v", got, err, want)
		}
	}
	if got := slices.Sorted(slices.Values(members(hot))); !slices.Equal(got, []string{"8", "9"}) {
		t.Errorf("hot list holds %q after the reads, want only [8 9]", got)
	}

	r.Check(t, map[string]float64{"redis:tier1": 1, "redis:hot": 3})
}
