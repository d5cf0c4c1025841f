// Command reco is the one binary of the toutiao-reco suite: `reco serve` runs
// services, `reco admin ...` loads data, `reco health` checks a server,
// `reco config env` lists the configuration's variables and `reco version` the
// build. `reco -h` lists the commands (cli.go) and `reco COMMAND -h` the flags
// of one.
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

// main exits 0 on success (and on -h), 2 on a command line that does not
// parse, with the usage, and 1 on any other failure.
func main() {
	err := run(os.Args[1:], os.Stdout)
	var usageErr *usageError
	switch {
	case err == nil:
	case errors.As(err, &usageErr):
		fmt.Fprintf(os.Stderr, "reco: %v\n\n%s", usageErr.err, usageErr.usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "reco:", err)
		os.Exit(1)
	}
}

// load parses the common flags and loads the configuration.
func load(fs *flag.FlagSet, args []string, stdout io.Writer) (config.Config, *zap.Logger, error) {
	path := fs.String("config", "", "YAML config file; RECO_* environment variables override it")
	if err := parseFlags(fs, args, stdout); err != nil {
		return config.Config{}, nil, err
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return config.Config{}, nil, err
	}
	log, err := newLogger(cfg.Log)
	return cfg, log, err
}

func serve(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	target := fs.String("target", app.All, "services to run: all, or a comma list of routing, recocenter, recall, sort, cache")
	cfg, log, err := load(fs, args, stdout)
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
	cfg, log, err := load(fs, args, stdout)
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
