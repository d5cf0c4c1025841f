package app

import (
	"context"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/redisstore"
)

// OpenStores opens the backends cfg names for the roles asked for (a nil result
// for a role not asked for) and returns a cleanup that closes them. The embedded
// engine is opened once even when it holds both roles.
func OpenStores(ctx context.Context, cfg config.Storage, needTables, needSets bool) (tables storage.Tables, sets storage.SortedSets, _ func() error, err error) {
	var closers []func() error
	cleanup := func() error {
		var first error
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i](); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	defer func() {
		if err != nil {
			_ = cleanup()
		}
	}()

	var db *embedded.DB
	if (needTables && cfg.Tables == "embedded") || (needSets && cfg.Sets == "embedded") {
		var closeDB func() error
		if db, closeDB, err = embedded.Open(cfg.Embedded); err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, closeDB)
	}
	if needTables {
		switch cfg.Tables {
		case "embedded":
			// The embedded engine is the zero-setup default: its tables are
			// created on open rather than by a separate bootstrap step.
			tables = db.Tables()
			if err = tables.Bootstrap(ctx); err != nil {
				return nil, nil, nil, err
			}
		case "hbase":
			var closeHBase func() error
			if tables, closeHBase, err = hbase.Open(cfg.HBase); err != nil {
				return nil, nil, nil, err
			}
			closers = append(closers, closeHBase)
		}
	}
	if needSets {
		switch cfg.Sets {
		case "embedded":
			sets = db.SortedSets()
		case "redis":
			s, closeRedis, err := redisstore.Open(cfg.Redis)
			if err != nil {
				return nil, nil, nil, err
			}
			closers = append(closers, closeRedis)
			sets = s
		}
	}
	return tables, sets, cleanup, nil
}

func (a *App) openStores(ctx context.Context, needTables, needSets bool) (storage.Tables, storage.SortedSets, error) {
	tables, sets, cleanup, err := OpenStores(ctx, a.cfg.Storage, needTables, needSets)
	if err != nil {
		return nil, nil, err
	}
	a.closers = append(a.closers, cleanup)
	return tables, sets, nil
}
