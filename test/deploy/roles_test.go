package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// TestLogUsers derives from pkg/app which targets open the durable log, and
// fails when logUsers says otherwise: the deployments give exactly those the
// Kafka log (and the appenders a spill), so the list must follow the module
// table. Each target starts alone on embedded storage whose log directory
// cannot be created: only a target that opens the log fails to start.
func TestLogUsers(t *testing.T) {
	var got []string
	for _, name := range services {
		dir := t.TempDir()
		blocker := filepath.Join(dir, "not-a-directory")
		if err := os.WriteFile(blocker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		cfg.Server.GRPCAddr, cfg.Server.MetricsAddr, cfg.Server.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.Server.LameDuck = 0
		cfg.Storage.Embedded.Path = filepath.Join(dir, "reco.db")
		cfg.Storage.Embedded.NoSync = true
		cfg.Storage.Log.Embedded.Dir = filepath.Join(blocker, "log")
		cfg.Sort.ModelDir = filepath.Join(dir, "models")
		ctx, cancel := context.WithCancel(context.Background())
		a, err := app.New(ctx, cfg, zap.NewNop(), []string{name})
		if err != nil {
			cancel()
			if !strings.Contains(err.Error(), blocker) {
				t.Fatalf("%s does not start on embedded storage: %v", name, err)
			}
			got = append(got, name)
			continue
		}
		// Started: serve and stop at once, which closes what New opened.
		cancel()
		if err := a.Run(ctx); err != nil {
			t.Errorf("%s: Run after a cancelled context: %v", name, err)
		}
	}
	if !slices.Equal(sortedCopy(got), sortedCopy(logUsers)) {
		t.Errorf("targets that open the log: %v; logUsers says %v", sortedCopy(got), sortedCopy(logUsers))
	}
	for _, name := range logAppenders {
		if !slices.Contains(logUsers, name) {
			t.Errorf("log appender %s is not a log user", name)
		}
	}
}
