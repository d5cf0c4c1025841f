package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
)

// embeddedEnv points the commands at a fresh embedded store in dir.
func embeddedEnv(t *testing.T, dir string) {
	t.Setenv("RECO_STORAGE_TABLES", "embedded")
	t.Setenv("RECO_STORAGE_SETS", "embedded")
	t.Setenv("RECO_STORAGE_EMBEDDED_PATH", filepath.Join(dir, "reco.db"))
	t.Setenv("RECO_STORAGE_EMBEDDED_NO_SYNC", "true")
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("reco %s: %v\noutput:\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestAdminGenerateThenBuild(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	data, models := filepath.Join(dir, "data"), filepath.Join(dir, "models")
	out := runOK(t, "admin", "generate", "--out", data, "--users", "250", "--articles", "400", "--days", "4", "--seed", "5")
	if !strings.Contains(out, "(400 articles)") || !strings.Contains(out, "(750 impressions)") {
		t.Errorf("generate said %q", out)
	}
	out = runOK(t, "admin", "build", "--data", data, "--models", models, "--build-time", time.Now().UTC().Format(time.DateOnly), "--stats")
	for _, want := range []string{"12=news", "24=other", "200 logistic", "201 fm", "popularity", "recall@50", "100 als", "write-tables", "peak RSS"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"200.json", "201.json", "report.json"} {
		if _, err := os.Stat(filepath.Join(models, f)); err != nil {
			t.Error(err)
		}
	}
	// The store the command wrote is the configured one.
	cfg, err := config.Load("", os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	st, cleanup, err := app.OpenStores(context.Background(), cfg.Storage, app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	if top, err := st.Sets.Top(context.Background(), storage.NewList, 0, 5); err != nil || len(top) != 5 {
		t.Errorf("channel 0 new list = %v, %v; want 5 articles", top, err)
	}
}

func TestAdminBuildReportsMalformedInput(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(data, dataset.NewsFile), []byte("N1\tnews\tx\tt\ta\tu\t[]\t[]\nN2\tnews\n"), 0o644)
	_ = os.WriteFile(filepath.Join(data, dataset.BehaviorsFile), []byte("1\tU1\t11/15/2019 8:55:22 AM\t\tN1-1\n"), 0o644)
	err := run([]string{"admin", "build", "--data", data, "--models", filepath.Join(dir, "m")}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(data, dataset.NewsFile)+":2: want 8 tab-separated fields") {
		t.Errorf("error = %v", err)
	}
}

func TestAdminDemoBuildsOnlyAnEmptyStore(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	saved := demoData
	demoData = dataset.GenerateConfig{Users: 200, Articles: 300, Days: 4, Seed: 1}
	t.Cleanup(func() { demoData = saved })
	models := filepath.Join(dir, "models")

	out := runOK(t, "admin", "demo", "--models", models)
	if !strings.Contains(out, "the store is empty") || !strings.Contains(out, "UserRecommend/user_recommend") {
		t.Errorf("first demo said:\n%s", out)
	}
	for _, id := range []string{"200", "201"} {
		if _, err := model.Load(filepath.Join(models, id+".json")); err != nil {
			t.Error(err)
		}
	}
	out = runOK(t, "admin", "demo", "--models", models)
	if !strings.Contains(out, "already holds data") || strings.Contains(out, "warning") {
		t.Errorf("second demo said:\n%s", out)
	}
}

func TestAdminFlagsAreChecked(t *testing.T) {
	dir := t.TempDir()
	embeddedEnv(t, dir)
	for _, args := range [][]string{
		{"admin", "generate"},
		{"admin", "generate", "--out", dir, "--users", "0"},
		{"admin", "build", "--models", dir},
		{"admin", "build", "--data", dir},
		{"admin", "build", "--data", dir, "--models", dir, "--build-time", "yesterday"},
		{"admin", "demo"},
	} {
		if err := run(args, &bytes.Buffer{}); err == nil {
			t.Errorf("reco %s succeeded", strings.Join(args, " "))
		}
	}
}

func TestParseBuildTime(t *testing.T) {
	now := time.Date(2026, 3, 4, 15, 16, 17, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"2026-01-02T03:04:05+02:00", time.Date(2026, 1, 2, 1, 4, 5, 0, time.UTC)},
		{"1767323045000", time.UnixMilli(1767323045000).UTC()},
	}
	for _, tt := range tests {
		got, err := parseBuildTime(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseBuildTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseBuildTime("-5", now); err == nil {
		t.Error("a negative time was accepted")
	}
}
