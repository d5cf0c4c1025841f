package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
)

// adminABReport is `reco admin ab-report`: the A/B readout of DESIGN §9, from
// the per-reader counters nearline keeps, against the plan the routing
// service assigns readers with.
func adminABReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin ab-report", flag.ContinueOnError)
	strategies := fs.String("strategies", "", "A/B plan to read the counters against; default the config's routing.strategies_file (the original's plan if that is empty)")
	control := fs.String("control", "", "experiment to compare the others of its layer with; default each layer's first")
	mde := fs.Float64("mde", abtest.DefaultMDE, "relative minimum detectable effect the users needed are computed for (0.05: a 5% change of CTR)")
	asJSON := fs.Bool("json", false, "print the report as JSON, as the HTTP readout serves it")
	cfg, log, err := load(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	path := cfg.Routing.StrategiesFile
	if *strategies != "" {
		path = *strategies
	}
	plan, err := abtest.Load(path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.SetsRole, log, nil)
	if err != nil {
		return err
	}
	defer func() { _ = cleanup() }()
	counters, err := st.Sets.Counters(ctx)
	if err != nil {
		return fmt.Errorf("read the a/b counters: %w", err)
	}
	report, err := plan.Report(counters, abtest.ReportOptions{Control: *control, MDE: *mde})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	if path == "" {
		path = "the original's (abtest.Original)"
	}
	fmt.Fprintf(stdout, "plan %s\n", path)
	return report.WriteText(stdout)
}
