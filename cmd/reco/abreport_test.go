package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// countABReaders stores what nearline would count for readers per strategy:
// each reader sees 10 articles and clicks one, every third reader two.
func countABReaders(t *testing.T, readers map[string]int) {
	t.Helper()
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	st, cleanup, err := app.OpenStores(context.Background(), cfg.Storage, app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cleanup() }() // before the command opens the store: the embedded one is locked while open
	var exposures []storage.Exposure
	for strategy, n := range readers {
		for i := range n {
			exposures = append(exposures, storage.Exposure{
				Mark:      storage.Mark{Offset: int64(len(exposures))},
				Strategy:  strategy,
				User:      strategy + "-" + strconv.Itoa(i),
				Exposures: 10,
				Clicks:    1 + int64(i%3/2),
			})
		}
	}
	if _, err := st.Sets.AddExposures(context.Background(), exposures); err != nil {
		t.Fatal(err)
	}
}

func TestAdminABReport(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	countABReaders(t, map[string]int{"Algo-1": 350, "Algo-2": 50}) // the original's 14:2

	out := runOK(t, "admin", "ab-report")
	for _, want := range []string{
		"plan the original's",
		"layer original: 400 users, control Algo-1",
		"Algo-2   12.5%  50 (12.5%)",
		"sample ratio: ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ab-report lacks %q:\n%s", want, out)
		}
	}

	// The same counters read against a 50/50 plan, named in the config (so
	// the routing service's plan is the default) and as a flag.
	halves := filepath.Join(dir, "halves.yaml")
	plan := strings.Replace(abtest.Original, `buckets: "0-13"`, `buckets: "0-7"`, 1)
	plan = strings.Replace(plan, `buckets: "14-15"`, `buckets: "8-15"`, 1)
	if err := os.WriteFile(halves, []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RECO_ROUTING_STRATEGIES_FILE", halves)
	if out := runOK(t, "admin", "ab-report"); !strings.Contains(out, "plan "+halves) || !strings.Contains(out, "sample ratio: MISMATCH") {
		t.Errorf("ab-report with the config's plan:\n%s", out)
	}
	var report abtest.Report
	out = runOK(t, "admin", "ab-report", "--strategies", halves, "--control", "Algo-2", "--mde", "0.1", "--json")
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("--json printed what does not decode (%v):\n%s", err, out)
	}
	if l := report.Layers[0]; report.MDE != 0.1 || l.Control != "Algo-2" || !l.SRM.Mismatch || l.Variants[0].Users != 350 {
		t.Errorf("--json report = %+v; want MDE 0.1, control Algo-2, a mismatch and 350 Algo-1 users", report)
	}

	for _, args := range [][]string{
		{"admin", "ab-report", "--control", "Algo-3"},
		{"admin", "ab-report", "--mde", "-1"},
		{"admin", "ab-report", "--strategies", filepath.Join(dir, "missing.yaml")},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("reco %s succeeded", strings.Join(args, " "))
		}
	}
}
