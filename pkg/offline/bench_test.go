package offline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/hbase"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/redisstore"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// benchScales are the data sets BenchmarkBuild can build, by RECOTEST_BENCH_SCALE.
var benchScales = map[string]dataset.GenerateConfig{
	// small finishes in well under a minute on two cores, so make bench stays
	// short.
	"small": {Users: 5000, Articles: 5000, Days: 6, Seed: 1},
	// mind-small is MIND-small's size: 50k users, 50k articles, 150k
	// impressions (≈ 5.9M shown articles) over 6 days.
	"mind-small": {Users: 50000, Articles: 50000, Days: 6, Impressions: 150000, Seed: 1},
}

var benchBuild struct {
	once  sync.Once
	steps []StepStats
	peak  uint64
	err   error
}

// BenchmarkBuild generates a data set (RECOTEST_BENCH_SCALE: small, the default, or
// mind-small) and builds it, reporting each step's seconds and peak RSS.
//
// One op is one whole build, whatever b.N is: a build takes seconds to minutes,
// and make bench passes -benchtime 2000x to the storage benchmarks. The build
// runs once per process (the framework calls a benchmark once with b.N = 1,
// then again with the requested count) and both calls report its numbers;
// ns/op is the build's total time.
//
// It writes to HBase and Redis when the environment names them
// (storagetest.EnvHBase, storagetest.EnvRedis, as under make bench), and to an
// embedded file otherwise.
func BenchmarkBuild(b *testing.B) {
	scale := os.Getenv("RECOTEST_BENCH_SCALE")
	if scale == "" {
		scale = "small"
	}
	data, ok := benchScales[scale]
	if !ok {
		b.Fatalf("RECOTEST_BENCH_SCALE=%q: want small or mind-small", scale)
	}
	benchBuild.once.Do(func() {
		benchBuild.steps, benchBuild.err = runBenchBuild(b, data)
		benchBuild.peak = PeakRSS()
	})
	if benchBuild.err != nil {
		b.Fatal(benchBuild.err)
	}
	var total time.Duration
	var peakStep uint64
	for _, s := range benchBuild.steps {
		total += s.Duration
		peakStep = max(peakStep, s.PeakRSS)
		b.ReportMetric(s.Duration.Seconds(), s.Name+"-s")
	}
	b.ReportMetric(float64(total.Nanoseconds()), "ns/op")
	b.ReportMetric(mib(peakStep), "peak-RSS-MiB")
}

func runBenchBuild(b *testing.B, data dataset.GenerateConfig) ([]StepStats, error) {
	dir, err := os.MkdirTemp("", "bench-build-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ds, err := dataset.Generate(data)
	if err != nil {
		return nil, err
	}
	if err := dataset.WriteDir(filepath.Join(dir, "data"), ds); err != nil {
		return nil, err
	}
	st, names, cleanup, err := benchStores(filepath.Join(dir, "reco.db"))
	if err != nil {
		return nil, err
	}
	defer func() { _ = cleanup() }()
	ctx := context.Background()
	if err := st.Tables.Bootstrap(ctx); err != nil {
		return nil, err
	}
	opts := DefaultOptions()
	opts.DataDir, opts.ModelDir = filepath.Join(dir, "data"), filepath.Join(dir, "models")
	opts.Version = time.Now().UTC().Truncate(24 * time.Hour)
	res, err := Build(ctx, opts, st)
	if err != nil {
		return nil, err
	}
	var table, report strings.Builder
	WriteStats(&table, res.Steps)
	res.Report.WriteTable(&report)
	b.Logf("build of %d users, %d articles, %d impressions on tables=%s sets=%s:\n%s\n%s",
		res.Report.Data.Users, len(ds.Articles), len(ds.Behaviors), names[0], names[1], table.String(), report.String())
	return res.Steps, nil
}

// benchStores opens HBase and Redis where the environment names them (with the
// default configuration's pool sizes and timeouts) and an embedded file at
// path for the other roles. The backends are opened here rather than through
// package app, so the offline package's tests need nothing of the services.
func benchStores(path string) (_ Stores, names [2]string, cleanup func() error, err error) {
	var closers []func() error
	cleanup = func() error {
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
	cfg := config.Default().Storage
	hbaseAddr, redisAddr := os.Getenv(storagetest.EnvHBase), os.Getenv(storagetest.EnvRedis)
	var db *embedded.DB
	if hbaseAddr == "" || redisAddr == "" {
		var closeDB func() error
		if db, closeDB, err = embedded.Open(embedded.Config{Path: path, NoSync: true}); err != nil {
			return Stores{}, names, nil, err
		}
		closers = append(closers, closeDB)
	}
	var st Stores
	names = [2]string{"embedded", "embedded"}
	if hbaseAddr != "" {
		cfg.HBase.ThriftAddr = hbaseAddr
		var closeHBase func() error
		if st.Tables, closeHBase, err = hbase.Open(cfg.HBase); err != nil {
			return Stores{}, names, nil, err
		}
		closers = append(closers, closeHBase)
		names[0] = "hbase"
	} else {
		st.Tables = db.Tables()
	}
	if redisAddr != "" {
		cfg.Redis.Addrs = []string{redisAddr}
		var closeRedis func() error
		if st.Sets, closeRedis, err = redisstore.Open(cfg.Redis); err != nil {
			return Stores{}, names, nil, err
		}
		closers = append(closers, closeRedis)
		names[1] = "redis"
	} else {
		st.Sets = db.Sets()
	}
	return st, names, cleanup, nil
}
