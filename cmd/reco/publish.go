package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/offline"
)

// adminPublish is `reco admin publish`: new articles, given as news.tsv lines,
// published with the content model of the last build into the configured
// store (DESIGN §8): features, similar articles, the new lists.
func adminPublish(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("admin publish", flag.ContinueOnError)
	models := fs.String("models", "", "model directory of the last build, which holds its "+offline.ContentFile+" (required)")
	file := fs.String("file", "", "news.tsv lines to publish (default: standard input)")
	cfg, log, err := load(fs, args, stdout)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if *models == "" {
		return errors.New("admin publish: --models is required")
	}
	source, in := "stdin", io.Reader(os.Stdin)
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("admin publish: %w", err)
		}
		defer func() { _ = f.Close() }() // read only: closing loses nothing
		source, in = *file, f
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("admin publish: read %s: %w", source, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, log, nil)
	if err != nil {
		return err
	}
	defer func() { _ = cleanup() }()
	published, err := offline.NewPublisher(*models, offline.Stores{Tables: st.Tables, Sets: st.Sets}).Publish(ctx, source, lines, time.Now())
	if err != nil {
		return err
	}
	for _, p := range published {
		fmt.Fprintf(stdout, "published %s to channel %d (%s) at %s: %d similar articles, in the similar lists of %d; keywords: %s\n",
			dataset.FormatArticleID(p.Article), p.Channel, dataset.ChannelName(p.Channel), p.Time.Format(time.RFC3339),
			len(p.Similar), p.Entered, strings.Join(p.Keywords, " "))
	}
	return nil
}
