package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/offline"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// demoData sizes the data set `reco admin demo` generates: big enough that
// every channel, recall source and model has something to show, small enough to
// build in seconds.
var demoData = dataset.GenerateConfig{Users: 3000, Articles: 3000, Days: 6, Seed: 1}

// adminGenerate is `reco admin generate`: a synthetic data set in MIND's layout.
func adminGenerate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin generate", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write news.tsv and behaviors.tsv into (required)")
	users := fs.Int("users", 5000, "users to draw (those without an impression do not appear)")
	articles := fs.Int("articles", 5000, "articles in news.tsv")
	days := fs.Int("days", 6, "days of impressions; the last one is the build's hold-out")
	impressions := fs.Int("impressions", 0, "behaviour lines; 0 means 3 per user, as in MIND-small")
	seed := fs.Uint64("seed", 1, "random seed: the same flags give the same files")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("admin generate: --out is required")
	}
	ds, err := dataset.Generate(dataset.GenerateConfig{Users: *users, Articles: *articles, Days: *days, Impressions: *impressions, Seed: *seed})
	if err != nil {
		return err
	}
	if err := dataset.WriteDir(*out, ds); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d articles) and %s (%d impressions)\n",
		filepath.Join(*out, dataset.NewsFile), len(ds.Articles), filepath.Join(*out, dataset.BehaviorsFile), len(ds.Behaviors))
	return nil
}

// adminBuild is `reco admin build`: the offline job.
func adminBuild(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin build", flag.ContinueOnError)
	data := fs.String("data", "", "directory holding news.tsv and behaviors.tsv (required)")
	models := fs.String("models", "", "directory to write 200.json, 201.json and report.json into (required)")
	opts := offline.DefaultOptions()
	buildTime := fs.String("build-time", "", "the build's fixed time: the timestamp of its recall versions and the version of its models, as RFC 3339, a date (2006-01-02) or Unix milliseconds; default today 00:00 UTC, so builds of one day replace each other's versions")
	fs.IntVar(&opts.HoldoutDays, "holdout-days", opts.HoldoutDays, "last days held out for the report; 0 builds from everything")
	fs.IntVar(&opts.FreshDays, "fresh-days", opts.FreshDays, "days before the cutoff whose articles recall and hot lists consider")
	fs.Uint64Var(&opts.Seed, "seed", opts.Seed, "seed of every random choice")
	fs.BoolVar(&opts.SkipUnknown, "skip-unknown", false, "drop the history entries and impressions of behaviors.tsv that name an article missing from news.tsv (a line left without impressions, whole), and report how many, instead of failing the build")
	stats := fs.Bool("stats", false, "print each step's time and peak memory")
	cfg, log, err := load(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if *data == "" || *models == "" {
		return errors.New("admin build: --data and --models are required")
	}
	if opts.Version, err = parseBuildTime(*buildTime, time.Now()); err != nil {
		return err
	}
	opts.DataDir, opts.ModelDir = *data, *models
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	printChannels(stdout)
	res, err := build(ctx, cfg, log, opts)
	if errors.Is(err, dataset.ErrUnknownArticle) {
		return fmt.Errorf("%w; --skip-unknown builds without such references and reports them", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	res.Report.WriteTable(stdout)
	fmt.Fprintf(stdout, "\nwrote %s, %s and %s\n", filepath.Join(*models, "200.json"), filepath.Join(*models, "201.json"), filepath.Join(*models, offline.ReportFile))
	if *stats {
		fmt.Fprintln(stdout)
		offline.WriteStats(stdout, res.Steps)
		fmt.Fprintf(stdout, "process peak RSS %.0f MiB\n", float64(offline.PeakRSS())/(1<<20))
	}
	return nil
}

// adminDemo is `reco admin demo`: demo data for `make run`, unless the store
// already holds data.
func adminDemo(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin demo", flag.ContinueOnError)
	models := fs.String("models", "", "directory the sort service reads 200.json and 201.json from (required)")
	cfg, log, err := load(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if *models == "" {
		return errors.New("admin demo: --models is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	present, err := dataPresent(ctx, cfg, log)
	if err != nil {
		return err
	}
	if present {
		fmt.Fprintf(stdout, "demo: the store already holds data (new lists are set); nothing to do\n")
		for _, id := range []int32{200, 201} {
			if _, err := model.Load(filepath.Join(*models, fmt.Sprintf("%d.json", id))); err != nil {
				fmt.Fprintf(stdout, "demo: warning: model %d is missing or unreadable (%v); run reco admin build\n", id, err)
			}
		}
		return nil
	}
	dir, err := os.MkdirTemp("", "reco-demo-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }() // the demo's input, a temporary copy: a leftover harms nothing
	fmt.Fprintf(stdout, "demo: the store is empty: generating %d users × %d articles over %d days and building them\n", demoData.Users, demoData.Articles, demoData.Days)
	ds, err := dataset.Generate(demoData)
	if err != nil {
		return err
	}
	if err := dataset.WriteDir(dir, ds); err != nil {
		return err
	}
	opts := offline.DefaultOptions()
	opts.DataDir, opts.ModelDir = dir, *models
	opts.Version, _ = parseBuildTime("", time.Now())
	res, err := build(ctx, cfg, log, opts)
	if err != nil {
		return err
	}
	res.Report.WriteTable(stdout)
	fmt.Fprintf(stdout, "\ndemo: ready; once the suite serves, try\n  grpcurl -plaintext -d '{\"user_id\": %q, \"channel_id\": 0, \"article_num\": 10, \"time_stamp\": %d}' %s UserRecommend/user_recommend\n",
		res.ExampleUser, time.Now().UnixMilli(), cfg.Server.GRPCAddr)
	return nil
}

// build opens the configured stores and runs the offline job into them.
func build(ctx context.Context, cfg config.Config, log *zap.Logger, opts offline.Options) (*offline.Result, error) {
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, log, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cleanup() }()
	if err := st.Tables.Bootstrap(ctx); err != nil {
		return nil, err
	}
	opts.Progress = os.Stderr
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		opts.TTY = true
	}
	return offline.Build(ctx, opts, offline.Stores{Tables: st.Tables, Sets: st.Sets})
}

// dataPresent says whether any channel's new list is set: builds write those
// last, so a store with one holds a whole build.
func dataPresent(ctx context.Context, cfg config.Config, log *zap.Logger) (bool, error) {
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.SetsRole, log, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = cleanup() }()
	for ch := range feed.NumChannels {
		top, err := st.Sets.Top(ctx, storage.NewList, ch, 1)
		if err != nil {
			return false, err
		}
		if len(top) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// parseBuildTime reads --build-time: RFC 3339, a date, or Unix milliseconds;
// empty means today 00:00 UTC.
func parseBuildTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.UTC().Truncate(24 * time.Hour), nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("--build-time %q is not RFC 3339, a date (2006-01-02) or Unix milliseconds", s)
}

func printChannels(w io.Writer) {
	fmt.Fprint(w, "channels (id=category; 0 is the all-channels feed, 24 takes any category not listed):")
	for _, c := range dataset.Channels() {
		fmt.Fprintf(w, " %d=%s", c.Channel, c.Category)
	}
	fmt.Fprintln(w)
}
