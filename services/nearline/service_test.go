package nearline

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/eventlog"
	"github.com/toutiao-reco/toutiao-reco/pkg/feed"
	"github.com/toutiao-reco/toutiao-reco/pkg/model"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/embedded"
	"github.com/toutiao-reco/toutiao-reco/services/track"
)

var testConfig = Config{HotHalfLife: time.Hour, CoolInterval: time.Minute, OnlineSimilar: 10, Boost: 2, BoostTTL: time.Minute, Parallel: 4, Counts: true, Readers: true}

// newNearline is nearline over a fresh embedded store holding article 7 of
// channel 2 with neighbours 8 and 9, and article 8 served to reader u.
func newNearline(t *testing.T) (*Nearline, storage.Tables, storage.Sets) {
	t.Helper()
	db, cleanup, err := embedded.Open(embedded.Config{Path: filepath.Join(t.TempDir(), "reco.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cleanup() })
	tables, sets := db.Tables(), db.Sets()
	f := make([]float64, model.ArticleFeatureLen)
	f[0] = 2
	model.TopicOf(f)[0] = 0.5
	ctx := context.Background()
	if err := tables.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tables.Load(ctx, []storage.Record{
		storage.ArticleVector{Article: 7, Vector: f},
		storage.Neighbours{Article: 7, Similar: []storage.Scored{{ID: 8, Score: 0.9}, {ID: 9, Score: 0.8}, {ID: 10, Score: 0.7}}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := tables.Record(ctx, "u", 2, time.Now().UnixMilli(), []int64{8}); err != nil {
		t.Fatal(err)
	}
	n, err := New(testConfig, track.Config{Timezone: "UTC", MaxBatch: 100}, Stores{Sets: sets, Tables: tables}, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return n, tables, sets
}

func entry(offset int64, line string) eventlog.Entry {
	return eventlog.Entry{Key: "u", Value: []byte(line), Partition: 0, Offset: offset}
}

func line(action, user, article string, channel int32) string {
	return fmt.Sprintf(`{"actionTime": %d, "readTime": "", "channelId": %d, "param": {"action": %q, "userId": %q, "articleId": %q, "algorithmCombine": "Algo-1"}}`,
		time.Now().UnixMilli(), channel, action, user, article)
}

func TestApplyIsExactUnderRedelivery(t *testing.T) {
	n, tables, sets := newNearline(t)
	ctx := context.Background()
	batch := []eventlog.Entry{
		entry(0, line("exposure", "u", "[7, 11, 12]", 2)),
		entry(1, line("click", "u", "7", 2)),
		entry(2, "not an action"),
		entry(3, line("share", "v", "7", 0)),
	}
	if err := n.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// The click moved u's weights as the build's profile would (one click in
	// channel 2 with topic 0.5): interest 1/6, taste 0.5/2.
	w, err := tables.UserWeights(ctx, "u", []int32{2, feed.ChannelAll})
	if err != nil {
		t.Fatal(err)
	}
	if got := w[2]; len(got) != model.UserWeightsLen || got[0] != 0.166667 || got[1] != 0.25 {
		t.Errorf("weights of u in channel 2 = %v, want [0.166667 0.25 0 …]", got)
	}

	// Delivered twice more: a consumer that crashed twice before committing.
	for range 2 {
		if err := n.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	counters, err := sets.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := counters["Algo-1"]["u"], (storage.UserCounts{Exposures: 3, Clicks: 1}); got != want {
		t.Errorf("counters of u = %+v, want %+v", got, want)
	}
	for _, ch := range []int32{2, feed.ChannelAll} {
		top, err := sets.Top(ctx, storage.HotList, ch, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := []storage.Scored{{ID: 7, Score: 2}}; !slices.Equal(top, want) {
			t.Errorf("hot list of channel %d = %v, want %v (a click and a share, once each)", ch, top, want)
		}
	}
	// Online recall: 7's neighbours minus what u saw (8), in channel 2;
	// the best two at the head of u's queue.
	runs, err := tables.Read(ctx, "u", 2, []feed.Source{feed.SourceOnline})
	if err != nil {
		t.Fatal(err)
	}
	if got := runs[feed.SourceOnline]; len(got) != 1 || !slices.Equal(got[0].IDs, []int64{9, 10}) {
		t.Errorf("online recall of u in channel 2 = %v, want one run [9 10]", got)
	}
	if head, err := sets.Pop(ctx, "u", 2, 10); err != nil || !slices.Equal(head, []int64{9, 10}) {
		t.Errorf("u's queue = %v, %v; want the boosted [9 10]", head, err)
	}
	// The share was in channel 0: its recall is there.
	if runs, err := tables.Read(ctx, "v", feed.ChannelAll, []feed.Source{feed.SourceOnline}); err != nil || len(runs[feed.SourceOnline]) != 1 {
		t.Errorf("online recall of v in channel 0 = %v, %v; want one run", runs, err)
	}
	// A later action of the same partition applies.
	if err := n.Apply(ctx, []eventlog.Entry{entry(4, line("click", "u", "11", 2))}); err != nil {
		t.Fatal(err)
	}
	counters, _ = sets.Counters(ctx)
	if got := counters["Algo-1"]["u"].Clicks; got != 2 {
		t.Errorf("clicks of u after a new click = %d, want 2", got)
	}
}

func TestConfigRefusesAProcessThatAppliesNothing(t *testing.T) {
	c := testConfig
	c.Counts, c.Readers = false, false
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted nearline.counts and nearline.readers both false")
	}
	c.Readers, c.ReadersRate = true, -1
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted a negative nearline.readers_rate")
	}
}
