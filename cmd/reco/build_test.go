package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/offline"
)

// TestAdminBuildSkipUnknown: a behaviors.tsv naming articles news.tsv lacks
// fails the build with a message that names the line and --skip-unknown;
// with the flag the build succeeds and says what it skipped, in its output
// and in report.json.
func TestAdminBuildSkipUnknown(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	data, models := filepath.Join(dir, "data"), filepath.Join(dir, "models")
	ds, err := dataset.Generate(dataset.GenerateConfig{Users: 150, Articles: 250, Days: 3, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Line 2 gets an unknown history entry and an unknown impression; a new
	// last line names only unknown articles.
	ds.Behaviors[1].History = append(ds.Behaviors[1].History, 99000001)
	ds.Behaviors[1].Impressions = append(ds.Behaviors[1].Impressions, dataset.Impression{Article: 99000002})
	last := ds.Behaviors[len(ds.Behaviors)-1]
	last.ID++
	last.History = nil
	last.Impressions = []dataset.Impression{{Article: 99000003, Clicked: true}}
	ds.Behaviors = append(ds.Behaviors, last)
	if err := dataset.WriteDir(data, ds); err != nil {
		t.Fatal(err)
	}

	err = run([]string{"admin", "build", "--data", data, "--models", models}, &bytes.Buffer{})
	wantErr := filepath.Join(data, dataset.BehaviorsFile) + ":2: history names N99000001, which is not in news.tsv"
	if err == nil || !strings.HasPrefix(err.Error(), wantErr) || !strings.Contains(err.Error(), "--skip-unknown") {
		t.Fatalf("build without --skip-unknown: %v; want an error starting %q that names --skip-unknown", err, wantErr)
	}
	if _, err := os.Stat(filepath.Join(models, offline.ReportFile)); !os.IsNotExist(err) {
		t.Errorf("the failed build wrote %s (%v)", offline.ReportFile, err)
	}

	out := runOK(t, "admin", "build", "--data", data, "--models", models, "--skip-unknown")
	n := len(ds.Behaviors)
	wantLine := "skipped: 3 references to articles missing from news.tsv on 2 lines of behaviors.tsv (1 history entry, 2 impressions; 1 line left without impressions, dropped); " +
		"e.g. line 2 history N99000001, line 2 impressions N99000002, line " + strconv.Itoa(n) + " impressions N99000003"
	if !strings.Contains(out, wantLine) {
		t.Errorf("build output lacks %q:\n%s", wantLine, out)
	}
	if want := "data: 250 articles, "; !strings.Contains(out, want) || !strings.Contains(out, strconv.Itoa(n-1)+" impressions") {
		t.Errorf("build output does not count the %d impressions left:\n%s", n-1, out)
	}
	raw, err := os.ReadFile(filepath.Join(models, offline.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		Data struct {
			Skipped *dataset.Skipped `json:"skipped_unknown"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatal(err)
	}
	if s := report.Data.Skipped; s == nil || s.Lines != 2 || s.DroppedLines != 1 || s.History != 1 || s.Impressions != 2 || len(s.Examples) != 3 {
		t.Errorf("report.json skipped_unknown = %+v, want 2 lines (1 dropped), 1 history entry, 2 impressions, 3 examples", s)
	}
}
