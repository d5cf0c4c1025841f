package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toutiao-reco/toutiao-reco/internal/fixture"
	"github.com/toutiao-reco/toutiao-reco/pkg/abtest"
	"github.com/toutiao-reco/toutiao-reco/pkg/app"
	"github.com/toutiao-reco/toutiao-reco/pkg/config"
	"github.com/toutiao-reco/toutiao-reco/pkg/pb/userreco"
	"github.com/toutiao-reco/toutiao-reco/pkg/storage/storagetest"
)

// TestAdminInspect serves a reader three refreshes through the public API
// and inspects their feed: against the embedded default, and against real
// HBase and Redis when the test command started them.
func TestAdminInspect(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		dir := t.TempDir()
		embeddedEnv(t, dir)
		testAdminInspect(t, dir)
	})
	t.Run("hbase+redis", func(t *testing.T) {
		t.Setenv("RECO_STORAGE_TABLES", "hbase")
		t.Setenv("RECO_STORAGE_HBASE_THRIFT_ADDR", storagetest.Server(t, storagetest.EnvHBase))
		t.Setenv("RECO_STORAGE_SETS", "redis")
		t.Setenv("RECO_STORAGE_REDIS_ADDRS", storagetest.Server(t, storagetest.EnvRedis))
		testAdminInspect(t, t.TempDir())
	})
}

// inspectReader is a reader no earlier run served, in Algo-2 of the
// original's plan (bucket 14 or 15), so the strategy shown is not merely the
// default.
func inspectReader() string {
	for i := 0; ; i++ {
		u := fmt.Sprintf("inspect-%d-%d", time.Now().UnixNano(), i)
		if abtest.Bucket("", 16, u) >= 14 {
			return u
		}
	}
}

func testAdminInspect(t *testing.T, dir string) {
	ctx := context.Background()
	user, models := inspectReader(), filepath.Join(dir, "models")
	cfg, err := config.Load("", append(os.Environ(), "RECO_SORT_MODEL_DIR="+models, "RECO_SERVER_GRPC_ADDR=127.0.0.1:0",
		"RECO_SERVER_METRICS_ADDR=127.0.0.1:0", "RECO_SERVER_HTTP_ADDR=", "RECO_SERVER_LAME_DUCK=0s",
		"RECO_STORAGE_LOG_EMBEDDED_DIR="+filepath.Join(dir, "log")))
	if err != nil {
		t.Fatal(err)
	}
	st, cleanup, err := app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Tables.Bootstrap(ctx)
	if err == nil {
		err = fixture.SeedChannel(ctx, st.Tables, st.Sets, models, splitChannel, user)
	}
	_ = cleanup() // before the suite opens the store: the embedded one is locked while open
	if err != nil {
		t.Fatal(err)
	}

	// Three refreshes through the public API; the suite stops with the
	// subtest, so that the command can open the embedded store.
	var served [][]int64
	stamps := []int64{time.Now().UnixMilli() - 3000, time.Now().UnixMilli() - 2000, time.Now().UnixMilli() - 1000}
	if !t.Run("serve", func(t *testing.T) {
		c := userreco.NewUserRecommendClient(serveInProcess(t, cfg))
		for _, ts := range stamps {
			tr, err := c.UserRecommend(ctx, &userreco.User{UserId: user, ChannelId: splitChannel, ArticleNum: 5, TimeStamp: ts})
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, r := range tr.GetRecommends() {
				ids = append(ids, r.GetArticleId())
			}
			if len(ids) != 5 || tr.GetExposure() == "" {
				t.Fatalf("refresh at %d served %v (exposure %q), want 5 articles of a refresh", ts, ids, tr.GetExposure())
			}
			served = append(served, ids)
		}
		// History has a refresh once the served log's applier wrote it,
		// milliseconds after it answered: wait until paging back from the
		// newest reaches the first.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			pages := 0
			for ts := stamps[2]; ts != 0 && pages < 4; pages++ {
				tr, err := c.UserRecommend(ctx, &userreco.User{UserId: user, ChannelId: splitChannel, ArticleNum: 5, TimeStamp: ts})
				if err != nil {
					t.Fatal(err)
				}
				if len(tr.GetRecommends()) == 0 {
					break
				}
				ts = tr.GetTimeStamp()
			}
			if pages == len(stamps) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("history pages back from the newest refresh: %d, want %d within 10s", pages, len(stamps))
			}
		}
	}) {
		return
	}

	var got inspection
	out := runOK(t, "admin", "inspect", "--user", user, "--channel", fmt.Sprint(splitChannel), "--ids", "0", "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json printed what does not decode (%v):\n%s", err, out)
	}
	if got.User != user || got.Channel != splitChannel || got.Anonymous {
		t.Errorf("inspected user %q channel %d anonymous %v, want %q channel %d not anonymous", got.User, got.Channel, got.Anonymous, user, splitChannel)
	}
	if got.Strategy.Name != "Algo-2" || got.Strategy.Sort != 200 || len(got.Strategy.Recall) != 5 {
		t.Errorf("strategy = %+v, want Algo-2 with recall 100..104 and sort 200", got.Strategy)
	}
	if want := []layerPlacement{{Layer: "original", Bucket: abtest.Bucket("", 16, user), Buckets: 16, Experiment: "Algo-2"}}; !slices.Equal(got.Layers, want) {
		t.Errorf("layers = %+v, want %+v", got.Layers, want)
	}

	// The three refreshes, newest first, with exactly the ids the API
	// returned, in its order.
	if len(got.History) != 3 {
		t.Fatalf("history shows %d refreshes, want 3: %+v", len(got.History), got.History)
	}
	for i, r := range got.History {
		want := len(stamps) - 1 - i
		if r.TimeStamp != stamps[want] || !slices.Equal(r.IDs, served[want]) {
			t.Errorf("history[%d] = %d %v, want refresh %d: %d %v", i, r.TimeStamp, r.IDs, want+1, stamps[want], served[want])
		}
	}

	// The seen sets hold what was served, and channel 0's was seeded for
	// the claims that checked it.
	var all []int64
	for _, ids := range served {
		all = append(all, ids...)
	}
	slices.Sort(all)
	if len(got.Seen) != 2 || got.Seen[0].Channel != splitChannel || !got.Seen[0].Seeded || !slices.Equal(got.Seen[0].IDs, all) || got.Seen[0].Count != len(all) ||
		got.Seen[1].Channel != 0 || !got.Seen[1].Seeded || got.Seen[1].Count != 0 {
		t.Errorf("seen sets = %+v, want channel %d's seeded with the 15 ids served %v, then channel 0's seeded and empty", got.Seen, splitChannel, all)
	}
	if want := []float64{1, 0, 0, 0, 0, 0, 0, 0, 0, 0}; len(got.Weights) != 1 || got.Weights[0].Channel != splitChannel || !slices.Equal(got.Weights[0].Weights, want) {
		t.Errorf("weights = %+v, want the fixture's %v in channel %d", got.Weights, want, splitChannel)
	}

	// Tier 1 is listed in pop order, whole, and the inspection popped
	// nothing: popping it now returns exactly what it showed.
	if got.Tier1.Count == 0 || len(got.Tier1.IDs) != got.Tier1.Count || got.Tier1.TTLMs <= 0 {
		t.Fatalf("tier 1 = %+v, want the rest of the first ranking with its expiry", got.Tier1)
	}
	text := runOK(t, "admin", "inspect", "--user", user, "--channel", fmt.Sprint(splitChannel))
	st, cleanup, err = app.OpenStores(ctx, cfg.Storage, app.TablesRole|app.SetsRole, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cleanup() }()
	popped, err := st.Sets.Pop(ctx, user, splitChannel, got.Tier1.Count+10)
	if err != nil || !slices.Equal(popped, got.Tier1.IDs) {
		t.Errorf("Pop after the inspection = %v, %v; want the %d ids it showed, in its order: %v", popped, err, got.Tier1.Count, got.Tier1.IDs)
	}
	waiting, err := st.Tables.Take(ctx, user, splitChannel, got.Tier2.Count+10)
	if err != nil || !slices.Equal(waiting, got.Tier2.IDs) {
		t.Errorf("Take of tier 2 after the inspection = %v, %v; want %v", waiting, err, got.Tier2.IDs)
	}

	// The text a terminal shows says the same.
	var order []int
	for i := range served {
		line := fmt.Sprintf("  %d  %s  5 ids: %s\n", stamps[i], time.UnixMilli(stamps[i]).UTC().Format("2006-01-02 15:04:05.000 UTC"), joinIDs(served[i]))
		order = append(order, strings.Index(text, line))
	}
	for _, want := range []string{
		fmt.Sprintf("reader %s, channel %d (", user, splitChannel),
		"strategy Algo-2: recall 100 101 102 103 104, sort 200, new 0.10, hot 0.10\n",
		fmt.Sprintf("  layer original: bucket %d of 16 → Algo-2\n", abtest.Bucket("", 16, user)),
		"history, newest first (3 refreshes shown):\n",
		fmt.Sprintf("  tier 1 (pop order): %d ids: %s", got.Tier1.Count, joinIDs(got.Tier1.IDs[:min(50, got.Tier1.Count)])),
		fmt.Sprintf("  channel %d: seeded, 15 ids: %s, expires in ", splitChannel, joinIDs(all)),
		"  channel 0: seeded, 0 ids, expires in ",
		fmt.Sprintf("  channel %d (", splitChannel),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect printed no %q:\n%s", want, text)
		}
	}
	if order[0] < 0 || order[2] >= order[1] || order[1] >= order[0] {
		t.Errorf("the three refreshes are not listed newest first (at %v):\n%s", order, text)
	}
}

// TestAdminInspectFlagsAreChecked: a missing user or a channel out of range
// is refused before any store is opened.
func TestAdminInspectFlagsAreChecked(t *testing.T) {
	embeddedEnv(t, t.TempDir())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"admin", "inspect"}, "--user is required"},
		{[]string{"admin", "inspect", "--user", "u", "--channel", "25"}, "--channel must be 0..24, got 25"},
		{[]string{"admin", "inspect", "--user", "u", "--refreshes", "0"}, "--refreshes must be positive"},
		{[]string{"admin", "inspect", "--user", "u", "--ids", "-1"}, "--ids must be 0 (all) or positive"},
	} {
		if err := run(tt.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("reco %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
