package hbase

import (
	"context"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// BenchmarkGateway times single calls through the Thrift2 gateway, one at a
// time, and reports their p50 and p99 (the mean hides the tail a feed stalls
// on):
//
//   - get: one Get of a single-version cell (a reader's weights, 10 floats);
//   - versioned-get: one Get of every version of a history cell holding 200
//     versions of 10 ids (what a refresh reads to filter seen ids);
//   - versioned-get-newest: the newest of those 200 versions (refresh vs.
//     history);
//   - put: one Put of a single-version cell (a reader's weights);
//   - append: a new history version, which is a Get and a check-and-put.
func BenchmarkGateway(b *testing.B) {
	tb := openCells(b)
	ctx := context.Background()
	user := unique("bench")
	weights := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
	put := func(channel int32, w []float64) error {
		v, err := storage.EncodeFloats(w)
		if err != nil {
			return err
		}
		return tb.PutCells(ctx, []layout.CellValue{{Cell: layout.UserFeatureCell(user, channel), Value: v}})
	}
	if err := put(1, weights); err != nil {
		b.Fatal(err)
	}
	hist := layout.HistoryCell(user, 1)
	now := time.Now().UnixMilli()
	var cells []layout.CellValue
	for i := range int64(200) {
		ids := make([]int64, 10)
		for j := range ids {
			ids[j] = i*10 + int64(j) + 1 // article ids are positive
		}
		cells = append(cells, layout.CellValue{Cell: hist, Timestamp: now - i*1000, Value: storage.EncodeIDs(ids)})
	}
	if err := tb.PutCells(ctx, cells); err != nil {
		b.Fatal(err)
	}

	run := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			// Warm the pool and the region server's caches outside the timing.
			for i := range 20 {
				if err := op(-1 - i); err != nil {
					b.Fatal(err)
				}
			}
			var lat storagetest.Latencies
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				err := op(i)
				lat.Since(start)
				if err != nil {
					b.Fatal(err)
				}
			}
			lat.Report(b)
		})
	}
	run("get", func(int) error {
		w, err := tb.UserWeightsIn(ctx, user, []int32{1})
		if err == nil && len(w[1]) != len(weights) {
			b.Fatalf("UserWeights = %v", w)
		}
		return err
	})
	run("versioned-get", func(int) error {
		got, err := tb.Versions(ctx, hist.Table, hist.Row, []string{hist.Column}, layout.MaxTimestamp, 0)
		if err == nil && len(got[hist.Column]) < 200 {
			b.Fatalf("Versions = %d versions, want at least 200", len(got[hist.Column]))
		}
		return err
	})
	run("versioned-get-newest", func(int) error {
		got, err := tb.Versions(ctx, hist.Table, hist.Row, []string{hist.Column}, layout.MaxTimestamp, 1)
		if err == nil && len(got[hist.Column]) != 1 {
			b.Fatalf("Versions(limit 1) = %d versions", len(got[hist.Column]))
		}
		return err
	})
	run("put", func(i int) error {
		return put(2, append([]float64{float64(i)}, weights[1:]...))
	})
	appendCell := layout.HistoryCell(user+"-append", 1)
	run("append", func(i int) error {
		return tb.Append(ctx, appendCell, now+int64(i)+1000, []int64{int64(i) + 1, int64(i) + 2, int64(i) + 3})
	})
}
