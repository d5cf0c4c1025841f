package offline

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/toutiao-reco/toutiao-reco/pkg/dataset"
)

// TestSkipUnknownBuildsWhatTheConsistentDataBuilds: references to articles
// news.tsv lacks — history entries, impressions, a line naming nothing else —
// fail a build; with SkipUnknown they are dropped, the report counts them, and
// every table, list, model and content file is what the data without them
// builds.
func TestSkipUnknownBuildsWhatTheConsistentDataBuilds(t *testing.T) {
	ctx := context.Background()
	clean := &built{dir: t.TempDir()}
	clean.ds, clean.opts = generate(t, clean.dir, smallData), testOptions(clean.dir)
	cleanStores, cleanup := openStore(t, filepath.Join(clean.dir, "reco.db"))
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := Build(ctx, clean.opts, cleanStores); err != nil {
		t.Fatal(err)
	}

	dirty := &built{dir: t.TempDir(), ds: clean.ds, opts: testOptions(t.TempDir())}
	dirty.opts.DataDir = filepath.Join(dirty.dir, "data")
	ds := *clean.ds
	ds.Behaviors = append([]dataset.Behavior(nil), ds.Behaviors...)
	for _, i := range []int{3, 40} {
		b := &ds.Behaviors[i]
		b.History = append(append([]int64{}, b.History...), 88000000+int64(i))
		b.Impressions = append([]dataset.Impression{{Article: 89000000 + int64(i), Clicked: true}}, b.Impressions...)
	}
	only := ds.Behaviors[len(ds.Behaviors)-1]
	only.ID += 1000
	only.Impressions = []dataset.Impression{{Article: 87000000}, {Article: 87000001, Clicked: true}}
	ds.Behaviors = append(ds.Behaviors, only)
	if err := dataset.WriteDir(dirty.opts.DataDir, &ds); err != nil {
		t.Fatal(err)
	}
	dirtyStores, cleanup2 := openStore(t, filepath.Join(dirty.dir, "reco.db"))
	defer func() {
		if err := cleanup2(); err != nil {
			t.Error(err)
		}
	}()

	if _, err := Build(ctx, dirty.opts, dirtyStores); !errors.Is(err, dataset.ErrUnknownArticle) {
		t.Fatalf("Build without SkipUnknown: %v, want an error wrapping dataset.ErrUnknownArticle", err)
	}
	assertNothingWritten(t, dirty, dirtyStores, false)

	dirty.opts.SkipUnknown = true
	res, err := Build(ctx, dirty.opts, dirtyStores)
	if err != nil {
		t.Fatal(err)
	}
	want := dataset.Skipped{Lines: 3, DroppedLines: 1, History: 2, Impressions: 4, Examples: []dataset.UnknownRef{
		{Line: 4, Field: "history", Article: "N88000003"}, {Line: 4, Field: "impressions", Article: "N89000003"},
		{Line: 41, Field: "history", Article: "N88000040"}, {Line: 41, Field: "impressions", Article: "N89000040"},
		{Line: len(ds.Behaviors), Field: "impressions", Article: "N87000000"},
	}}
	if got := res.Report.Data.Skipped; got == nil || !reflect.DeepEqual(*got, want) {
		t.Errorf("report skipped = %+v, want %+v", got, want)
	}
	if got := res.Report.Data.Impressions; got != len(clean.ds.Behaviors) {
		t.Errorf("report counts %d impressions, want the %d left", got, len(clean.ds.Behaviors))
	}

	before, after := snapshot(t, clean, cleanStores, clean.opts.ModelDir), snapshot(t, clean, dirtyStores, dirty.opts.ModelDir)
	delete(before, "file/"+ReportFile)
	delete(after, "file/"+ReportFile)
	diffSnapshots(t, before, after)
}
