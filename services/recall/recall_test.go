package recall

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	recallv1 "github.com/toutiao-reco/toutiao-reco/pkg/pb/reco/recall/v1"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
)

func open(t *testing.T) (storage.Tables, storage.SortedSets) {
	t.Helper()
	db, cleanup, err := embedded.Open(embedded.Config{Path: filepath.Join(t.TempDir(), "r.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	if err := db.Tables().Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db.Tables(), db.SortedSets()
}

var now = time.Now().UnixMilli()

func TestMergeKeepsSourcePriorityWithoutDuplicates(t *testing.T) {
	tables, sets := open(t)
	ctx := context.Background()
	row := storage.RecallRow("u")
	put := func(column string, ts int64, ids ...int64) {
		if err := tables.Append(ctx, storage.Cell{Table: storage.TableCBRecall, Row: row, Column: column}, ts, ids); err != nil {
			t.Fatal(err)
		}
	}
	put("als:5", now-2, 1, 2)
	put("als:5", now-1, 3, 1) // a newer version comes first
	put("content:5", now-1, 3, 4)
	_ = sets.Add(ctx, storage.HotKey(5), []storage.Scored{{ID: 4, Score: 9}, {ID: 5, Score: 8}}, 0)
	_ = sets.Add(ctx, storage.NewKey(5), []storage.Scored{{ID: 6, Score: 1}}, 0)

	r := newRecall(t, Config{HotNum: 10, NewNum: 10, SourceLimit: 100}, Stores{Lists: tables, Similarity: tables, Sets: sets})
	got, err := r.Recall(ctx, "u", 5, []recallv1.Source{100, 101, 104, 103, 102})
	if err != nil {
		t.Fatal(err)
	}
	want := []Candidate{{3, 100}, {1, 100}, {2, 100}, {4, 101}, {5, 104}, {6, 103}}
	if !slices.Equal(got, want) {
		t.Errorf("Recall = %v, want %v", got, want)
	}
	// The cb_recall versions were consumed.
	again, err := r.Recall(ctx, "u", 5, []recallv1.Source{100, 101})
	if err != nil || len(again) != 0 {
		t.Errorf("second Recall = %v, %v; want nothing: versions are consumed", again, err)
	}
}

// racingLists writes a new cb_recall version right after every read, as an
// online job might between recall's read and its delete.
type racingLists struct {
	storage.Lists
	cell storage.Cell
}

func (l racingLists) Versions(ctx context.Context, table, row string, columns []string, maxTS int64, limit int) (map[string][]storage.Version, error) {
	got, err := l.Lists.Versions(ctx, table, row, columns, maxTS, limit)
	if err == nil {
		err = l.Lists.Append(ctx, l.cell, now+100, []int64{99})
	}
	return got, err
}

func TestVersionsWrittenDuringRecallSurvive(t *testing.T) {
	tables, sets := open(t)
	ctx := context.Background()
	cell := storage.Cell{Table: storage.TableCBRecall, Row: storage.RecallRow("u"), Column: "online:2"}
	if err := tables.Append(ctx, cell, now, []int64{7}); err != nil {
		t.Fatal(err)
	}
	r := newRecall(t, Config{HotNum: 1, NewNum: 1, SourceLimit: 10}, Stores{Lists: racingLists{tables, cell}, Similarity: tables, Sets: sets})
	got, err := r.Recall(ctx, "u", 2, []recallv1.Source{102})
	if err != nil || !slices.Equal(got, []Candidate{{7, 102}}) {
		t.Fatalf("Recall = %v, %v; want [7]", got, err)
	}
	left, _ := tables.Versions(ctx, cell.Table, cell.Row, []string{cell.Column}, 1<<62, 0)
	if v := left[cell.Column]; len(v) != 1 || !slices.Equal(v[0].IDs, []int64{99}) {
		t.Errorf("after recall the cell holds %+v, want only the version written meanwhile", v)
	}
}

func TestLimitsAndUnknownSources(t *testing.T) {
	tables, sets := open(t)
	ctx := context.Background()
	var hot []storage.Scored
	for i := range int64(30) {
		hot = append(hot, storage.Scored{ID: i + 1, Score: float64(i)})
	}
	_ = sets.Add(ctx, storage.HotKey(1), hot, 0)
	r := newRecall(t, Config{HotNum: 10, NewNum: 10, SourceLimit: 100}, Stores{Lists: tables, Similarity: tables, Sets: sets})
	got, err := r.Recall(ctx, "u", 1, []recallv1.Source{104})
	if err != nil || len(got) != 10 || got[0].ID != 30 {
		t.Errorf("hot recall = %v, %v; want the top 10 from 30", got, err)
	}
	if _, err := r.Recall(ctx, "u", 1, []recallv1.Source{105}); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("source 105 in a feed: err = %v, want ErrUnknownSource", err)
	}
}

func newRecall(t *testing.T, cfg Config, stores Stores) *Recall {
	t.Helper()
	r, err := New(cfg, stores, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return r
}
