// Package layouttest is the contract of the engines under the ports
// (layout.Cells) that the ports' own contract (storagetest) cannot see: every
// bound and limit of a versioned read, of which each port uses one.
package layouttest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// VersionsBounds checks c.Versions against every combination of maxTS and
// limit over three versions of a fresh cell of user's history.
func VersionsBounds(t *testing.T, ctx context.Context, c layout.Cells, user string) {
	t.Helper()
	cell := layout.HistoryCell(user, 3)
	now := time.Now().UnixMilli()
	for _, ts := range []int64{now - 3000, now - 1000, now - 2000} {
		if err := c.Append(ctx, cell, ts, []int64{ts}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		maxTS  int64
		limit  int
		wantTS []int64
	}{
		{now, 0, []int64{now - 1000, now - 2000, now - 3000}},
		{now - 1500, 0, []int64{now - 2000, now - 3000}},
		{now - 2000, 0, []int64{now - 2000, now - 3000}},
		{now, 2, []int64{now - 1000, now - 2000}},
		{now - 1500, 1, []int64{now - 2000}},
		{now - 5000, 0, nil},
		{layout.MaxTimestamp, 0, []int64{now - 1000, now - 2000, now - 3000}},
	} {
		got, err := c.Versions(ctx, cell.Table, cell.Row, []string{cell.Column}, tt.maxTS, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var ts []int64
		for _, v := range got[cell.Column] {
			ts = append(ts, v.Timestamp)
		}
		if !slices.Equal(ts, tt.wantTS) {
			t.Errorf("Versions(maxTS=now-%d, limit=%d) timestamps = %v, want %v", now-tt.maxTS, tt.limit, ts, tt.wantTS)
		}
		if _, ok := got[cell.Column]; ok != (tt.wantTS != nil) {
			t.Errorf("Versions(maxTS=now-%d, limit=%d): column present = %v", now-tt.maxTS, tt.limit, ok)
		}
	}
}
