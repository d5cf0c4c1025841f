package offline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/offline"
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
	steps []offline.StepStats
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
		benchBuild.peak = offline.PeakRSS()
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
	b.ReportMetric(float64(peakStep)/(1<<20), "peak-RSS-MiB")
}

func runBenchBuild(b *testing.B, data dataset.GenerateConfig) ([]offline.StepStats, error) {
	dir, err := os.MkdirTemp("", "bench-build-*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }() // a temporary directory: a leftover harms nothing
	ds, err := dataset.Generate(data)
	if err != nil {
		return nil, err
	}
	if err := dataset.WriteDir(filepath.Join(dir, "data"), ds); err != nil {
		return nil, err
	}
	cfg := config.Default()
	cfg.Storage.Embedded.Path, cfg.Storage.Embedded.NoSync = filepath.Join(dir, "reco.db"), true
	if addr := os.Getenv(storagetest.EnvHBase); addr != "" {
		cfg.Storage.Tables, cfg.Storage.HBase.ThriftAddr = "hbase", addr
	}
	if addr := os.Getenv(storagetest.EnvRedis); addr != "" {
		cfg.Storage.Sets, cfg.Storage.Redis.Addrs = "redis", []string{addr}
	}
	ctx := context.Background()
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cleanup() }()
	if err := st.Tables.Bootstrap(ctx); err != nil {
		return nil, err
	}
	opts := offline.DefaultOptions()
	opts.DataDir, opts.ModelDir = filepath.Join(dir, "data"), filepath.Join(dir, "models")
	opts.Version = time.Now().UTC().Truncate(24 * time.Hour)
	res, err := offline.Build(ctx, opts, offline.Stores{Tables: st.Tables, Sets: st.Sets})
	if err != nil {
		return nil, err
	}
	var table, report strings.Builder
	offline.WriteStats(&table, res.Steps)
	res.Report.WriteTable(&report)
	b.Logf("build of %d users, %d articles, %d impressions on tables=%s sets=%s:\n%s\n%s",
		res.Report.Data.Users, len(ds.Articles), len(ds.Behaviors), cfg.Storage.Tables, cfg.Storage.Sets, table.String(), report.String())
	return res.Steps, nil
}
