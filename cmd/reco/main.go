// Command reco is the one binary of the toutiao-reco suite.
//
//	reco serve [--config FILE] [--target all|routing,recocenter,recall,sort,cache]
//	reco admin bootstrap [--config FILE]
//	reco admin generate --out DIR [--users N --articles N --days N --seed S]
//	reco admin build --data DIR --models DIR [--config FILE]
//	reco admin demo --models DIR [--config FILE]
//	reco health [--addr HOST:PORT] [--service NAME]
//	reco config env
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

const usage = `usage:
  reco serve [--config FILE] [--target all|COMMA-LIST]  serve the suite (targets: routing, recocenter, recall, sort, cache)
  reco admin bootstrap [--config FILE]                  create the HBase tables (idempotent)
  reco admin generate --out DIR [--users N --articles N --days N --seed S]
                                                        write a synthetic data set in MIND's layout
  reco admin build --data DIR --models DIR [--config FILE] [--stats]
                                                        build recall, similarity, features and models from MIND files
  reco admin demo --models DIR [--config FILE]          build demo data if the store is empty
  reco health [--addr HOST:PORT] [--service NAME]       exit 0 if the server answers SERVING (container healthchecks)
  reco config env                                       list every config key with its environment variable`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reco:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch {
	case args[0] == "serve":
		return serve(args[1:])
	case args[0] == "admin" && len(args) > 1 && args[1] == "bootstrap":
		return bootstrap(args[2:], stdout)
	case args[0] == "admin" && len(args) > 1 && args[1] == "generate":
		return adminGenerate(args[2:], stdout)
	case args[0] == "admin" && len(args) > 1 && args[1] == "build":
		return adminBuild(args[2:], stdout)
	case args[0] == "admin" && len(args) > 1 && args[1] == "demo":
		return adminDemo(args[2:], stdout)
	case args[0] == "health":
		return healthCheck(args[1:], stdout)
	case args[0] == "config" && len(args) > 1 && args[1] == "env":
		cfg := config.Default()
		for _, e := range config.EnvTable(&cfg) {
			fmt.Fprintf(stdout, "%-36s %s\n", e.Key, e.Env)
		}
		return nil
	}
	return errors.New(usage)
}

// load parses the common flags and loads the configuration.
func load(fs *flag.FlagSet, args []string) (config.Config, *zap.Logger, error) {
	path := fs.String("config", "", "YAML config file; RECO_* environment variables override it")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, nil, err
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return config.Config{}, nil, err
	}
	log, err := newLogger(cfg.Log)
	return cfg, log, err
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	target := fs.String("target", app.All, "services to run: all, or a comma list of routing, recocenter, recall, sort, cache")
	cfg, log, err := load(fs, args)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	targets, err := app.ParseTargets(*target)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := app.New(ctx, cfg, log, targets)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func bootstrap(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin bootstrap", flag.ContinueOnError)
	cfg, log, err := load(fs, args)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole, log, nil)
	if err != nil {
		return err
	}
	defer func() { _ = cleanup() }()
	if err := st.Tables.Bootstrap(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tables ready on %s\n", cfg.Storage.Tables)
	return nil
}

// newLogger logs JSON to stderr. Below error level, each message is sampled
// (the first 100 a second, then every 100th) so a busy server logs its requests
// without drowning; errors are never sampled.
func newLogger(cfg config.Log) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	out := zapcore.Lock(os.Stderr)
	belowError := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= level && l < zapcore.ErrorLevel })
	fromError := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l >= level && l >= zapcore.ErrorLevel })
	core := zapcore.NewTee(
		zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, out, belowError), time.Second, 100, 100),
		zapcore.NewCore(enc, out, fromError),
	)
	return zap.New(core, zap.AddCaller()), nil
}
