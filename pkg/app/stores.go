package app

import (
	"context"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/redisstore"
)

// Role is a storage role a process needs.
type Role int

// The storage roles, combined with |.
const (
	TablesRole Role = 1 << iota // the HBase role
	SetsRole                    // the Redis role
)

// Stores are the stores a process opened (nil for a role not asked for).
type Stores struct {
	Tables storage.Tables
	Sets   storage.Sets
}

// OpenStores opens the backends cfg names for roles and returns a cleanup that
// closes them. The embedded engine is opened once even when it holds both
// roles, and its tables are bootstrapped on open.
func OpenStores(ctx context.Context, cfg config.Storage, roles Role) (_ Stores, _ func() error, err error) {
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

	needTables, needSets := roles&TablesRole != 0, roles&SetsRole != 0
	var db *embedded.DB
	if (needTables && cfg.Tables == "embedded") || (needSets && cfg.Sets == "embedded") {
		var closeDB func() error
		if db, closeDB, err = embedded.Open(cfg.Embedded); err != nil {
			return Stores{}, nil, err
		}
		closers = append(closers, closeDB)
	}
	var st Stores
	if needTables {
		switch cfg.Tables {
		case "embedded":
			// The embedded engine is the zero-setup default: its tables are
			// created on open rather than by a separate bootstrap step.
			st.Tables = db.Tables()
			if err = st.Tables.Bootstrap(ctx); err != nil {
				return Stores{}, nil, err
			}
		case "hbase":
			var closeHBase func() error
			if st.Tables, closeHBase, err = hbase.Open(cfg.HBase); err != nil {
				return Stores{}, nil, err
			}
			closers = append(closers, closeHBase)
		}
	}
	if needSets {
		switch cfg.Sets {
		case "embedded":
			st.Sets = db.Sets()
		case "redis":
			var closeRedis func() error
			if st.Sets, closeRedis, err = redisstore.Open(cfg.Redis); err != nil {
				return Stores{}, nil, err
			}
			closers = append(closers, closeRedis)
		}
	}
	return st, cleanup, nil
}
