package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
)

// The bad-cell counter is registered once per registry: both roles share it,
// and a second OpenStores on the same registry reuses it.
func TestOpenStoresRegistersBadCellsOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	for i := range 2 {
		cfg := testConfig(t)
		cfg.Storage.Tables, cfg.Storage.Sets = "embedded", "embedded"
		cfg.Storage.Embedded.Path = filepath.Join(t.TempDir(), "reco.db")
		st, cleanup, err := OpenStores(context.Background(), cfg.Storage, TablesRole|SetsRole, zap.NewNop(), reg)
		if err != nil {
			t.Fatalf("OpenStores #%d on one registry: %v", i+1, err)
		}
		if st.Tables == nil || st.Sets == nil {
			t.Errorf("OpenStores #%d: stores %+v, want both roles", i+1, st)
		}
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}
	if n, err := testutil.GatherAndCount(reg, layout.MetricBadCells); err != nil || n != len(layout.BadCellTables()) {
		t.Errorf("%s series = %d, %v; want %d, one per table label", layout.MetricBadCells, n, err, len(layout.BadCellTables()))
	}
}
