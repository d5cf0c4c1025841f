package app

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/layout"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/redisstore"
)

// Role is a storage role a process needs.
type Role int

// The storage roles, combined with |.
const (
	TablesRole Role = 1 << iota // the HBase role
	SetsRole                    // the Redis role
	LogRole                     // the durable log (Kafka, or embedded)
)

// Stores are the stores a process opened (nil for a role not asked for).
type Stores struct {
	Tables storage.Tables
	Sets   storage.Sets
	Log    eventlog.Log
}

// OpenStores opens the backends cfg names for roles and returns a cleanup that
// closes them. The embedded engine is opened once even when it holds both
// roles, and its tables are bootstrapped on open.
//
// A malformed stored value the backends read affects only itself (DESIGN.md
// §6): it is skipped, logged to log at warn level once, and counted in
// reco_bad_cells_total{table} on reg, which both roles share (nil reg: not
// counted; nil log: not logged).
func OpenStores(ctx context.Context, cfg config.Storage, roles Role, log *zap.Logger, reg prometheus.Registerer) (_ Stores, _ func() error, err error) {
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

	bad, err := layout.NewBadCells(log, reg)
	if err != nil {
		return Stores{}, nil, err
	}
	needTables, needSets := roles&TablesRole != 0, roles&SetsRole != 0
	var db *embedded.DB
	if (needTables && cfg.Tables == "embedded") || (needSets && cfg.Sets == "embedded") {
		var closeDB func() error
		if db, closeDB, err = embedded.Open(cfg.Embedded, embedded.WithBadCells(bad)); err != nil {
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
			if st.Tables, closeHBase, err = hbase.Open(cfg.HBase, bad); err != nil {
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
			if log != nil {
				redisstore.SetLogger(log)
			}
			var closeRedis func() error
			if st.Sets, closeRedis, err = redisstore.Open(cfg.Redis, bad); err != nil {
				return Stores{}, nil, err
			}
			closers = append(closers, closeRedis)
		}
	}
	if roles&LogRole != 0 {
		var closeLog func() error
		logLog := log
		if logLog == nil {
			logLog = zap.NewNop()
		}
		if st.Log, closeLog, err = eventlog.Open(cfg.Log, logLog); err != nil {
			return Stores{}, nil, err
		}
		closers = append(closers, closeLog)
	}
	return st, cleanup, nil
}
